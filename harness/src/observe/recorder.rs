//! The observation recorder: a task that samples the workload's state into a timeline, woken
//! by kube-rs watch events on the consumer's pods (and polling on a timer as the fallback, and
//! for the queue, which has no watch).

use std::collections::BTreeMap;
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

use crate::scenario::model::Observation;
use crate::storage::Queue;
use crate::target::TargetClock;

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
        let stop = CancellationToken::new();
        let origin = clock.now();
        let sink = Sink {
            sender,
            history: history.clone(),
            stop: stop.clone(),
            clock: clock.clone(),
            origin,
        };
        tokio::spawn(run(client, subject, interval, sink));
        Recorder {
            latest,
            history,
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
    stop: CancellationToken,
    clock: TargetClock,
    origin: Duration,
}

async fn run(client: kube::Client, subject: Subject, interval: Duration, sink: Sink) {
    let Sink {
        sender,
        history,
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
        let mut observation = sample(&client, &subject).await;
        observation.t = began;
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

/// Watches on the consumer's pods and its Deployment, merged; `None` when the API refuses.
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
    match (pod_events, deployment_events) {
        (Ok(p), Ok(d)) => {
            let p = p.map(|e| matches!(e, Ok(ev) if !matches!(ev, WatchEvent::Error(_))));
            let d = d.map(|e| matches!(e, Ok(ev) if !matches!(ev, WatchEvent::Error(_))));
            Some(futures::stream::select(p, d).boxed())
        }
        (Err(error), _) | (_, Err(error)) => {
            tracing::debug!(%error, "watches unavailable; the recorder polls");
            None
        }
    }
}

/// One observation (fields that cannot be read are left at their defaults).
pub async fn sample(client: &kube::Client, subject: &Subject) -> Observation {
    let mut observation = Observation::default();
    if let Some(queue) = &subject.queue {
        // Azurite's in-memory sweep can stall the queue service for seconds: the rest of the
        // observation must not wait for it (the depth is then unknown for this sample).
        observation.queue = tokio::time::timeout(Duration::from_secs(1), queue.approximate_count())
            .await
            .ok()
            .and_then(Result::ok);
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &subject.namespace);
    if let Ok(Some(deployment)) = deployments.get_opt(&subject.deployment).await {
        observation.desired = deployment.spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as u64;
        observation.ready = deployment
            .status
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
            .max(0) as u64;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &subject.namespace);
    if let Ok(list) = pods
        .list(&ListParams::default().labels(&subject.pod_selector))
        .await
    {
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
    if let Ok(list) = nodes
        .list(&ListParams::default().labels("karpenter.sh/nodepool"))
        .await
    {
        let mut per_pool: BTreeMap<String, u64> = BTreeMap::new();
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
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim"),
            "nodeclaims",
        );
        let claims: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        if let Ok(list) = claims.list(&ListParams::default()).await {
            observation.nodeclaims = list.items.len() as u64;
        }
    }
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &subject.namespace);
    if let Ok(Some(hpa)) = hpas.get_opt(&subject.hpa).await {
        observation.hpa_desired = hpa.status.map(|s| s.desired_replicas.max(0) as u64);
    }
    observation
}
