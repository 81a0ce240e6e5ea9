//! In-cluster load: an Indexed Job whose pods run the producer from the consumer's image with
//! the consumer's credentials, each sending its slice; the step waits on the Job's status
//! with progress, reads what each pod sent from its log, deletes the Job, and says how many
//! messages were actually sent.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, PostParams};
use serde_json::{json, Value};

use crate::manifests::{Applied, CREATED_BY_ANNOTATION, RUN_ID_LABEL};
use crate::runner::Context;
use crate::target::TargetClock;
use crate::workload::{ProduceReport, SliceCommand, SliceReport};
use edw_model::run::InClusterLoad;

/// The label every pod of a Job carries (Kubernetes 1.27+).
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// How long every pod of the Job may stay unschedulable (Karpenter usually brings a node
/// within a minute or two) before the load is given up.
const UNSCHEDULABLE_PATIENCE: Duration = Duration::from_secs(300);

/// How long a producer container may wait for a reason that seldom clears by itself (an image
/// pull that fails, a config error) before the load is given up, naming it: a registry
/// attachment or a role assignment can take a minute or two to apply.
const STUCK_PATIENCE: Duration = Duration::from_secs(180);

/// Container waiting reasons that do not clear without a change (kubelet's image and
/// container-creation errors).
const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ImageInspectError",
    "RegistryUnavailable",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Why an in-cluster load did not send everything.
#[derive(Debug, thiserror::Error)]
pub enum LoadJobError {
    #[error("the in-cluster load copies the consumer Deployment {namespace}/{deployment}'s image, service account and credentials, but it could not be read: {source}")]
    NoConsumer {
        namespace: String,
        deployment: String,
        #[source]
        source: kube::Error,
    },
    #[error("the consumer Deployment {namespace}/{deployment} has no container to copy")]
    NoContainer {
        namespace: String,
        deployment: String,
    },
    #[error("the load Job {name} could not be created: {source}")]
    Create {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The Job that sends `command`'s load, one pod per slice, copying the consumer Deployment's
/// pod template: image, pull policy, service account (workload identity), the storage
/// variables and Secret references, node selector and tolerations (the run's NodePool). Its
/// pods are never retried (a retried pod would send its slice twice); the run's label marks it.
pub fn job_manifest(
    name: &str,
    namespace: &str,
    run_id: &str,
    consumer: &Value,
    command: &SliceCommand,
    load_pool: Option<&LoadPool>,
    active_deadline: Duration,
) -> Option<Value> {
    let template = consumer.pointer("/spec/template")?;
    let container = template.pointer("/spec/containers/0")?;
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "containers": [{
            "name": "producer",
            "image": container.get("image")?,
            "command": command.command(),
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"cpu": "500m", "memory": "128Mi"}
            }
        }]
    });
    for field in [
        "imagePullPolicy",
        "env",
        "envFrom",
        "securityContext",
        "volumeMounts",
    ] {
        if let Some(value) = container.get(field) {
            pod_spec["containers"][0][field] = value.clone();
        }
    }
    for field in [
        "serviceAccountName",
        "nodeSelector",
        "tolerations",
        "imagePullSecrets",
        "securityContext",
        "volumes",
    ] {
        if let Some(value) = template.pointer(&format!("/spec/{field}")) {
            pod_spec[field] = value.clone();
        }
    }
    // On the run's own load pool: its selector and its taint, not the consumers' pool.
    if let Some(pool) = load_pool {
        pod_spec["nodeSelector"] = json!({"karpenter.sh/nodepool": pool.name});
        pod_spec["tolerations"] = json!([{
            "key": LOAD_TAINT_KEY, "operator": "Equal", "value": pool.run_id, "effect": "NoSchedule"
        }]);
    }
    let mut pod_labels = json!({"app.kubernetes.io/component": "edw-load"});
    // Karpenter's consolidation would evict a producer mid-slice (it is never retried).
    let pod_annotations = json!({"karpenter.sh/do-not-disrupt": "true"});
    if !run_id.is_empty() {
        pod_labels[RUN_ID_LABEL] = json!(run_id);
    }
    if let Some(identity) = template.pointer("/metadata/labels/azure.workload.identity~1use") {
        pod_labels["azure.workload.identity/use"] = identity.clone();
    }
    let mut labels = json!({"app.kubernetes.io/component": "edw-load"});
    let mut annotations = json!({});
    if !run_id.is_empty() {
        labels[RUN_ID_LABEL] = json!(run_id);
        annotations[RUN_ID_LABEL] = json!(run_id);
        annotations[CREATED_BY_ANNOTATION] = json!(format!(
            "edw-conformance run {run_id}: in-cluster load, deleted when it ends"
        ));
    }
    Some(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": command.slices,
            "parallelism": command.slices,
            "backoffLimit": 0,
            // Backstops should the run die before it deletes the Job: Kubernetes stops its pods
            // once the load step would have given up, and removes the Job ten minutes after.
            "activeDeadlineSeconds": active_deadline.as_secs().max(1),
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": pod_labels, "annotations": pod_annotations},
                "spec": pod_spec,
            }
        }
    }))
}

/// The taint key of a run's load pool (its value: the run id).
pub const LOAD_TAINT_KEY: &str = "edw-conformance/load";

/// The NodePool the load Job's pods run on: the run's own pool's spec under another name and
/// taint, so that the nodes the producers take are never counted as the consumers' (the run's
/// node assertions, lifecycle and cost count the run's pool only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadPool {
    pub name: String,
    pub run_id: String,
}

impl LoadPool {
    /// `<run pool>-load` for `run_id`.
    pub fn for_run(run_pool: &str, run_id: &str) -> LoadPool {
        LoadPool {
            name: format!("{run_pool}-load"),
            run_id: run_id.to_owned(),
        }
    }

    /// The pool to create from the run's live pool `run_pool` (its spec; the template's labels
    /// and taints are the load pool's own), or `None` when it has no spec.
    pub fn manifest(&self, run_pool: &Value) -> Option<Value> {
        let mut spec = run_pool.get("spec")?.clone();
        let template = spec.pointer_mut("/template")?;
        template["metadata"]["labels"] = json!({
            RUN_ID_LABEL: self.run_id,
            "app.kubernetes.io/component": "edw-load",
        });
        template["spec"]["taints"] = json!([{
            "key": LOAD_TAINT_KEY, "value": self.run_id, "effect": "NoSchedule"
        }]);
        Some(json!({
            "apiVersion": run_pool.get("apiVersion").cloned().unwrap_or(json!("karpenter.sh/v1")),
            "kind": "NodePool",
            "metadata": {
                "name": self.name,
                "labels": {RUN_ID_LABEL: self.run_id, "app.kubernetes.io/component": "edw-load"},
                "annotations": {
                    RUN_ID_LABEL: self.run_id,
                    CREATED_BY_ANNOTATION: format!(
                        "edw-conformance run {}: the in-cluster load's producers, deleted by its cleanup",
                        self.run_id
                    ),
                },
            },
            "spec": spec,
        }))
    }
}

/// Creates the run's load pool next to its own pool (once per run; it stays in `ctx.applied`
/// so that the cleanup deletes it and waits for its nodes), or `None` when the run has no pool
/// of its own (`--use-deployed`: the producers follow the team's consumer's placement).
async fn ensure_load_pool(ctx: &mut Context) -> Result<Option<LoadPool>, String> {
    let run_pool = ctx.names.nodepool.clone();
    let own = ctx
        .applied
        .iter()
        .any(|a| a.kind == "NodePool" && a.name == run_pool);
    if !own || ctx.names.run_id.is_empty() {
        return Ok(None);
    }
    let pool = LoadPool::for_run(&run_pool, &ctx.names.run_id);
    if ctx
        .applied
        .iter()
        .any(|a| a.kind == "NodePool" && a.name == pool.name)
    {
        return Ok(Some(pool));
    }
    let api: Api<kube::api::DynamicObject> = Api::all_with(
        ctx.target.client(),
        &super::k8s::dynamic("karpenter.sh", "v1", "NodePool", "nodepools"),
    );
    let live = api.get(&run_pool).await.map_err(|e| {
        format!(
            "the run's NodePool {run_pool} could not be read to make the load pool: {}",
            crate::error_chain::text(&e)
        )
    })?;
    let live = serde_json::to_value(&live).unwrap_or_default();
    let manifest = pool
        .manifest(&live)
        .ok_or_else(|| format!("the run's NodePool {run_pool} has no spec to copy"))?;
    // In the ledger before it is created: a run stopped while the create is in flight still
    // deletes it (a pool that never appeared is "already gone").
    let planned = crate::manifests::planned(std::slice::from_ref(&manifest));
    ctx.applied.extend(planned.iter().cloned());
    ctx.write_ledger();
    if let Err(e) = crate::manifests::create(&ctx.target.client(), &[manifest]).await {
        ctx.applied.retain(|a| !planned.contains(a));
        ctx.write_ledger();
        return Err(crate::error_chain::text(&e));
    }
    ctx.progress(&format!(
        "created NodePool {} for the load's producer pods (the run's NodePool {run_pool}'s spec, its own taint)",
        pool.name
    ));
    Ok(Some(pool))
}

/// What the Job did.
#[derive(Debug, Default)]
pub struct LoadJobOutcome {
    /// What each pod reported, by index.
    pub reports: BTreeMap<u64, SliceReport>,
    /// Why the load is incomplete (a failed or unschedulable pod, a timeout), if it is.
    pub problem: Option<String>,
    /// What was seen, for the step's details.
    pub details: Vec<String>,
    pub elapsed: Duration,
    /// On the run's timeline clock: when the first producer pod was seen running (the load's
    /// start: before it the Job waited for its pods to be scheduled and started) and when the
    /// Job was seen finished; `None` without a recorder or when no pod ran.
    pub sending_window: Option<(f64, f64)>,
}

impl LoadJobOutcome {
    /// The load as a producer report: every number a pod says it sent; every number of a
    /// slice that was not sent (or whose pod said nothing) as failed, with the reason.
    pub fn as_produce_report(&self, command: &SliceCommand) -> ProduceReport {
        let mut sent = Vec::new();
        let mut failed = Vec::new();
        for index in 0..command.slices {
            let Ok(slice) = command.slice(index) else {
                continue;
            };
            let numbers = slice.first..slice.first + slice.count;
            match self.reports.get(&index) {
                Some(report) => {
                    let reported = report.sent_numbers().unwrap_or_default();
                    let mut not_sent: Vec<(u64, String)> = report.failed.clone();
                    let why = report
                        .stopped
                        .clone()
                        .unwrap_or_else(|| "not sent".to_owned());
                    for n in numbers {
                        if reported.binary_search(&n).is_err()
                            && !not_sent.iter().any(|(f, _)| *f == n)
                        {
                            not_sent.push((n, format!("pod {index}: {why}")));
                        }
                    }
                    sent.extend(reported);
                    failed.extend(not_sent);
                }
                None => failed.extend(numbers.map(|n| {
                    (
                        n,
                        format!("pod {index} of the load Job left no report (failed, never ran or its log is gone)"),
                    )
                })),
            }
        }
        sent.sort_unstable();
        failed.sort_by_key(|(n, _)| *n);
        ProduceReport {
            sent,
            failed,
            elapsed: self.sending_span().unwrap_or(self.elapsed),
        }
    }

    /// From the first pod's first send to the last pod's last (the pods' clocks): the time
    /// the load took to send, without the Job's scheduling and pod starts.
    pub fn sending_span(&self) -> Option<Duration> {
        let start = self
            .reports
            .values()
            .map(|r| r.started_at_unix)
            .filter(|t| *t > 0.0)
            .reduce(f64::min)?;
        let end = self
            .reports
            .values()
            .map(|r| r.started_at_unix + r.elapsed_seconds)
            .reduce(f64::max)?;
        (end > start).then(|| Duration::from_secs_f64(end - start))
    }
}

/// Creates the Job for `load` of `count` messages from `first`, waits for it within `within`
/// (target time) with progress, reads every pod's report, and deletes the Job (and its pods)
/// whatever happened. The Job is in `ctx.applied` (and the ledger) while it exists, so an
/// interrupted run's cleanup deletes it.
pub async fn send_from_cluster(
    ctx: &mut Context,
    load: &InClusterLoad,
    count: u64,
    first: u64,
    within: Duration,
) -> Result<(LoadJobOutcome, SliceCommand), String> {
    edw_model::slices::check_split(count, load.parallelism).map_err(|e| e.to_string())?;
    let command = SliceCommand {
        count,
        slices: load.parallelism,
        first,
        rate_per_pod: load.rate.map(|rate| rate / load.parallelism as f64),
        concurrency: ctx.settings.producer_concurrency.clamp(1, 64),
    };
    let client = ctx.target.client();
    let namespace = ctx.names.namespace.clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let consumer = deployments
        .get(&ctx.names.deployment)
        .await
        .map_err(|source| LoadJobError::NoConsumer {
            namespace: namespace.clone(),
            deployment: ctx.names.deployment.clone(),
            source,
        })
        .map_err(|e| crate::error_chain::text(&e))?;
    let consumer = serde_json::to_value(&consumer).unwrap_or_default();
    let load_pool = ensure_load_pool(ctx).await?;
    let name = job_name(&ctx.names.run_id, ctx.sent_loads.len());
    let manifest = job_manifest(
        &name,
        &namespace,
        &ctx.names.run_id,
        &consumer,
        &command,
        load_pool.as_ref(),
        within + Duration::from_secs(60),
    )
    .ok_or_else(|| {
        LoadJobError::NoContainer {
            namespace: namespace.clone(),
            deployment: ctx.names.deployment.clone(),
        }
        .to_string()
    })?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let job: Job = serde_json::from_value(manifest).map_err(|e| e.to_string())?;
    // In the ledger before it is created: a run stopped while the create is in flight still
    // deletes it.
    let applied = Applied {
        api_version: "batch/v1".to_owned(),
        kind: "Job".to_owned(),
        namespace: Some(namespace.clone()),
        name: name.clone(),
    };
    ctx.applied.push(applied.clone());
    ctx.write_ledger();
    if let Err(source) = jobs.create(&PostParams::default(), &job).await {
        ctx.applied.retain(|a| a != &applied);
        ctx.write_ledger();
        return Err(crate::error_chain::text(&LoadJobError::Create {
            name: name.clone(),
            source,
        }));
    }
    ctx.progress(&format!(
        "load Job {namespace}/{name}: {} pods, {count} messages from {first}{}",
        load.parallelism,
        load.rate
            .map(|r| format!(" at {r} msg/s in all"))
            .unwrap_or_default()
    ));
    let clock = ctx.clock();
    let started = std::time::Instant::now();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let mut outcome = LoadJobOutcome::default();
    let waited = wait_for_job(
        ctx,
        &clock,
        &jobs,
        &pods,
        &name,
        load.parallelism,
        within,
        &mut outcome.sending_window,
    )
    .await;
    outcome.elapsed = started.elapsed();
    match waited {
        Ok(line) => outcome.details.push(format!(
            "{line}; the Job took {:.1} real s from its creation",
            outcome.elapsed.as_secs_f64()
        )),
        Err(problem) => outcome.problem = Some(problem),
    }
    read_reports(&pods, &name, &mut outcome).await;
    // Deleted now, with its pods; the Job leaves `applied` once it is gone.
    match crate::manifests::delete_owned(&client, &applied, &ctx.names.run_id).await {
        Ok(_) => {
            let gone = super::k8s::poll_until(&clock, Duration::from_secs(120), || async {
                match jobs.get_opt(&name).await {
                    Ok(None) => Ok(()),
                    Ok(Some(_)) => Err(format!("the load Job {name} is still there")),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await;
            match gone {
                Ok(()) => {
                    ctx.applied.retain(|a| a != &applied);
                    ctx.deleted_during_run.push(applied.clone());
                    ctx.write_ledger();
                    outcome
                        .details
                        .push(format!("deleted the load Job {name} and its pods"));
                }
                Err(left) => outcome
                    .details
                    .push(format!("{left}: the run's cleanup deletes it")),
            }
        }
        Err(e) => outcome.details.push(format!(
            "the load Job {name} could not be deleted now ({}): the run's cleanup deletes it",
            crate::error_chain::text(&e)
        )),
    }
    Ok((outcome, command))
}

/// `edw-load-<run id>-<n>`, a DNS label short enough for the pods' names and hostnames.
fn job_name(run_id: &str, loads_before: usize) -> String {
    let id: String = run_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(24)
        .collect();
    // A suffix of its own: `edw load --in-cluster` run again in a new process (whose count of
    // earlier loads starts at 0) never meets a Job of an earlier load still being deleted.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("edw-load-{id}-{}-{:04x}", loads_before + 1, nanos & 0xffff)
}

/// Waits until the Job is Complete or Failed, or every pod has stayed unschedulable for
/// [`UNSCHEDULABLE_PATIENCE`], or `within` passes; reports progress as it changes, and notes in
/// `window` (timeline clock) when a producer first ran and when the Job was seen finished.
#[allow(clippy::too_many_arguments)]
async fn wait_for_job(
    ctx: &Context,
    clock: &TargetClock,
    jobs: &Api<Job>,
    pods: &Api<Pod>,
    name: &str,
    parallelism: u64,
    within: Duration,
    window: &mut Option<(f64, f64)>,
) -> Result<String, String> {
    let timeline_now = || ctx.recorder.as_ref().map(|r| r.elapsed());
    let deadline = clock.now() + within;
    let mut last_progress = String::new();
    let mut unschedulable_since: Option<Duration> = None;
    let mut stuck_since: Option<Duration> = None;
    loop {
        let job = jobs.get(name).await.map_err(|e| {
            format!(
                "the load Job {name} could not be read: {}",
                crate::error_chain::text(&e)
            )
        })?;
        let status = job.status.clone().unwrap_or_default();
        let condition = |kind: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == kind && c.status == "True")
                .cloned()
        };
        let (succeeded, failed, active) = (
            status.succeeded.unwrap_or(0),
            status.failed.unwrap_or(0),
            status.active.unwrap_or(0),
        );
        if let Some(now) = timeline_now() {
            let ran = status.ready.unwrap_or(0) + succeeded + failed > 0;
            match window {
                Some((_, end)) => *end = now,
                None if ran => *window = Some((now, now)),
                None => {}
            }
        }
        let progress = format!(
            "load Job {name}: {succeeded}/{parallelism} pods done, {active} running, {failed} failed"
        );
        if progress != last_progress {
            ctx.progress(&progress);
            last_progress = progress.clone();
        }
        if condition("Complete").is_some() {
            return Ok(format!(
                "load Job {name}: {succeeded} of {parallelism} pods completed ({})",
                clock.name()
            ));
        }
        if let Some(failure) = condition("Failed") {
            return Err(format!(
                "the load Job {name} failed ({}: {}); {succeeded} of {parallelism} pods completed, {failed} failed{}",
                failure.reason.unwrap_or_default(),
                failure.message.unwrap_or_default(),
                why_pods_did_not_send(ctx, pods, name).await
            ));
        }
        let listed = job_pods(pods, name).await;
        let unschedulable = unschedulable_pods(&listed);
        let now = clock.now();
        let stuck = all_stuck(&listed);
        if let Some(trouble) = outlasted(&mut stuck_since, now, stuck, STUCK_PATIENCE) {
            return Err(format!(
                "the load Job {name}'s producers could not start for {:.0} s ({}): {trouble}",
                STUCK_PATIENCE.as_secs_f64(),
                clock.name()
            ));
        }
        let unschedulable = unschedulable.filter(|_| active > 0);
        if let Some(why) = outlasted(
            &mut unschedulable_since,
            now,
            unschedulable,
            UNSCHEDULABLE_PATIENCE,
        ) {
            return Err(format!(
                "the load Job {name}'s pods could not be scheduled for {:.0} s ({}): {why}",
                UNSCHEDULABLE_PATIENCE.as_secs_f64(),
                clock.name()
            ));
        }
        if now >= deadline {
            return Err(format!(
                "the load Job {name} did not finish within {:.0} s ({}): {succeeded} of {parallelism} pods completed, {active} running, {failed} failed{}",
                within.as_secs_f64(),
                clock.name(),
                why_pods_did_not_send(ctx, pods, name).await
            ));
        }
        // Every 2 s of target time (100 ms real on a x20 twin), at most every 500 ms real.
        let nap = clock
            .nap_before(deadline)
            .min(clock.real(Duration::from_secs(2)));
        tokio::time::sleep(nap.clamp(Duration::from_millis(20), Duration::from_millis(500))).await;
    }
}

/// `seen` once it has been seen for `patience` without a break (`since` holds when the
/// current stretch began; a check without it ends the stretch).
fn outlasted<T>(
    since: &mut Option<Duration>,
    now: Duration,
    seen: Option<T>,
    patience: Duration,
) -> Option<T> {
    let Some(seen) = seen else {
        *since = None;
        return None;
    };
    let began = *since.get_or_insert(now);
    (now.saturating_sub(began) >= patience).then_some(seen)
}

/// The Job's pods, by its job-name label.
async fn list_job_pods(pods: &Api<Pod>, job: &str) -> Result<Vec<Pod>, kube::Error> {
    pods.list(&ListParams::default().labels(&format!("{JOB_NAME_LABEL}={job}")))
        .await
        .map(|l| l.items)
}

/// The Job's pods (empty when they cannot be listed).
async fn job_pods(pods: &Api<Pod>, job: &str) -> Vec<Pod> {
    list_job_pods(pods, job).await.unwrap_or_default()
}

/// When every pod of the Job that has not finished (nor is being deleted) has a container
/// waiting for a reason in [`STUCK_REASONS`]: the first one, described. One pod stuck while its
/// siblings still send is not yet a reason to stop them all.
fn all_stuck(listed: &[Pod]) -> Option<String> {
    let unfinished: Vec<&Pod> = listed
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .collect();
    let is_stuck = |pod: &Pod| {
        containers(pod).any(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .is_some_and(|r| STUCK_REASONS.contains(&r))
        })
    };
    if unfinished.is_empty() || !unfinished.iter().all(|p| is_stuck(p)) {
        return None;
    }
    let stuck = unfinished.len();
    pod_trouble(unfinished[0]).map(|first| match stuck {
        1 => first,
        n => format!("{first} (and {} more pods waiting)", n - 1),
    })
}

/// A pod's init containers, then its containers.
fn containers(pod: &Pod) -> impl Iterator<Item = &k8s_openapi::api::core::v1::ContainerStatus> {
    let status = pod.status.as_ref();
    let init = status.and_then(|s| s.init_container_statuses.as_ref());
    let main = status.and_then(|s| s.container_statuses.as_ref());
    init.into_iter().flatten().chain(main.into_iter().flatten())
}

/// What kept a pod of the load Job from sending, from its container statuses: a container
/// ended with a non-zero exit code or waiting for a reason (image pull, config), with what the
/// kubelet said, and a hint when the image has no `edw` to run. `None` for a pod that is fine.
pub fn pod_trouble(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    container_trouble(&name, pod).or_else(|| {
        // The pod's own reason (Evicted, DeadlineExceeded, OutOfcpu…) when no container says.
        let status = pod.status.as_ref()?;
        let reason = status.reason.clone()?;
        let message = status.message.clone().unwrap_or_default();
        Some(
            format!("pod {name}: {reason}: {message}")
                .trim_end_matches([':', ' '])
                .to_owned(),
        )
    })
}

fn container_trouble(name: &str, pod: &Pod) -> Option<String> {
    containers(pod).find_map(|c| {
        let state = c.state.as_ref()?;
        let (what, message) = if let Some(t) = state.terminated.as_ref().filter(|t| t.exit_code != 0) {
            (
                format!(
                    "{} (exit code {})",
                    t.reason.clone().unwrap_or_else(|| "terminated".to_owned()),
                    t.exit_code
                ),
                t.message.clone().unwrap_or_default(),
            )
        } else {
            let w = state.waiting.as_ref()?;
            let reason = w.reason.clone()?;
            if reason == "ContainerCreating" || reason == "PodInitializing" {
                return None;
            }
            (reason, w.message.clone().unwrap_or_default())
        };
        let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut line = format!("pod {name}: container {} {what}", c.name);
        if !message.is_empty() {
            line.push_str(&format!(": {message}"));
        }
        if message.contains("\"edw\"")
            && (message.contains("executable file not found") || message.contains("no such file"))
        {
            line.push_str(&format!(
                " (the image {} has no `edw`: the in-cluster load runs `edw produce` from the consumer Deployment's image; build that image from fixtures/images/consumer, which carries it, or send from this machine without --in-cluster-load)",
                c.image
            ));
        }
        Some(line)
    })
}

/// "; " and why the pods did not send (each troubled pod, and the Job's warning events such
/// as FailedCreate when no pod could be created), or "" when nothing says.
async fn why_pods_did_not_send(ctx: &Context, pods: &Api<Pod>, job: &str) -> String {
    let mut listed = job_pods(pods, job).await;
    // The pod that failed first, before the siblings the Job controller then deleted (those
    // end with 137/143 and would hide it).
    listed.sort_by_key(|p| {
        (
            p.metadata.deletion_timestamp.is_some(),
            containers(p)
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.clone())
                .map(|t| t.0)
                .min(),
        )
    });
    let troubles: Vec<String> = listed.iter().filter_map(pod_trouble).collect();
    let mut why: Vec<String> = troubles.iter().take(3).cloned().collect();
    if troubles.len() > 3 {
        why.push(format!("and {} more pods", troubles.len() - 3));
    }
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(ctx.target.client(), &ctx.names.namespace);
    if let Ok(list) = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={job}")))
        .await
    {
        why.extend(
            list.items
                .iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .filter(|e| e.involved_object.name.as_deref() == Some(job))
                .take(3)
                .map(|e| {
                    format!(
                        "Job event {}: {}",
                        e.reason.clone().unwrap_or_default(),
                        e.message.clone().unwrap_or_default()
                    )
                }),
        );
    }
    if why.is_empty() {
        String::new()
    } else {
        crate::secrets::redact(&format!("; {}", why.join("; ")))
    }
}

/// When every Pending pod of the Job is unschedulable: the scheduler's reason.
fn unschedulable_pods(listed: &[Pod]) -> Option<String> {
    let pending: Vec<&Pod> = listed
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"))
        .collect();
    if pending.is_empty() {
        return None;
    }
    let mut reason = None;
    for pod in &pending {
        let scheduled = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))?;
        if scheduled.status != "False" || scheduled.reason.as_deref() != Some("Unschedulable") {
            return None;
        }
        reason = scheduled.message.clone();
    }
    Some(reason.unwrap_or_else(|| "Unschedulable".to_owned()))
}

/// Reads every pod's report from its log (the last attempt of each index wins).
async fn read_reports(pods: &Api<Pod>, job: &str, outcome: &mut LoadJobOutcome) {
    let listed = match list_job_pods(pods, job).await {
        Ok(listed) => listed,
        Err(e) => {
            outcome.details.push(format!(
                "the load Job's pods could not be listed: {}",
                crate::error_chain::text(&e)
            ));
            return;
        }
    };
    for pod in &listed {
        let Some(name) = pod.metadata.name.as_deref() else {
            continue;
        };
        let log = match pods.logs(name, &LogParams::default()).await {
            Ok(log) => log,
            Err(e) => {
                outcome.details.push(format!(
                    "pod {name}: its log could not be read ({})",
                    crate::error_chain::text(&e)
                ));
                continue;
            }
        };
        match log.lines().rev().find_map(SliceReport::parse_line) {
            Some(Ok(report)) => {
                outcome.details.push(format!(
                    "pod {name}: sent {} of {} messages (from {}){}",
                    report.sent_count,
                    report.slice.count,
                    report.slice.first,
                    report
                        .stopped
                        .as_deref()
                        .map(|why| format!(", stopped: {why}"))
                        .unwrap_or_default()
                ));
                outcome.reports.insert(report.index, report);
            }
            Some(Err(e)) => outcome.details.push(format!("pod {name}: {e}")),
            None => outcome
                .details
                .push(format!("pod {name}: no report in its log")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod of the load Job with one container in `state` (a ContainerState as the API
    /// serves it).
    fn pod_in(state: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "edw-load-abc123-1-00af-0-x7k2p"},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "producer",
                "image": "acr.azurecr.io/team/consumer:1.4",
                "imageID": "",
                "ready": false,
                "restartCount": 0,
                "state": state
            }]}
        }))
        .unwrap()
    }

    /// The shape containerd reports when the command is not in the image (runc's message, as
    /// `kubectl get pod -o yaml` shows it: reason StartError, exit code 128).
    #[test]
    fn an_image_without_edw_is_named_with_what_to_do() {
        let pod = pod_in(json!({"terminated": {
            "exitCode": 128,
            "reason": "StartError",
            "message": "failed to create containerd task: failed to create shim task: OCI\n runtime create failed: runc create failed: unable to start container process:\n exec: \"edw\": executable file not found in $PATH: unknown",
            "startedAt": "1970-01-01T00:00:00Z",
            "finishedAt": "2026-12-07T01:00:00Z"
        }}));
        let trouble = pod_trouble(&pod).expect("a trouble");
        assert!(
            trouble.starts_with("pod edw-load-abc123-1-00af-0-x7k2p: container producer StartError (exit code 128): failed to create containerd task"),
            "{trouble}"
        );
        assert!(
            trouble.contains("OCI runtime create failed"),
            "one line: {trouble}"
        );
        assert!(
            trouble.contains("the image acr.azurecr.io/team/consumer:1.4 has no `edw`")
                && trouble.contains("fixtures/images/consumer"),
            "{trouble}"
        );
    }

    #[test]
    fn an_image_pull_that_fails_is_named_and_counts_as_stuck() {
        let pod = pod_in(json!({"waiting": {
            "reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"acr.azurecr.io/team/consumer:1.4\""
        }}));
        let trouble = pod_trouble(&pod).expect("a trouble");
        assert_eq!(
            trouble,
            "pod edw-load-abc123-1-00af-0-x7k2p: container producer ImagePullBackOff: Back-off pulling image \"acr.azurecr.io/team/consumer:1.4\""
        );
        assert!(STUCK_REASONS.contains(&"ImagePullBackOff"));
        assert!(!trouble.contains("has no `edw`"), "{trouble}");
    }

    #[test]
    fn the_load_is_stuck_only_when_every_unfinished_producer_is() {
        let pull = || json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}});
        let running = json!({"running": {"startedAt": "2026-12-07T01:00:00Z"}});
        let done = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        let mut finished = pod_in(done);
        finished.status.as_mut().unwrap().phase = Some("Succeeded".into());
        // One stuck while another still sends: not yet.
        assert_eq!(all_stuck(&[pod_in(pull()), pod_in(running)]), None);
        // Every unfinished one stuck (a finished one does not count): the first, and how many more.
        let stuck = all_stuck(&[pod_in(pull()), finished, pod_in(pull())]).expect("stuck");
        assert!(
            stuck.contains("ImagePullBackOff: Back-off pulling image (and 1 more pods waiting)"),
            "{stuck}"
        );
        assert_eq!(all_stuck(&[]), None);
        // An init container (e.g. an injected sidecar) whose image cannot be pulled.
        let mut init = pod_in(json!({"waiting": {"reason": "PodInitializing"}}));
        let status = init.status.as_mut().unwrap();
        status.init_container_statuses = status.container_statuses.clone();
        status.init_container_statuses.as_mut().unwrap()[0].state =
            serde_json::from_value(pull()).unwrap();
        let stuck = all_stuck(&[init]).expect("an init container stuck");
        assert!(stuck.contains("ImagePullBackOff"), "{stuck}");
    }

    #[test]
    fn a_pod_that_says_why_itself_is_named_with_its_reason() {
        let mut evicted: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Failed", "reason": "Evicted",
                       "message": "The node was low on resource: memory."}
        }))
        .unwrap();
        assert_eq!(
            pod_trouble(&evicted).as_deref(),
            Some("pod p: Evicted: The node was low on resource: memory.")
        );
        evicted.status.as_mut().unwrap().message = None;
        assert_eq!(pod_trouble(&evicted).as_deref(), Some("pod p: Evicted"));
    }

    #[test]
    fn a_trouble_counts_only_once_it_lasted_without_a_break() {
        let secs = Duration::from_secs;
        let mut since = None;
        assert_eq!(outlasted(&mut since, secs(10), Some("x"), secs(60)), None);
        assert_eq!(outlasted(&mut since, secs(69), Some("x"), secs(60)), None);
        assert_eq!(
            outlasted(&mut since, secs(70), Some("x"), secs(60)),
            Some("x")
        );
        // A check without it starts the count again.
        assert_eq!(
            outlasted::<&str>(&mut since, secs(71), None, secs(60)),
            None
        );
        assert_eq!(outlasted(&mut since, secs(100), Some("y"), secs(60)), None);
        assert_eq!(
            outlasted(&mut since, secs(160), Some("y"), secs(60)),
            Some("y")
        );
    }

    #[test]
    fn a_starting_running_or_finished_producer_is_no_trouble() {
        for state in [
            json!({"waiting": {"reason": "ContainerCreating"}}),
            json!({"running": {"startedAt": "2026-12-07T01:00:00Z"}}),
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
        ] {
            assert_eq!(pod_trouble(&pod_in(state.clone())), None, "{state}");
        }
        let no_status: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert_eq!(pod_trouble(&no_status), None);
    }

    fn consumer() -> Value {
        json!({
            "spec": {"template": {
                "metadata": {"labels": {"app": "aqs-reader", "azure.workload.identity/use": "true"}},
                "spec": {
                    "serviceAccountName": "aqs-app-service-account",
                    "nodeSelector": {"karpenter.sh/nodepool": "edw-pool"},
                    "tolerations": [{"key": "edw-conformance/run-id", "operator": "Equal", "value": "r1", "effect": "NoSchedule"}],
                    "containers": [{
                        "name": "keda-queue-reader",
                        "image": "acr.azurecr.io/aws2azure/aqs-consumer",
                        "imagePullPolicy": "Always",
                        "env": [{"name": "AZURE_QUEUE_NAME", "value": "q"},
                                {"name": "AZURE_STORAGE_CONNECTION_STRING", "valueFrom": {"secretKeyRef": {"name": "s", "key": "connection"}}}]
                    }]
                }
            }}
        })
    }

    #[test]
    fn the_job_copies_the_consumers_identity_credentials_and_pool() {
        let command = SliceCommand {
            count: 100,
            slices: 4,
            first: 1,
            rate_per_pod: None,
            concurrency: 8,
        };
        let job = job_manifest(
            "edw-load-r1-1",
            "aqs-demo",
            "r1",
            &consumer(),
            &command,
            None,
            Duration::from_secs(480),
        )
        .unwrap();
        assert_eq!(job["spec"]["completionMode"], "Indexed");
        assert_eq!(job["spec"]["completions"], 4);
        assert_eq!(job["spec"]["parallelism"], 4);
        assert_eq!(job["spec"]["backoffLimit"], 0);
        assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 600);
        assert_eq!(job["spec"]["activeDeadlineSeconds"], 480);
        let pod = &job["spec"]["template"];
        assert_eq!(
            pod["metadata"]["labels"]["azure.workload.identity/use"],
            "true"
        );
        assert_eq!(pod["metadata"]["labels"][RUN_ID_LABEL], "r1");
        assert_eq!(
            pod["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"],
            "true"
        );
        assert_eq!(pod["spec"]["serviceAccountName"], "aqs-app-service-account");
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert_eq!(
            pod["spec"]["nodeSelector"]["karpenter.sh/nodepool"],
            "edw-pool"
        );
        assert_eq!(pod["spec"]["tolerations"][0]["value"], "r1");
        let container = &pod["spec"]["containers"][0];
        assert_eq!(container["image"], "acr.azurecr.io/aws2azure/aqs-consumer");
        assert_eq!(
            container["env"][1]["valueFrom"]["secretKeyRef"]["name"],
            "s"
        );
        assert_eq!(container["command"][1], "produce");
        assert!(job_manifest(
            "x",
            "ns",
            "r1",
            &json!({}),
            &command,
            None,
            Duration::from_secs(1)
        )
        .is_none());
        // On the run's load pool: its selector and taint, not the consumers' pool.
        let pool = LoadPool::for_run("edw-pool", "r1");
        let job = job_manifest(
            "x",
            "ns",
            "r1",
            &consumer(),
            &command,
            Some(&pool),
            Duration::from_secs(1),
        )
        .unwrap();
        let spec = &job["spec"]["template"]["spec"];
        assert_eq!(
            spec["nodeSelector"],
            json!({"karpenter.sh/nodepool": "edw-pool-load"})
        );
        assert_eq!(spec["tolerations"][0]["key"], LOAD_TAINT_KEY);
        assert_eq!(spec["tolerations"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn the_load_pool_is_the_run_pools_spec_with_its_own_name_labels_and_taint() {
        let run_pool = json!({
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": "edw-pool", "uid": "u", "resourceVersion": "7"},
            "spec": {
                "limits": {"cpu": "1000"},
                "template": {
                    "metadata": {"labels": {RUN_ID_LABEL: "r1"}},
                    "spec": {
                        "requirements": [{"key": "karpenter.azure.com/sku-family", "operator": "In", "values": ["D"]}],
                        "taints": [{"key": RUN_ID_LABEL, "value": "r1", "effect": "NoSchedule"}]
                    }
                }
            },
            "status": {"resources": {"cpu": "2"}}
        });
        let pool = LoadPool::for_run("edw-pool", "r1")
            .manifest(&run_pool)
            .unwrap();
        assert_eq!(pool["metadata"]["name"], "edw-pool-load");
        assert!(pool["metadata"].get("uid").is_none() && pool.get("status").is_none());
        assert_eq!(pool["metadata"]["labels"][RUN_ID_LABEL], "r1");
        assert_eq!(pool["spec"]["limits"]["cpu"], "1000");
        let template = &pool["spec"]["template"];
        assert_eq!(template["spec"]["requirements"][0]["values"][0], "D");
        assert_eq!(template["spec"]["taints"].as_array().unwrap().len(), 1);
        assert_eq!(template["spec"]["taints"][0]["key"], LOAD_TAINT_KEY);
        assert_eq!(template["metadata"]["labels"][RUN_ID_LABEL], "r1");
        assert!(LoadPool::for_run("p", "r").manifest(&json!({})).is_none());
    }

    #[test]
    fn what_no_pod_reported_is_counted_as_not_sent() {
        let command = SliceCommand {
            count: 10,
            slices: 3,
            first: 1,
            rate_per_pod: None,
            concurrency: 1,
        };
        let mut outcome = LoadJobOutcome::default();
        let slice = command.slice(0).unwrap();
        outcome.reports.insert(
            0,
            SliceReport::finished(
                0,
                slice,
                &ProduceReport {
                    sent: vec![1, 2, 3, 4],
                    failed: vec![],
                    elapsed: Duration::from_secs(1),
                },
            ),
        );
        let slice = command.slice(1).unwrap();
        outcome.reports.insert(
            1,
            SliceReport::finished(
                1,
                slice,
                &ProduceReport {
                    sent: vec![5, 7],
                    failed: vec![(6, "503".into())],
                    elapsed: Duration::from_secs(1),
                },
            ),
        );
        let report = outcome.as_produce_report(&command);
        assert_eq!(report.sent, vec![1, 2, 3, 4, 5, 7]);
        let failed: Vec<u64> = report.failed.iter().map(|(n, _)| *n).collect();
        assert_eq!(failed, vec![6, 8, 9, 10]);
        assert!(report.failed[1]
            .1
            .contains("pod 2 of the load Job left no report"));
    }

    #[test]
    fn job_names_are_dns_labels() {
        let name = job_name("EDW_Run.2026-12-06T22", 0);
        assert!(name.starts_with("edw-load-edwrun20261206t22-1-"), "{name}");
        assert!(
            name.len() <= 63 - 9,
            "room for -<index>-<5> pod names: {name}"
        );
        assert!(name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}
