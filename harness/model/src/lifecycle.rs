//! When each consumer pod, NodeClaim and node passed each stage of its life, and when the
//! autoscalers changed the replica count: what a run's `lifecycle.json` holds, what its
//! latency distributions are computed from ([`Lifecycle::latencies`]), and what
//! `edw twin calibrate` fits the twin's parameters to.
//!
//! Times are seconds on the run's timeline clock (the report's [`crate::MeasuredClock`]:
//! simulated seconds on the twin, real seconds on a cluster), from the same origin as the
//! timeline's `t`. Each is when the observation recorder first saw the stage (its samples are
//! woken by watch events), so it is late by at most the sampling delay.

use serde::{Deserialize, Serialize};

/// The version of the `lifecycle.json` format.
pub const LIFECYCLE_FORMAT: u32 = 1;

/// Everything a run recorded about its objects' lives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// [`LIFECYCLE_FORMAT`].
    pub format: u32,
    /// What the times are measured in (`simulated s` or `real s`).
    pub unit: String,
    /// When the load started (the first message), if it did.
    pub load_started_at: Option<f64>,
    /// When the recording ended: stages not reached by then were not seen.
    pub ended_at: f64,
    pub pods: Vec<PodLife>,
    pub nodeclaims: Vec<NodeClaimLife>,
    /// Every change of the consumer Deployment's `spec.replicas`.
    pub scale_events: Vec<ScaleEvent>,
    /// How fast the consumers drained, when the run measured it (written by the reports:
    /// the message count comes from the run's verification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainMeasurement>,
}

/// Messages processed per Running consumer pod: `messages` over `pod_seconds` (each Running
/// pod's seconds, summed) between the load start (`from`) and the queue first reading 0
/// (`until`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DrainMeasurement {
    pub messages: u64,
    /// Which count `messages` is: `processed once` or `sent`.
    pub counted: String,
    pub pod_seconds: f64,
    pub from: f64,
    pub until: f64,
}

impl DrainMeasurement {
    /// Messages per Running pod per second.
    pub fn per_pod_second(&self) -> f64 {
        self.messages as f64 / self.pod_seconds
    }
}

/// One consumer pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodLife {
    pub name: String,
    /// The node it was bound to.
    pub node: Option<String>,
    pub created: Option<f64>,
    /// Bound to a node (`spec.nodeName` set).
    pub scheduled: Option<f64>,
    /// Phase Running.
    pub running: Option<f64>,
    /// Condition Ready True.
    pub ready: Option<f64>,
    /// `metadata.deletionTimestamp` set.
    pub terminating: Option<f64>,
    /// No longer listed.
    pub gone: Option<f64>,
}

/// One Karpenter NodeClaim and its node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeClaimLife {
    pub name: String,
    pub nodepool: Option<String>,
    pub instance_type: Option<String>,
    /// `status.nodeName`.
    pub node: Option<String>,
    pub created: Option<f64>,
    /// Conditions Launched, Registered, Initialized True.
    pub launched: Option<f64>,
    pub registered: Option<f64>,
    pub initialized: Option<f64>,
    /// Its node's condition Ready True.
    pub node_ready: Option<f64>,
    /// `metadata.deletionTimestamp` set (Karpenter disrupts it).
    pub disrupted: Option<f64>,
    /// No longer listed (the VM is gone).
    pub deleted: Option<f64>,
}

/// A change of the consumer's replica count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleEvent {
    pub t: f64,
    pub from: u64,
    pub to: u64,
}

impl ScaleEvent {
    /// Who makes such a change for this workload: KEDA activates (0 → n) and deactivates
    /// (n → 0), the HPA KEDA made rescales between.
    pub fn actor(&self) -> &'static str {
        match (self.from, self.to) {
            (0, _) => "KEDA activation",
            (_, 0) => "KEDA deactivation",
            _ => "HPA rescale",
        }
    }
}

/// p50/p90/p99/max of a set of durations, as clusterloader2's pod-startup SLO and
/// kube-burner's latency quantiles state them (nearest-rank percentiles).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    /// The quantiles of `values` (`None` when there are none).
    pub fn of(values: &[f64]) -> Option<Quantiles> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        Some(Quantiles {
            count: sorted.len(),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// One latency distribution of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// A short key for JUnit properties and history (`pod_startup`).
    pub key: String,
    /// For people: "pod created → running".
    pub name: String,
    pub quantiles: Quantiles,
}

/// Durations from one stage to another, for every object that reached both.
fn spans<T>(
    items: &[T],
    from: impl Fn(&T) -> Option<f64>,
    to: impl Fn(&T) -> Option<f64>,
) -> Vec<f64> {
    items
        .iter()
        .filter_map(|i| Some(to(i)? - from(i)?))
        .filter(|d| *d >= 0.0)
        .collect()
}

impl Lifecycle {
    /// The run's latency distributions (those with at least one observation): pod startup
    /// stages, NodeClaim stages, the activation delay and node removal.
    pub fn latencies(&self) -> Vec<Latency> {
        let pods = &self.pods;
        let claims = &self.nodeclaims;
        let mut out: Vec<(&str, &str, Vec<f64>)> = vec![
            (
                "pod_scheduling",
                "pod created → scheduled",
                spans(pods, |p| p.created, |p| p.scheduled),
            ),
            (
                "pod_start",
                "pod scheduled → running",
                spans(pods, |p| p.scheduled, |p| p.running),
            ),
            (
                "pod_startup",
                "pod created → running",
                spans(pods, |p| p.created, |p| p.running),
            ),
            (
                "pod_ready",
                "pod created → ready",
                spans(pods, |p| p.created, |p| p.ready),
            ),
            (
                "pod_termination",
                "pod terminating → gone",
                spans(pods, |p| p.terminating, |p| p.gone),
            ),
            (
                "nodeclaim_launch",
                "NodeClaim created → launched",
                spans(claims, |c| c.created, |c| c.launched),
            ),
            (
                "nodeclaim_registration",
                "NodeClaim created → registered",
                spans(claims, |c| c.created, |c| c.registered),
            ),
            (
                "nodeclaim_ready",
                "NodeClaim created → node Ready",
                spans(claims, |c| c.created, |c| c.node_ready.or(c.initialized)),
            ),
            (
                "node_removal",
                "NodeClaim disrupted → deleted",
                spans(claims, |c| c.disrupted, |c| c.deleted),
            ),
        ];
        if let (Some(load), Some(first)) = (
            self.load_started_at,
            self.scale_events.iter().find(|e| e.from == 0 && e.to > 0),
        ) {
            if first.t >= load {
                out.push((
                    "activation",
                    "first message → first replica",
                    vec![first.t - load],
                ));
            }
        }
        out.into_iter()
            .filter_map(|(key, name, values)| {
                Some(Latency {
                    key: key.to_owned(),
                    name: name.to_owned(),
                    quantiles: Quantiles::of(&values)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let q = Quantiles::of(&values).unwrap();
        assert_eq!(
            (q.count, q.p50, q.p90, q.p99, q.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        let q = Quantiles::of(&[3.0]).unwrap();
        assert_eq!((q.p50, q.p99, q.max), (3.0, 3.0, 3.0));
        assert!(Quantiles::of(&[]).is_none());
        assert!(Quantiles::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn latencies_come_from_the_objects_that_reached_both_stages() {
        let pod = |created, scheduled, running| PodLife {
            name: "p".into(),
            created: Some(created),
            scheduled,
            running,
            ..PodLife::default()
        };
        let lifecycle = Lifecycle {
            format: LIFECYCLE_FORMAT,
            unit: "simulated s".into(),
            load_started_at: Some(10.0),
            ended_at: 500.0,
            pods: vec![
                pod(20.0, Some(21.0), Some(26.0)),
                pod(20.0, Some(120.0), Some(125.0)),
                pod(30.0, None, None),
            ],
            nodeclaims: vec![NodeClaimLife {
                name: "default-abcde".into(),
                created: Some(22.0),
                launched: Some(24.0),
                registered: Some(107.0),
                initialized: Some(112.0),
                ..NodeClaimLife::default()
            }],
            scale_events: vec![
                ScaleEvent {
                    t: 40.0,
                    from: 0,
                    to: 1,
                },
                ScaleEvent {
                    t: 55.0,
                    from: 1,
                    to: 4,
                },
            ],
            drain: None,
        };
        let latencies = lifecycle.latencies();
        let get = |key: &str| {
            latencies
                .iter()
                .find(|l| l.key == key)
                .map(|l| l.quantiles.clone())
        };
        let startup = get("pod_startup").unwrap();
        assert_eq!((startup.count, startup.p50, startup.max), (2, 6.0, 105.0));
        assert_eq!(get("pod_start").unwrap().max, 5.0);
        assert_eq!(get("nodeclaim_ready").unwrap().p50, 90.0);
        assert_eq!(get("activation").unwrap().p50, 30.0);
        assert!(get("node_removal").is_none(), "no claim was disrupted");
        assert_eq!(lifecycle.scale_events[0].actor(), "KEDA activation");
        assert_eq!(lifecycle.scale_events[1].actor(), "HPA rescale");
    }

    #[test]
    fn a_lifecycle_reads_back_what_it_wrote() {
        let lifecycle = Lifecycle {
            format: LIFECYCLE_FORMAT,
            unit: "real s".into(),
            ended_at: 3.5,
            ..Lifecycle::default()
        };
        let text = serde_json::to_string(&lifecycle).unwrap();
        assert_eq!(serde_json::from_str::<Lifecycle>(&text).unwrap(), lifecycle);
    }
}
