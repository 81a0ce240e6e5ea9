//! Karpenter as AKS Node Autoprovisioning runs it, one job per file: `provisioning` batches
//! provisionable pods and opens NodeClaims with the cheapest fitting D SKU under the NodePool
//! limits (KP-1..KP-6, AZ-5..AZ-7); `lifecycle` takes a NodeClaim through Launched ->
//! Registered -> Initialized and, once deleted, through drain and VM deletion (KP-7, KP-8,
//! KP-16, AZ-1, AZ-2, AZ-8); `disruption` removes empty and underutilized nodes under the
//! pools' budgets (KP-9..KP-14); `nodepool` reads NodePools (KP-15) and keeps their status.
//! This file holds what they share: the state Karpenter keeps between tasks, the resource
//! names, and the pod hook that feeds both provisioning and disruption.

mod disruption;
mod lifecycle;
mod nodepool;
mod provisioning;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::engine::Engine;
use crate::skus::Sku;
use crate::store::{EventType, ObjectKey, WatchEvent};

pub(crate) use disruption::{disruption_execute, disruption_pass};
pub(crate) use lifecycle::{initialize, launch, on_nodeclaim, register, vm_deleted};
pub(crate) use nodepool::on_nodepool;
pub(crate) use provisioning::{batch_check, provision_retry};

const NODECLAIMS: &str = "nodeclaims.karpenter.sh";
const NODEPOOLS: &str = "nodepools.karpenter.sh";
/// The finalizer Karpenter puts on its NodeClaims and Nodes; lifecycle removes it once the
/// VM is gone.
const TERMINATION_FINALIZER: &str = "karpenter.sh/termination";

/// Karpenter's memory between tasks.
#[derive(Debug, Default)]
pub struct KarpenterState {
    /// An open batch: (opened at, last trigger at).
    batch: Option<(Duration, Duration)>,
    /// The SKU chosen for each NodeClaim.
    sku_of: HashMap<String, &'static Sku>,
    /// Nominations already announced: (pod uid, target).
    announced_nominations: HashSet<(String, String)>,
    /// When each NodeClaim last had a pod nominated to it (KP-9).
    nominated_at: HashMap<String, Duration>,
    /// Node -> last time a pod was bound to it or removed from it (KP-10).
    last_pod_event: HashMap<String, Duration>,
    /// Pod -> node it is bound to, to see binds and removals.
    pod_node: HashMap<ObjectKey, String>,
    /// NodeClaim -> when it was initialized.
    initialized_at: HashMap<String, Duration>,
    /// NodeClaims whose termination has started.
    terminating: HashSet<String>,
    /// Disruption commands waiting for validation: id -> (method, NodeClaims).
    commands: HashMap<u64, (&'static str, Vec<String>)>,
    next_command: u64,
}

/// A pod changed: disruption notes binds and removals (KP-10), and a provisionable pod opens
/// or extends the batch (KP-2).
pub(crate) fn on_pod(engine: &mut Engine, change: &WatchEvent) {
    disruption::note_pod_event(engine, change);
    if change.event_type != EventType::Deleted && provisioning::is_provisionable(&change.object) {
        provisioning::trigger(engine);
    }
}
