//! The lifecycle ledger: what the observation recorder keeps of each sample besides the
//! timeline. For every consumer pod and Karpenter NodeClaim (with its node) it keeps the first
//! sample that saw each stage of its life, and every change of the Deployment's replica count;
//! [`LifecycleLedger::lifecycle`] turns that into the report's [`Lifecycle`].
//!
//! Stages are read from the listed objects alone ([`SampledPod::of`], [`SampledClaim::of`],
//! [`node_is_ready`]), so they are unit-tested on inline YAML; the times are the sample's `t`
//! on the recorder's clock.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;

use edw_model::lifecycle::{Lifecycle, NodeClaimLife, PodLife, ScaleEvent, LIFECYCLE_FORMAT};

/// A consumer pod as one sample listed it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SampledPod {
    pub name: String,
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// `status.phase` is Running.
    pub running: bool,
    /// Condition Ready is True.
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
}

impl SampledPod {
    pub fn of(pod: &Pod) -> SampledPod {
        let status = pod.status.as_ref();
        SampledPod {
            name: pod.metadata.name.clone().unwrap_or_default(),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            running: status.and_then(|s| s.phase.as_deref()) == Some("Running"),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            terminating: pod.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// A Karpenter NodeClaim as one sample listed it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SampledClaim {
    pub name: String,
    /// Label `karpenter.sh/nodepool`.
    pub nodepool: Option<String>,
    /// Label `node.kubernetes.io/instance-type`.
    pub instance_type: Option<String>,
    /// `status.nodeName`.
    pub node: Option<String>,
    /// Conditions Launched, Registered, Initialized True.
    pub launched: bool,
    pub registered: bool,
    pub initialized: bool,
    /// `metadata.deletionTimestamp` is set.
    pub disrupted: bool,
}

impl SampledClaim {
    pub fn of(claim: &DynamicObject) -> SampledClaim {
        let label = |key: &str| label(&claim.metadata, key);
        let status = claim.data.get("status");
        let condition = |kind: &str| {
            status
                .and_then(|s| s.get("conditions"))
                .and_then(|c| c.as_array())
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        c.get("type").and_then(|t| t.as_str()) == Some(kind)
                            && c.get("status").and_then(|s| s.as_str()) == Some("True")
                    })
                })
        };
        SampledClaim {
            name: claim.metadata.name.clone().unwrap_or_default(),
            nodepool: label("karpenter.sh/nodepool"),
            instance_type: label("node.kubernetes.io/instance-type"),
            node: status
                .and_then(|s| s.get("nodeName"))
                .and_then(|n| n.as_str())
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            launched: condition("Launched"),
            registered: condition("Registered"),
            initialized: condition("Initialized"),
            disrupted: claim.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// The value of the label `key` of an object.
pub(crate) fn label(meta: &ObjectMeta, key: &str) -> Option<String> {
    meta.labels.as_ref().and_then(|l| l.get(key)).cloned()
}

/// Whether `node`'s condition Ready is True.
pub(crate) fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What one sample saw; `None` where a list or read failed (nothing is concluded from it).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sampled {
    pub pods: Option<Vec<SampledPod>>,
    pub claims: Option<Vec<SampledClaim>>,
    /// The nodes whose condition Ready is True.
    pub ready_nodes: Option<BTreeSet<String>>,
    /// The Deployment's `spec.replicas` (`None`: not read, or no Deployment).
    pub replicas: Option<u64>,
}

/// The first sample that saw each stage, per object, and the replica changes.
#[derive(Debug, Default)]
pub(crate) struct LifecycleLedger {
    pods: BTreeMap<String, PodLife>,
    claims: BTreeMap<String, NodeClaimLife>,
    scale_events: Vec<ScaleEvent>,
    replicas: Option<u64>,
    last_sample: f64,
}

/// Sets `slot` to `t` the first time `reached` holds.
fn first(slot: &mut Option<f64>, reached: bool, t: f64) {
    if reached && slot.is_none() {
        *slot = Some(t);
    }
}

impl LifecycleLedger {
    /// Records what the sample at `t` saw.
    pub fn record(&mut self, t: f64, sampled: &Sampled) {
        self.last_sample = t;
        if let Some(pods) = &sampled.pods {
            for pod in pods {
                let life = self
                    .pods
                    .entry(pod.name.clone())
                    .or_insert_with(|| PodLife {
                        name: pod.name.clone(),
                        created: Some(t),
                        ..PodLife::default()
                    });
                if life.gone.is_some() {
                    continue;
                }
                if pod.node.is_some() {
                    life.node.clone_from(&pod.node);
                }
                first(&mut life.scheduled, pod.node.is_some(), t);
                first(&mut life.running, pod.running, t);
                first(&mut life.ready, pod.ready, t);
                first(&mut life.terminating, pod.terminating, t);
            }
            for (name, life) in &mut self.pods {
                first(&mut life.gone, !pods.iter().any(|p| &p.name == name), t);
            }
        }
        if let Some(claims) = &sampled.claims {
            for claim in claims {
                let life = self
                    .claims
                    .entry(claim.name.clone())
                    .or_insert_with(|| NodeClaimLife {
                        name: claim.name.clone(),
                        created: Some(t),
                        ..NodeClaimLife::default()
                    });
                if life.deleted.is_some() {
                    continue;
                }
                // Karpenter labels the size and fills the node name as the claim goes on.
                for (slot, value) in [
                    (&mut life.nodepool, &claim.nodepool),
                    (&mut life.instance_type, &claim.instance_type),
                    (&mut life.node, &claim.node),
                ] {
                    if value.is_some() {
                        slot.clone_from(value);
                    }
                }
                first(&mut life.launched, claim.launched, t);
                first(&mut life.registered, claim.registered, t);
                first(&mut life.initialized, claim.initialized, t);
                first(&mut life.disrupted, claim.disrupted, t);
                let node_ready = match (&life.node, &sampled.ready_nodes) {
                    (Some(node), Some(ready)) => ready.contains(node),
                    _ => false,
                };
                first(&mut life.node_ready, node_ready, t);
            }
            for (name, life) in &mut self.claims {
                first(
                    &mut life.deleted,
                    !claims.iter().any(|c| &c.name == name),
                    t,
                );
            }
        }
        if let Some(to) = sampled.replicas {
            match self.replicas {
                Some(from) if from != to => self.scale_events.push(ScaleEvent { t, from, to }),
                _ => {}
            }
            self.replicas = Some(to);
        }
    }

    /// The ledger as the report's lifecycle, pods and claims in the order they were first
    /// seen (`load_started_at` is the runner's to fill).
    pub fn lifecycle(&self, unit: &str) -> Lifecycle {
        let by_creation = |a: &Option<f64>, b: &Option<f64>| {
            a.unwrap_or(f64::INFINITY)
                .total_cmp(&b.unwrap_or(f64::INFINITY))
        };
        let mut pods: Vec<PodLife> = self.pods.values().cloned().collect();
        pods.sort_by(|a, b| by_creation(&a.created, &b.created).then(a.name.cmp(&b.name)));
        let mut nodeclaims: Vec<NodeClaimLife> = self.claims.values().cloned().collect();
        nodeclaims.sort_by(|a, b| by_creation(&a.created, &b.created).then(a.name.cmp(&b.name)));
        Lifecycle {
            format: LIFECYCLE_FORMAT,
            unit: unit.to_owned(),
            load_started_at: None,
            ended_at: self.last_sample,
            pods,
            nodeclaims,
            scale_events: self.scale_events.clone(),
            drain: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> SampledPod {
        SampledPod::of(&serde_saphyr::from_str::<Pod>(yaml).expect("pod YAML"))
    }

    fn claim(yaml: &str) -> SampledClaim {
        SampledClaim::of(&serde_saphyr::from_str::<DynamicObject>(yaml).expect("claim YAML"))
    }

    #[test]
    fn a_pods_stages_are_read_from_its_spec_status_and_metadata() {
        let pending = pod("metadata: {name: aqs-app-1}\nstatus: {phase: Pending}\n");
        assert_eq!(
            pending,
            SampledPod {
                name: "aqs-app-1".into(),
                ..SampledPod::default()
            }
        );
        let ready = pod(r#"
metadata: {name: aqs-app-1, deletionTimestamp: "2026-03-02T09:30:00Z"}
spec: {nodeName: aks-edw-burst-abcde, containers: [{name: c}]}
status:
  phase: Running
  conditions: [{type: PodScheduled, status: "True"}, {type: Ready, status: "True"}]
"#);
        assert_eq!(ready.node.as_deref(), Some("aks-edw-burst-abcde"));
        assert!(ready.running && ready.ready && ready.terminating);
        let not_ready = pod(r#"
metadata: {name: p}
status: {phase: Running, conditions: [{type: Ready, status: "False"}]}
"#);
        assert!(not_ready.running && !not_ready.ready && !not_ready.terminating);
    }

    #[test]
    fn a_claims_stages_are_read_from_its_conditions_labels_and_node_name() {
        let launched = claim(
            r#"
apiVersion: karpenter.sh/v1
kind: NodeClaim
metadata:
  name: edw-burst-x7k2p
  labels: {karpenter.sh/nodepool: edw-burst, node.kubernetes.io/instance-type: Standard_D2als_v6}
status:
  conditions:
    - {type: Launched, status: "True"}
    - {type: Registered, status: "Unknown"}
    - {type: Initialized, status: "False"}
"#,
        );
        assert_eq!(launched.nodepool.as_deref(), Some("edw-burst"));
        assert_eq!(launched.instance_type.as_deref(), Some("Standard_D2als_v6"));
        assert!(launched.launched && !launched.registered && !launched.initialized);
        assert_eq!(launched.node, None);
        assert!(!launched.disrupted);
        let initialized = claim(
            r#"
apiVersion: karpenter.sh/v1
kind: NodeClaim
metadata: {name: c, deletionTimestamp: "2026-03-02T09:30:00Z"}
status:
  nodeName: aks-edw-burst-x7k2p
  conditions: [{type: Registered, status: "True"}, {type: Initialized, status: "True"}]
"#,
        );
        assert_eq!(initialized.node.as_deref(), Some("aks-edw-burst-x7k2p"));
        assert!(initialized.registered && initialized.initialized && initialized.disrupted);
        let node: Node = serde_saphyr::from_str(
            "metadata: {name: n}\nstatus: {conditions: [{type: Ready, status: \"True\"}]}\n",
        )
        .expect("node YAML");
        assert!(node_is_ready(&node));
        let node: Node = serde_saphyr::from_str("metadata: {name: n}\n").expect("node YAML");
        assert!(!node_is_ready(&node));
    }

    fn sampled_pod(name: &str, node: Option<&str>, running: bool) -> SampledPod {
        SampledPod {
            name: name.into(),
            node: node.map(str::to_owned),
            running,
            ready: running,
            terminating: false,
        }
    }

    #[test]
    fn each_stage_is_the_first_sample_that_saw_it_and_gone_the_first_that_did_not_list_it() {
        let mut ledger = LifecycleLedger::default();
        let pods = |list: Vec<SampledPod>| Sampled {
            pods: Some(list),
            ..Sampled::default()
        };
        ledger.record(1.0, &pods(vec![sampled_pod("a", None, false)]));
        ledger.record(2.0, &pods(vec![sampled_pod("a", Some("n1"), false)]));
        ledger.record(
            4.0,
            &pods(vec![
                sampled_pod("a", Some("n1"), true),
                sampled_pod("b", None, false),
            ]),
        );
        // A failed list (None) concludes nothing: `b` is not gone at 5.
        ledger.record(5.0, &Sampled::default());
        let mut terminating = sampled_pod("a", Some("n1"), true);
        terminating.terminating = true;
        ledger.record(6.0, &pods(vec![terminating, sampled_pod("b", None, false)]));
        ledger.record(9.0, &pods(vec![sampled_pod("b", None, false)]));
        // Listed again after it was gone: it stays gone at its first absence.
        ledger.record(10.0, &pods(vec![sampled_pod("a", Some("n1"), true)]));
        let lifecycle = ledger.lifecycle("simulated s");
        let a = &lifecycle.pods[0];
        assert_eq!(
            (
                a.created,
                a.scheduled,
                a.running,
                a.ready,
                a.terminating,
                a.gone
            ),
            (
                Some(1.0),
                Some(2.0),
                Some(4.0),
                Some(4.0),
                Some(6.0),
                Some(9.0)
            )
        );
        assert_eq!(a.node.as_deref(), Some("n1"));
        let b = &lifecycle.pods[1];
        assert_eq!(
            (b.created, b.scheduled, b.gone),
            (Some(4.0), None, Some(10.0))
        );
        assert_eq!(
            (lifecycle.unit.as_str(), lifecycle.ended_at),
            ("simulated s", 10.0)
        );
    }

    #[test]
    fn a_claims_node_is_ready_when_the_nodes_list_says_so_and_deleted_when_it_is_unlisted() {
        let mut ledger = LifecycleLedger::default();
        let sample = |claim: Option<SampledClaim>, ready: &[&str]| Sampled {
            claims: Some(claim.into_iter().collect()),
            ready_nodes: Some(ready.iter().map(|n| (*n).to_owned()).collect()),
            ..Sampled::default()
        };
        let mut c = SampledClaim {
            name: "edw-burst-x7k2p".into(),
            nodepool: Some("edw-burst".into()),
            ..SampledClaim::default()
        };
        ledger.record(20.0, &sample(Some(c.clone()), &[]));
        c.launched = true;
        c.instance_type = Some("Standard_D2als_v6".into());
        ledger.record(22.0, &sample(Some(c.clone()), &[]));
        c.registered = true;
        c.node = Some("aks-n1".into());
        // Registered, but its node is not Ready yet.
        ledger.record(105.0, &sample(Some(c.clone()), &["aks-other"]));
        c.initialized = true;
        ledger.record(110.0, &sample(Some(c.clone()), &["aks-n1"]));
        c.disrupted = true;
        ledger.record(300.0, &sample(Some(c.clone()), &["aks-n1"]));
        ledger.record(340.0, &sample(None, &[]));
        let life = &ledger.lifecycle("real s").nodeclaims[0];
        assert_eq!(
            life,
            &NodeClaimLife {
                name: "edw-burst-x7k2p".into(),
                nodepool: Some("edw-burst".into()),
                instance_type: Some("Standard_D2als_v6".into()),
                node: Some("aks-n1".into()),
                created: Some(20.0),
                launched: Some(22.0),
                registered: Some(105.0),
                initialized: Some(110.0),
                node_ready: Some(110.0),
                disrupted: Some(300.0),
                deleted: Some(340.0),
            }
        );
    }

    #[test]
    fn every_change_of_the_replica_count_is_a_scale_event() {
        let mut ledger = LifecycleLedger::default();
        for (t, replicas) in [
            (0.0, Some(1)),
            (1.0, Some(0)),
            (2.0, None),
            (3.0, Some(0)),
            (4.0, Some(4)),
            (5.0, Some(4)),
            (6.0, Some(10)),
            (9.0, Some(0)),
        ] {
            ledger.record(
                t,
                &Sampled {
                    replicas,
                    ..Sampled::default()
                },
            );
        }
        let events: Vec<(f64, u64, u64)> = ledger
            .lifecycle("real s")
            .scale_events
            .iter()
            .map(|e| (e.t, e.from, e.to))
            .collect();
        assert_eq!(
            events,
            vec![(1.0, 1, 0), (4.0, 0, 4), (6.0, 4, 10), (9.0, 10, 0)]
        );
    }
}
