//! Disruption: every `disruption_period` one pass picks the empty candidates within their
//! pools' budgets, or else one node whose pods all fit on the other nodes (replacement-free
//! single-node consolidation); after the 15 s validation the NodeClaims still eligible are
//! deleted, and lifecycle drains and terminates them (KP-9..KP-14). Completed pods (a Job's)
//! hold nothing: a node with only those is empty. A node is a candidate
//! once its pool's `consolidateAfter` has passed since its last pod bind or removal, which
//! [`note_pod_event`] records. A node running a pod annotated `karpenter.sh/do-not-disrupt:
//! "true"` is never a candidate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::lifecycle::is_daemon_pod;
use super::nodepool::{read_pools, Pool};
use super::NODECLAIMS;
use crate::controllers::scheduler::{node_allocatable, untolerated, usage_by_node};
use crate::controllers::workloads::is_completed;
use crate::engine::{Engine, Task};
use crate::objects::{condition_true, is_deleting, label, name, pod_requests, str_at};
use crate::skus::{Allocatable, Request};
use crate::store::{EventType, ObjectKey, WatchEvent};

/// KP-10: remembers when a pod was bound to a node or left it.
pub(super) fn note_pod_event(engine: &mut Engine, change: &WatchEvent) {
    let now = engine.now();
    let node_now = str_at(&change.object, "/spec/nodeName")
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let state = &mut engine.state.karpenter;
    // A pod that completed (a Job's) has left its node as much as a deleted one.
    if change.event_type == EventType::Deleted || is_completed(&change.object) {
        if let Some(node) = state.pod_node.remove(&change.key) {
            state.last_pod_event.insert(node, now);
        }
        return;
    }
    if let Some(node) = &node_now {
        if state.pod_node.get(&change.key) != Some(node) {
            state.pod_node.insert(change.key.clone(), node.clone());
            state.last_pod_event.insert(node.clone(), now);
        }
    }
}

/// A disruption candidate: an initialized NodeClaim with its node and the pods that would
/// have to move.
struct Candidate {
    claim: Arc<Value>,
    node: Arc<Value>,
    pool: String,
    pods: Vec<Arc<Value>>,
}

/// The NodeClaims disruption may consider now: initialized, quiet for their pool's
/// `consolidateAfter` (KP-10) and not nominated for pending pods lately (KP-9).
fn candidates(engine: &Engine, pools: &[Pool]) -> Vec<Candidate> {
    let now = engine.now();
    let state = &engine.state.karpenter;
    let (claims, _) = engine.store.list(NODECLAIMS, None, None, None);
    let (pods, _) = engine.store.list("pods", None, None, None);
    let mut by_node: HashMap<&str, Vec<Arc<Value>>> = HashMap::new();
    for pod in &pods {
        if let Some(node) = str_at(pod, "/spec/nodeName").filter(|n| !n.is_empty()) {
            if !is_deleting(pod) && !is_daemon_pod(pod) && !is_completed(pod) {
                by_node.entry(node).or_default().push(pod.clone());
            }
        }
    }
    claims
        .into_iter()
        .filter(|c| !is_deleting(c) && condition_true(c, "Initialized"))
        .filter_map(|claim| {
            let pool = pools
                .iter()
                .find(|p| Some(p.name.as_str()) == label(&claim, "karpenter.sh/nodepool"))?;
            let consolidate_after = pool.consolidate_after?;
            let node_name = str_at(&claim, "/status/nodeName")?.to_owned();
            let node = engine.store.get(&ObjectKey::new("nodes", "", &node_name))?;
            // KP-9: a node nominated for pending pods within the window is not a candidate.
            let window = (engine.params.batch_max * 2).max(Duration::from_secs(10));
            if state
                .nominated_at
                .get(name(&claim))
                .is_some_and(|t| now < *t + window)
            {
                return None;
            }
            // KP-10: Consolidatable once quiet for consolidateAfter.
            let quiet_since = state
                .last_pod_event
                .get(&node_name)
                .copied()
                .into_iter()
                .chain(state.initialized_at.get(name(&claim)).copied())
                .max()
                .unwrap_or(Duration::ZERO);
            if now < quiet_since + consolidate_after {
                return None;
            }
            // A pod annotated `karpenter.sh/do-not-disrupt: "true"` blocks voluntary
            // disruption of its node (an in-cluster load Job's producers carry it).
            let pods_here = by_node.get(node_name.as_str());
            if pods_here.into_iter().flatten().any(|pod| {
                pod.pointer("/metadata/annotations/karpenter.sh~1do-not-disrupt")
                    .and_then(Value::as_str)
                    == Some("true")
            }) {
                return None;
            }
            Some(Candidate {
                pods: by_node.get(node_name.as_str()).cloned().unwrap_or_default(),
                pool: pool.name.clone(),
                claim,
                node,
            })
        })
        .collect()
}

/// KP-14: how many nodes of `pool` may be disrupted now.
fn allowed_disruptions(engine: &Engine, pool: &Pool) -> usize {
    let (claims, _) = engine.store.list(NODECLAIMS, None, None, None);
    let pool_claims: Vec<_> = claims
        .iter()
        .filter(|c| label(c, "karpenter.sh/nodepool") == Some(pool.name.as_str()))
        .collect();
    let initialized = pool_claims
        .iter()
        .filter(|c| condition_true(c, "Initialized"))
        .count();
    let disrupting = pool_claims
        .iter()
        .filter(|c| {
            is_deleting(c)
                || (str_at(c, "/status/nodeName").is_some() && !condition_true(c, "Initialized"))
        })
        .count();
    let allowed =
        pool.budgets
            .iter()
            .map(|b| match b.strip_suffix('%') {
                Some(pct) => ((pct.parse::<f64>().unwrap_or(10.0) / 100.0) * initialized as f64)
                    .ceil() as usize,
                None => b.parse().unwrap_or(0),
            })
            .min()
            .unwrap_or(0);
    allowed.saturating_sub(disrupting)
}

/// KP-11: one pass of the disruption loop: emptiness first, then single-node consolidation.
pub(crate) fn disruption_pass(engine: &mut Engine) {
    let period = engine.params.disruption_period;
    if !engine.state.karpenter.commands.is_empty() {
        engine.schedule_in(period, Task::DisruptionPass);
        return;
    }
    let pools = read_pools(engine);
    let candidates = candidates(engine, &pools);
    let mut chosen: Vec<String> = Vec::new();
    let mut method = "Empty";
    // KP-12: every empty candidate within its pool's budget, in one command.
    for pool in &pools {
        let allowed = allowed_disruptions(engine, pool);
        chosen.extend(
            candidates
                .iter()
                .filter(|c| c.pool == pool.name && c.pods.is_empty())
                .take(allowed)
                .map(|c| name(&c.claim).to_owned()),
        );
    }
    if chosen.is_empty() {
        // KP-13 (replacement-free single-node consolidation): a node whose pods all fit on the
        // other nodes is removed; that is always strictly cheaper.
        method = "Underutilized";
        let usage = usage_by_node(engine);
        let mut sorted: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| {
                pools
                    .iter()
                    .find(|p| p.name == c.pool)
                    .is_some_and(|p| p.policy != "WhenEmpty" && allowed_disruptions(engine, p) > 0)
            })
            .collect();
        sorted.sort_by_key(|c| (c.pods.len(), name(&c.claim).to_owned()));
        for candidate in sorted {
            if fits_elsewhere(engine, candidate, &usage) {
                chosen.push(name(&candidate.claim).to_owned());
                break;
            }
        }
    }
    if chosen.is_empty() {
        engine.schedule_in(period, Task::DisruptionPass);
        return;
    }
    let state = &mut engine.state.karpenter;
    state.next_command += 1;
    let id = state.next_command;
    state.commands.insert(id, (method, chosen));
    let validation = engine.params.disruption_validation;
    engine.schedule_in(validation, Task::DisruptionExecute { command: id });
}

/// KP-13: true when every pod of the candidate fits on another Ready node, first fit.
fn fits_elsewhere(
    engine: &Engine,
    candidate: &Candidate,
    usage: &HashMap<String, Request>,
) -> bool {
    if candidate.pods.is_empty() {
        return true;
    }
    let (nodes, _) = engine.store.list("nodes", None, None, None);
    let mut free: Vec<(Arc<Value>, Allocatable)> = nodes
        .into_iter()
        .filter(|n| {
            name(n) != name(&candidate.node) && !is_deleting(n) && condition_true(n, "Ready")
        })
        .map(|n| {
            let used = usage.get(name(&n)).copied().unwrap_or_default();
            let free = node_allocatable(&n).minus(used);
            (n, free)
        })
        .collect();
    candidate.pods.iter().all(|pod| {
        let request = pod_requests(pod);
        match free.iter_mut().find(|(n, f)| {
            let taints = n
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            untolerated(pod, &taints).is_empty() && f.fits(request)
        }) {
            Some((_, f)) => {
                *f = f.minus(request);
                true
            }
            None => false,
        }
    })
}

/// KP-12: after validation, the command's NodeClaims that are still candidates are deleted.
pub(crate) fn disruption_execute(engine: &mut Engine, id: u64) {
    let Some((method, claims)) = engine.state.karpenter.commands.remove(&id) else {
        return;
    };
    let pools = read_pools(engine);
    let still_candidates = candidates(engine, &pools);
    let usage = usage_by_node(engine);
    for claim_name in claims {
        let Some(candidate) = still_candidates
            .iter()
            .find(|c| name(&c.claim) == claim_name)
        else {
            continue;
        };
        let valid = match method {
            "Empty" => candidate.pods.is_empty(),
            _ => fits_elsewhere(engine, candidate, &usage),
        };
        if !valid {
            continue;
        }
        let (claim, node) = (candidate.claim.clone(), candidate.node.clone());
        if engine
            .store
            .delete(&ObjectKey::new(NODECLAIMS, "", &claim_name), None)
            .is_ok()
        {
            engine.emit(
                &node,
                "Normal",
                "DisruptionTerminating",
                &format!("Disrupting Node: {method}"),
                "karpenter",
            );
            engine.emit(
                &claim,
                "Normal",
                "DisruptionTerminating",
                &format!("Disrupting NodeClaim: {method}"),
                "karpenter",
            );
        }
    }
    engine.schedule_in(Duration::ZERO, Task::DisruptionPass);
}
