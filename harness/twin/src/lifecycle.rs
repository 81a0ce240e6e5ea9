//! A twin run's [`Lifecycle`] recorded in process: from the engine's store changes, on the
//! twin's clock (seconds since the engine started), the first time each consumer pod and each
//! NodeClaim passed each stage and every change of the consumer Deployment's replicas. It is
//! what a twin-produced run's `lifecycle.json` holds, for calibration and its tests.

use std::collections::{BTreeMap, HashMap};

use edw_model::lifecycle::{Lifecycle, NodeClaimLife, PodLife, ScaleEvent, LIFECYCLE_FORMAT};
use serde_json::Value;

use crate::controllers::is_consumer_pod;
use crate::objects::{condition_true, i64_at, is_deleting, label, str_at};
use crate::store::{EventType, ObjectKey, WatchEvent};

/// What the recorder says the times are in.
pub const TWIN_UNIT: &str = "simulated s";

/// Collects the stages from store changes ([`LifecycleRecorder::observe`]).
#[derive(Debug, Default, Clone)]
pub struct LifecycleRecorder {
    pods: Vec<PodLife>,
    pod_index: HashMap<ObjectKey, usize>,
    claims: Vec<NodeClaimLife>,
    claim_index: HashMap<String, usize>,
    /// When each node was first Ready, by name.
    node_ready: BTreeMap<String, f64>,
    replicas: HashMap<ObjectKey, u64>,
    scale_events: Vec<ScaleEvent>,
}

/// Sets `slot` to `now` unless it is set already (the first time a stage is seen).
fn first(slot: &mut Option<f64>, reached: bool, now: f64) {
    if reached && slot.is_none() {
        *slot = Some(now);
    }
}

impl LifecycleRecorder {
    /// Notes what `change`, made at `now` seconds, shows.
    pub fn observe(&mut self, change: &WatchEvent, now: f64) {
        let gone = change.event_type == EventType::Deleted;
        let object = &change.object;
        match change.key.resource.as_str() {
            "pods" => self.pod(&change.key, object, gone, now),
            "nodeclaims.karpenter.sh" => self.claim(&change.key.name, object, gone, now),
            "nodes" if !gone && condition_true(object, "Ready") => {
                self.node_ready
                    .entry(change.key.name.clone())
                    .or_insert(now);
            }
            "deployments.apps" if is_consumer_pod(&object["spec"]["template"]) => {
                let to = if gone {
                    0
                } else {
                    i64_at(object, "/spec/replicas").unwrap_or(1).max(0) as u64
                };
                let from = self.replicas.insert(change.key.clone(), to);
                if let Some(from) = from.filter(|from| *from != to) {
                    self.scale_events.push(ScaleEvent { t: now, from, to });
                } else if from.is_none() && to > 0 {
                    self.scale_events.push(ScaleEvent {
                        t: now,
                        from: 0,
                        to,
                    });
                }
            }
            _ => {}
        }
    }

    fn pod(&mut self, key: &ObjectKey, pod: &Value, gone: bool, now: f64) {
        let index = match self.pod_index.get(key) {
            Some(index) => *index,
            None if !gone && is_consumer_pod(pod) => {
                self.pods.push(PodLife {
                    name: key.name.clone(),
                    created: Some(now),
                    ..PodLife::default()
                });
                self.pod_index.insert(key.clone(), self.pods.len() - 1);
                self.pods.len() - 1
            }
            None => return,
        };
        let life = &mut self.pods[index];
        if gone {
            first(&mut life.gone, true, now);
            self.pod_index.remove(key);
            return;
        }
        let node = str_at(pod, "/spec/nodeName").filter(|n| !n.is_empty());
        if life.node.is_none() {
            life.node = node.map(str::to_owned);
        }
        first(&mut life.scheduled, node.is_some(), now);
        first(
            &mut life.running,
            str_at(pod, "/status/phase") == Some("Running"),
            now,
        );
        first(&mut life.ready, condition_true(pod, "Ready"), now);
        first(&mut life.terminating, is_deleting(pod), now);
    }

    fn claim(&mut self, name: &str, claim: &Value, gone: bool, now: f64) {
        let index = match self.claim_index.get(name) {
            Some(index) => *index,
            None if !gone => {
                self.claims.push(NodeClaimLife {
                    name: name.to_owned(),
                    created: Some(now),
                    ..NodeClaimLife::default()
                });
                self.claim_index
                    .insert(name.to_owned(), self.claims.len() - 1);
                self.claims.len() - 1
            }
            None => return,
        };
        let life = &mut self.claims[index];
        if gone {
            first(&mut life.deleted, true, now);
            self.claim_index.remove(name);
            return;
        }
        let text = |value: Option<&str>| value.filter(|v| !v.is_empty()).map(str::to_owned);
        life.nodepool = life
            .nodepool
            .take()
            .or_else(|| text(label(claim, "karpenter.sh/nodepool")));
        life.instance_type = life
            .instance_type
            .take()
            .or_else(|| text(label(claim, "node.kubernetes.io/instance-type")));
        life.node = life
            .node
            .take()
            .or_else(|| text(str_at(claim, "/status/nodeName")));
        first(&mut life.launched, condition_true(claim, "Launched"), now);
        first(
            &mut life.registered,
            condition_true(claim, "Registered"),
            now,
        );
        first(
            &mut life.initialized,
            condition_true(claim, "Initialized"),
            now,
        );
        first(&mut life.disrupted, is_deleting(claim), now);
    }

    /// The lifecycle so far: recording ended at `ended_at`, the load started at
    /// `load_started_at` (same clock).
    pub fn lifecycle(&self, ended_at: f64, load_started_at: Option<f64>) -> Lifecycle {
        let mut claims = self.claims.clone();
        for claim in &mut claims {
            claim.node_ready = claim
                .node
                .as_ref()
                .and_then(|node| self.node_ready.get(node).copied());
        }
        Lifecycle {
            format: LIFECYCLE_FORMAT,
            unit: TWIN_UNIT.to_owned(),
            load_started_at,
            ended_at,
            pods: self.pods.clone(),
            nodeclaims: claims,
            scale_events: self.scale_events.clone(),
            drain: None,
        }
    }
}

/// Runs the sample (`sample::deploy` of the walkthrough's objects) on the virtual clock with
/// `profile` until `until` simulated seconds, recording its lifecycle from the start: read it
/// with [`crate::engine::Engine::lifecycle`].
pub fn run_recorded(
    params: crate::params::TwinParams,
    profile: &crate::queue::LoadProfile,
    until: f64,
) -> Result<crate::engine::Engine, crate::simulate::SimulationError> {
    let mut engine = crate::engine::Engine::new_virtual(params, profile)?;
    engine.record_lifecycle();
    crate::sample::deploy(
        &engine.store,
        "aws2azmsgs",
        &crate::sample::ScalingConfig::default(),
    )?;
    engine.run_until(std::time::Duration::from_secs_f64(until.max(0.0)));
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::TwinParams;
    use crate::queue::LoadProfile;

    #[test]
    fn a_burst_records_every_stage_in_order() {
        let engine = run_recorded(
            TwinParams::default(),
            &LoadProfile::burst(30.0, 1000),
            1500.0,
        )
        .expect("twin");
        let lifecycle = engine.lifecycle(Some(30.0)).expect("recording");
        assert_eq!(lifecycle.ended_at, 1500.0);
        assert_eq!(lifecycle.nodeclaims.len(), 3, "{:?}", lifecycle.nodeclaims);
        for claim in &lifecycle.nodeclaims {
            let created = claim.created.unwrap();
            assert_eq!(claim.launched, Some(created + 2.0), "{claim:?}");
            assert_eq!(claim.registered, Some(created + 85.0), "{claim:?}");
            assert_eq!(claim.initialized, Some(created + 90.0), "{claim:?}");
            assert_eq!(claim.node_ready, claim.initialized, "{claim:?}");
            let disrupted = claim.disrupted.expect("consolidated");
            assert_eq!(claim.deleted, Some(disrupted + 20.0), "{claim:?}");
            assert!(claim.node.is_some() && claim.instance_type.is_some());
        }
        assert!(lifecycle.pods.len() >= 15, "{}", lifecycle.pods.len());
        for pod in lifecycle.pods.iter().filter(|p| p.running.is_some()) {
            assert_eq!(pod.running, pod.scheduled.map(|s| s + 5.0), "{pod:?}");
            assert!(pod.gone.is_some(), "{pod:?}");
        }
        let first = &lifecycle.scale_events[0];
        assert_eq!(
            (first.from, first.to),
            (0, 1),
            "{:?}",
            lifecycle.scale_events
        );
        assert_eq!(lifecycle.scale_events.last().unwrap().to, 0);
        assert!(crate::calibrate::check(&lifecycle).is_ok());
    }

    #[test]
    fn jitter_spreads_the_delays_repeatably_per_seed() {
        let delays = |seed| {
            let params = TwinParams {
                jitter: 0.2,
                seed,
                ..TwinParams::default()
            };
            let engine =
                run_recorded(params, &LoadProfile::burst(30.0, 1000), 400.0).expect("twin");
            let lifecycle = engine.lifecycle(None).unwrap();
            lifecycle
                .pods
                .iter()
                .filter_map(|p| Some(p.running? - p.scheduled?))
                .collect::<Vec<f64>>()
        };
        let first = delays(3);
        assert_eq!(first, delays(3));
        assert_ne!(first, delays(4));
        assert!(first.iter().all(|d| (4.0..=6.0).contains(d)), "{first:?}");
        assert!(first.iter().any(|d| (d - 5.0).abs() > 0.01), "{first:?}");
    }
}
