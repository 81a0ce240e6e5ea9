//! The observation recorder: a task that samples the workload's state into a timeline, woken
//! by kube-rs watch events on the consumer's pods, its Deployment and (with Karpenter) the
//! NodeClaims, and polling on a timer as the fallback (and for the queue, which has no watch).
//! Each sample also feeds the lifecycle ledger ([`super::lifecycle`]): when each pod and
//! NodeClaim passed each stage, and every replica change.

use std::collections::BTreeMap;

use edw_twin::cost::NodeSpan;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::lifecycle::{label, node_is_ready, LifecycleLedger, SampledClaim, SampledPod};
use crate::storage::Queue;
use crate::target::TargetClock;
use edw_model::lifecycle::Lifecycle;
use edw_model::report::{Observation, Read};

/// What to observe.
#[derive(Debug, Clone)]
pub struct Subject {
    pub namespace: String,
    pub deployment: String,
    /// `app=aqs-reader`: the consumer's pods.
    pub pod_selector: String,
    pub hpa: String,
    pub queue: Option<Queue>,
    /// Whether NodeClaims can be listed (Karpenter CRDs present).
    pub karpenter: bool,
}

/// A running recorder; it stops when dropped.
pub struct Recorder {
    latest: watch::Receiver<Observation>,
    history: Arc<Mutex<Vec<Observation>>>,
    claims: Arc<Mutex<ClaimLedger>>,
    lifecycle: Arc<Mutex<LifecycleLedger>>,
    stop: CancellationToken,
    clock: TargetClock,
    origin: Duration,
}

impl Recorder {
    /// Starts sampling `subject` every `interval` (real time) and on pod watch events. The
    /// timeline's clock is the target's (`clock`: the twin's governed clock, real time on a
    /// cluster), so that it reads in the same seconds as the system's own intervals.
    pub fn start(
        client: kube::Client,
        subject: Subject,
        interval: Duration,
        clock: TargetClock,
    ) -> Recorder {
        let (sender, latest) = watch::channel(Observation::default());
        let history = Arc::new(Mutex::new(Vec::new()));
        let claims = Arc::new(Mutex::new(ClaimLedger::default()));
        let lifecycle = Arc::new(Mutex::new(LifecycleLedger::default()));
        let stop = CancellationToken::new();
        let origin = clock.now();
        let sink = Sink {
            sender,
            history: history.clone(),
            claims: claims.clone(),
            lifecycle: lifecycle.clone(),
            stop: stop.clone(),
            clock: clock.clone(),
            origin,
        };
        tokio::spawn(run(client, subject, interval, sink));
        Recorder {
            latest,
            history,
            claims,
            lifecycle,
            stop,
            clock,
            origin,
        }
    }

    /// The newest observation.
    pub fn latest(&self) -> Observation {
        self.latest.borrow().clone()
    }

    /// A receiver that sees every new observation.
    pub fn subscribe(&self) -> watch::Receiver<Observation> {
        self.latest.clone()
    }

    /// Every observation so far (consecutive duplicates folded).
    pub fn history(&self) -> Vec<Observation> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Each Karpenter NodeClaim the recorder saw, with its VM size, from the first sample
    /// that listed it to the first that did not (the open ones until the last sample), on the
    /// timeline's clock.
    pub fn nodeclaim_spans(&self) -> Vec<NodeSpan> {
        self.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spans()
    }

    /// [`Recorder::nodeclaim_spans`] of `pool`'s NodeClaims only.
    pub fn nodeclaim_spans_of_pool(&self, pool: &str) -> Vec<NodeSpan> {
        self.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spans_of_pool(pool)
    }

    /// When each consumer pod and NodeClaim (with its node) was first seen at each stage of
    /// its life, and every change of the Deployment's replica count, on the timeline's clock
    /// (`unit` the clock's, `ended_at` the last sample; `load_started_at` is left to the
    /// caller, who knows when the load started).
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lifecycle(self.clock.unit())
    }

    /// Target seconds since the recorder started (the timeline's clock).
    pub fn elapsed(&self) -> f64 {
        self.clock.now().saturating_sub(self.origin).as_secs_f64()
    }

    /// The target's clock the timeline is in.
    pub fn clock(&self) -> &TargetClock {
        &self.clock
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The recorder task's outputs and clock.
struct Sink {
    sender: watch::Sender<Observation>,
    history: Arc<Mutex<Vec<Observation>>>,
    claims: Arc<Mutex<ClaimLedger>>,
    lifecycle: Arc<Mutex<LifecycleLedger>>,
    stop: CancellationToken,
    clock: TargetClock,
    origin: Duration,
}

async fn run(client: kube::Client, subject: Subject, interval: Duration, sink: Sink) {
    let Sink {
        sender,
        history,
        claims,
        lifecycle,
        stop,
        clock,
        origin,
    } = sink;
    let mut changes = open_watches(&client, &subject).await;
    loop {
        if changes.is_none() {
            changes = open_watches(&client, &subject).await;
        }
        // Stamped when the sample began: every value in it was read at or after `t`, so a
        // wait that accepts only samples from after it began never sees an older queue depth.
        let began = clock.now().saturating_sub(origin).as_secs_f64();
        let Sample {
            mut observation,
            listed,
            sampled,
        } = sample_in_full(&client, &subject).await;
        observation.t = began;
        if let Some(listed) = listed {
            claims
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(began, &listed);
        }
        lifecycle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(began, &sampled);
        {
            let mut history = history.lock().unwrap_or_else(|p| p.into_inner());
            let same = history.last().is_some_and(|last| {
                let mut l = last.clone();
                l.t = observation.t;
                l == observation
            });
            if !same {
                history.push(observation.clone());
            }
        }
        let _ = sender.send(observation);
        let tick = tokio::time::sleep(interval);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick => {}
            event = async {
                match changes.as_mut() {
                    Some(stream) => stream.next().await,
                    None => std::future::pending().await,
                }
            } => {
                // A watch that ended or failed: poll until it is open again.
                if event != Some(true) {
                    changes = None;
                }
            }
        }
    }
}

/// `true` for a change, `false` when a watch reported an error.
type Changes = futures::stream::BoxStream<'static, bool>;

/// The NodeClaims (`karpenter.sh/v1`), listed and watched as dynamic objects.
fn nodeclaims(client: &kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim"),
        "nodeclaims",
    );
    Api::all_with(client.clone(), &resource)
}

/// Watches on the consumer's pods and its Deployment, merged, and on the NodeClaims when the
/// subject has Karpenter (a refused NodeClaim watch leaves them to the timer); `None` when
/// the API refuses the pods' or the Deployment's.
async fn open_watches(client: &kube::Client, subject: &Subject) -> Option<Changes> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &subject.namespace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &subject.namespace);
    let pod_events = pods
        .watch(&WatchParams::default().labels(&subject.pod_selector), "0")
        .await;
    let deployment_events = deployments
        .watch(
            &WatchParams::default().fields(&format!("metadata.name={}", subject.deployment)),
            "0",
        )
        .await;
    let claim_events = if subject.karpenter {
        match nodeclaims(client).watch(&WatchParams::default(), "0").await {
            Ok(events) => Some(events),
            Err(error) => {
                tracing::debug!(%error, "NodeClaim watch unavailable; the recorder polls them");
                None
            }
        }
    } else {
        None
    };
    match (pod_events, deployment_events) {
        (Ok(p), Ok(d)) => {
            let p = p.map(|e| matches!(e, Ok(ev) if !matches!(ev, WatchEvent::Error(_))));
            let d = d.map(|e| matches!(e, Ok(ev) if !matches!(ev, WatchEvent::Error(_))));
            let merged = futures::stream::select(p, d).boxed();
            Some(match claim_events {
                Some(c) => {
                    let c = c.map(|e| matches!(e, Ok(ev) if !matches!(ev, WatchEvent::Error(_))));
                    futures::stream::select(merged, c).boxed()
                }
                None => merged,
            })
        }
        (Err(error), _) | (_, Err(error)) => {
            tracing::debug!(%error, "watches unavailable; the recorder polls");
            None
        }
    }
}

/// A NodeClaim as one sample listed it: its name and its labels' VM size and region.
#[derive(Debug, Clone, PartialEq)]
struct ListedClaim {
    name: String,
    size: Option<String>,
    region: Option<String>,
    /// `karpenter.sh/nodepool`.
    nodepool: Option<String>,
}

/// The NodeClaims the recorder has seen: name → its span.
#[derive(Debug, Default)]
struct ClaimLedger {
    spans: BTreeMap<String, NodeSpan>,
    /// Each claim's NodePool, as last listed.
    pools: BTreeMap<String, String>,
    last_sample: f64,
}

impl ClaimLedger {
    /// The claims `listed` at `t`: new ones open a
    /// span, listed ones extend theirs, open ones no longer listed end.
    fn record(&mut self, t: f64, listed: &[ListedClaim]) {
        self.last_sample = t;
        for claim in listed {
            if let Some(pool) = &claim.nodepool {
                self.pools.insert(claim.name.clone(), pool.clone());
            }
            let span = self
                .spans
                .entry(claim.name.clone())
                .or_insert_with(|| NodeSpan {
                    size: None,
                    region: None,
                    from: t,
                    until: t,
                    ended: false,
                });
            if span.ended {
                continue;
            }
            if claim.size.is_some() {
                span.size = claim.size.clone();
            }
            if claim.region.is_some() {
                span.region = claim.region.clone();
            }
            span.until = t;
        }
        for (name, span) in &mut self.spans {
            if !span.ended && !listed.iter().any(|claim| &claim.name == name) {
                span.ended = true;
                span.until = t;
            }
        }
    }

    /// The spans, the open ones until the last sample.
    fn spans(&self) -> Vec<NodeSpan> {
        self.spans_where(|_| true)
    }

    /// The spans of `pool`'s claims only (scenarios side by side each count their own).
    fn spans_of_pool(&self, pool: &str) -> Vec<NodeSpan> {
        self.spans_where(|name| self.pools.get(name).is_some_and(|p| p == pool))
    }

    fn spans_where(&self, keep: impl Fn(&str) -> bool) -> Vec<NodeSpan> {
        self.spans
            .iter()
            .filter(|(name, _)| keep(name))
            .map(|(_, span)| span)
            .map(|span| NodeSpan {
                until: if span.ended {
                    span.until
                } else {
                    self.last_sample
                },
                ..span.clone()
            })
            .collect()
    }
}

/// One observation (fields that cannot be read are left at their defaults).
pub async fn sample(client: &kube::Client, subject: &Subject) -> Observation {
    sample_in_full(client, subject).await.observation
}

/// What one sample read.
struct Sample {
    observation: Observation,
    /// The NodeClaims listed with their VM sizes (`None` when they could not be listed).
    listed: Option<Vec<ListedClaim>>,
    /// The objects' stages, for the lifecycle ledger.
    sampled: super::lifecycle::Sampled,
}

/// One observation, the NodeClaims listed and the objects' stages.
async fn sample_in_full(client: &kube::Client, subject: &Subject) -> Sample {
    let mut observation = Observation::default();
    let mut claims = None;
    let mut sampled = super::lifecycle::Sampled::default();
    if let Some(queue) = &subject.queue {
        // Azurite's in-memory sweep can stall the queue service for seconds: the rest of the
        // observation must not wait for it (the depth is then unknown for this sample).
        observation.queue = tokio::time::timeout(Duration::from_secs(1), queue.approximate_count())
            .await
            .ok()
            .and_then(Result::ok);
    }
    // A read that fails leaves its fields at their defaults and says so (`unread`): a
    // Deployment that could not be read is not one scaled to 0. (No Deployment at all is.)
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &subject.namespace);
    match deployments.get_opt(&subject.deployment).await {
        Ok(Some(deployment)) => {
            observation.desired =
                deployment.spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as u64;
            sampled.replicas = Some(observation.desired);
            observation.ready = deployment
                .status
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                .max(0) as u64;
        }
        Ok(None) => {}
        Err(_) => observation.unread.push(Read::Deployment),
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &subject.namespace);
    let listed_pods = pods
        .list(&ListParams::default().labels(&subject.pod_selector))
        .await;
    if listed_pods.is_err() {
        observation.unread.push(Read::Pods);
    }
    if let Ok(list) = listed_pods {
        sampled.pods = Some(list.items.iter().map(SampledPod::of).collect());
        for pod in list.items {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match pod.status.and_then(|s| s.phase).as_deref() {
                Some("Running") => observation.running += 1,
                Some("Pending") | None => observation.pending += 1,
                _ => {}
            }
        }
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let listed_nodes = nodes
        .list(&ListParams::default().labels("karpenter.sh/nodepool"))
        .await;
    if listed_nodes.is_err() {
        observation.unread.push(Read::Nodes);
    }
    if let Ok(list) = listed_nodes {
        let mut per_pool: BTreeMap<String, u64> = BTreeMap::new();
        sampled.ready_nodes = Some(
            list.items
                .iter()
                .filter(|n| node_is_ready(n))
                .filter_map(|n| n.metadata.name.clone())
                .collect(),
        );
        for node in list.items {
            if let Some(pool) = node
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("karpenter.sh/nodepool"))
            {
                *per_pool.entry(pool.clone()).or_default() += 1;
            }
        }
        observation.nodes = per_pool;
    }
    if subject.karpenter {
        let listed_claims = nodeclaims(client).list(&ListParams::default()).await;
        if listed_claims.is_err() {
            observation.unread.push(Read::NodeClaims);
        }
        if let Ok(list) = listed_claims {
            observation.nodeclaims = list.items.len() as u64;
            sampled.claims = Some(list.items.iter().map(SampledClaim::of).collect());
            claims = Some(
                list.items
                    .iter()
                    .map(|claim| {
                        let label = |key: &str| label(&claim.metadata, key);
                        ListedClaim {
                            name: claim.metadata.name.clone().unwrap_or_default(),
                            size: label("node.kubernetes.io/instance-type"),
                            region: label("topology.kubernetes.io/region"),
                            nodepool: label("karpenter.sh/nodepool"),
                        }
                    })
                    .collect(),
            );
        }
    }
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &subject.namespace);
    if let Ok(Some(hpa)) = hpas.get_opt(&subject.hpa).await {
        observation.hpa_desired = hpa.status.map(|s| s.desired_replicas.max(0) as u64);
    }
    Sample {
        observation,
        listed: claims,
        sampled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, size: Option<&str>) -> ListedClaim {
        ListedClaim {
            name: name.to_owned(),
            size: size.map(str::to_owned),
            region: Some("eastus".to_owned()),
            nodepool: Some("edw-run".to_owned()),
        }
    }

    #[test]
    fn a_claim_lives_from_the_first_sample_that_lists_it_to_the_first_that_does_not() {
        let mut ledger = ClaimLedger::default();
        ledger.record(10.0, &[listed("a", None)]);
        // Karpenter labels the size at Launched.
        ledger.record(
            12.0,
            &[listed("a", Some("Standard_D2als_v6")), listed("b", None)],
        );
        ledger.record(100.0, &[listed("b", Some("Standard_D4als_v6"))]);
        ledger.record(130.0, &[listed("b", Some("Standard_D4als_v6"))]);
        let spans = ledger.spans();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].size.as_deref(), Some("Standard_D2als_v6"));
        assert_eq!(
            (spans[0].from, spans[0].until, spans[0].ended),
            (10.0, 100.0, true)
        );
        assert_eq!(spans[1].region.as_deref(), Some("eastus"));
        assert_eq!(
            (spans[1].from, spans[1].until, spans[1].ended),
            (12.0, 130.0, false)
        );
    }
}
