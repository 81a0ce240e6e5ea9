//! The sample's flow as a scenario: deploy, validate, load, scale, verify, and cleanup, with the
//! walkthrough's checks. Every step works on every target; what a target cannot do (no
//! Karpenter CRDs) is skipped with the reason.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use tokio_util::sync::CancellationToken;

use super::context::{Context, FlowSettings, Footprint};
use super::runner::{Scenario, Step, StepFuture, StepResult};
use crate::manifests::{create, delete_owned, exists, render, stamp_ownership, Applied, Removal};
use crate::observe::{consistently, eventually, Expect, Recorder};
use crate::target::TargetClock;
use crate::workload::{produce, ProduceReport, ProducerPlan, Reconciliation};

pub(super) const S: fn(u64) -> Duration = Duration::from_secs;

/// The sample's burst flow (twin-spec §7 and the walkthrough).
pub fn burst() -> Scenario {
    Scenario {
        name: "flow::burst".to_owned(),
        settings: FlowSettings::default(),
        steps: vec![
            Step::new("deploy", S(120), deploy),
            Step::new(
                "validate: KEDA operator running (kube-system or keda)",
                S(300),
                validate_keda,
            ),
            Step::new(
                "validate: consumer Deployment has one workload-identity pod",
                S(300),
                validate_consumer,
            ),
            Step::new(
                "validate: NodePool served by karpenter.sh",
                S(60),
                validate_nodepool,
            ),
            Step::new(
                "deploy: ScaledObject and TriggerAuthentication",
                S(300),
                install_scaled_object,
            ),
            load_step(),
            scale_out_step(),
            nodes_grow_step(),
            drained_step(),
            scaled_in_step(),
            nodes_removed_step(),
            verify_step(),
        ],
        cleanup: vec![
            Step::new("delete Kubernetes objects", S(600), cleanup_objects),
            Step::new(
                "delete queue, poison queue and table",
                S(120),
                cleanup_storage,
            ),
        ],
    }
}

// The flow's shared steps: the burst flow and the catalogue use the same names and timeouts.

pub(super) fn load_step() -> Step {
    Step::new("load: producer burst", S(600), burst_load)
}

/// A burst that the model says can never activate KEDA (at or below activationQueueLength
/// with minReplicaCount 0): a scenario that expects a scale-out cannot test anything with it.
/// `edw run` and `edw load` refuse it before anything is deployed (exit 2); the window itself
/// is what `flow::activation` tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--messages {messages} cannot start a scale-out: with minReplicaCount 0, KEDA activates only above activationQueueLength {activation} (the model's AQ-7 rule), so {messages} message(s) would wait on the queue at 0 replicas and nothing would be processed; use --messages {minimum} or more (activationQueueLength + 1); the scenario flow::activation tests this window"
)]
pub struct LoadCannotActivate {
    pub messages: u64,
    pub activation: u64,
    /// The smallest load that activates: activationQueueLength + 1.
    pub minimum: u64,
}

/// Refuses (see [`LoadCannotActivate`]) a load of `settings.messages` that the model of
/// `settings` says is never read.
pub fn check_load_activates(settings: &FlowSettings) -> Result<(), LoadCannotActivate> {
    let model = crate::model::Model::new(
        crate::model::ScalingSettings {
            min_replicas: settings.min_replicas.max(0) as u64,
            activation: settings.activation_queue_length,
            ..crate::model::ScalingSettings::default()
        },
        crate::model::NodePoolSettings::default(),
        crate::model::TargetTiming::default(),
    );
    if model.never_read(settings.messages) {
        return Err(LoadCannotActivate {
            messages: settings.messages,
            activation: model.scaling.activation,
            minimum: model.scaling.activation + 1,
        });
    }
    Ok(())
}

/// The burst's load, refused (before a message is sent) when it cannot activate.
fn burst_load(ctx: &mut Context) -> StepFuture<'_> {
    match check_load_activates(&ctx.settings) {
        Ok(()) => load(ctx),
        Err(refused) => Box::pin(async move { StepResult::failed(refused.to_string(), []) }),
    }
}

pub(super) fn scale_out_step() -> Step {
    Step::new(
        "scale: replicas reach the modelled peak",
        S(7200),
        scale_out,
    )
}

pub(super) fn nodes_grow_step() -> Step {
    Step::new("scale: the run's NodePool grows", S(7200), nodes_grow)
}

pub(super) fn drained_step() -> Step {
    Step::new("scale: queue drains to 0", S(7200), drained)
}

pub(super) fn scaled_in_step() -> Step {
    Step::new(
        "scale: replicas return to minReplicaCount",
        S(7200),
        scaled_in,
    )
}

pub(super) fn nodes_removed_step() -> Step {
    Step::new("scale: new nodes are removed", S(7200), nodes_removed)
}

/// The verify step's name: what it checks. It passes with a stranded tail the configuration
/// allows (as a warning), so it never claims "exactly once".
pub const VERIFY_STEP: &str =
    "verify: sent = processed once + stranded + poisoned, none lost or duplicated";

pub(super) fn verify_step() -> Step {
    Step::new(VERIFY_STEP, S(120), verify)
}

/// The phases `edw deploy|validate|load|scale|cleanup` run one at a time: the burst flow's
/// steps, grouped as the walkthrough does them.
pub fn phase(name: &str) -> Option<Scenario> {
    let all = burst();
    let pick = |names: &[&str]| -> Vec<Step> {
        all.steps
            .iter()
            .filter(|s| names.contains(&s.name))
            .cloned()
            .collect()
    };
    let (steps, cleanup) = match name {
        "deploy" => (all.steps[..5].to_vec(), Vec::new()),
        "validate" => (
            vec![
                all.steps[1].clone(),
                all.steps[3].clone(),
                Step::new(
                    "validate: ScaledObject Ready with its HPA",
                    S(300),
                    validate_scaled_object,
                ),
            ],
            Vec::new(),
        ),
        "load" => (pick(&["load: producer burst"]), Vec::new()),
        "scale" => {
            let mut steps = vec![Step::new("observe", S(10), observe)];
            steps.extend(all.steps[6..].iter().cloned());
            (steps, Vec::new())
        }
        "cleanup" => (Vec::new(), all.cleanup.clone()),
        _ => return None,
    };
    Some(Scenario {
        name: format!("flow::burst::{name}"),
        settings: all.settings.clone(),
        steps,
        cleanup,
    })
}

/// Starts the observation recorder (a phase run in a new process has none yet).
fn observe(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if ctx.recorder.is_none() {
            ctx.recorder = Some(Recorder::start(
                ctx.target.client(),
                ctx.subject(),
                Duration::from_millis(100),
                ctx.clock(),
            ));
        }
        ctx.load_started_at.get_or_insert(0.0);
        StepResult::passed([
            "observing queue depth, replicas, pods, nodes and NodeClaims".to_owned(),
        ])
    })
}

fn validate_scaled_object(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move { check_scaled_object(ctx).await })
}

pub(super) fn dynamic(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Polls `probe` every 200 ms (real) until it returns `Ok`, or gives its last error.
/// Calls `probe` until it succeeds, for at most `within` of target time on `clock`; the error is
/// the last probe's.
pub(super) async fn poll_until<T, F, Fut>(
    clock: &TargetClock,
    within: Duration,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = clock.now() + within;
    loop {
        match probe().await {
            Ok(value) => return Ok(value),
            Err(last) if clock.now() >= deadline => return Err(last),
            Err(_) => {
                let nap = clock.nap_before(deadline);
                tokio::time::sleep(nap.clamp(Duration::from_millis(1), Duration::from_millis(200)))
                    .await
            }
        }
    }
}

pub(super) fn deploy(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if ctx.footprint == Footprint::UseDeployed {
            return use_deployed(ctx).await;
        }
        let names = ctx.names.clone();
        // A shared namespace is checked before anything is created.
        let shared = match ctx.footprint {
            Footprint::OwnNamespace => None,
            _ => match shared_namespace_ready(ctx).await {
                Ok(seen) => Some(seen),
                Err(message) => return StepResult::failed(message, []),
            },
        };
        if let Err(failed) = create_storage(ctx).await {
            return failed;
        }
        ctx.progress(&format!(
            "run resources: namespace {} queue {} poison {} table {} run-id {}",
            names.namespace, names.queue, names.poison, names.table, names.run_id
        ));
        let karpenter = ctx.target.capabilities().karpenter;
        let mut templates = Vec::new();
        let mut details = vec![
            format!(
                "run id {}: every object this run creates carries the label {}={} and only those are deleted by its cleanup",
                names.run_id,
                crate::manifests::RUN_ID_LABEL,
                names.run_id
            ),
            format!(
                "created queue {}, poison queue {}, table {}",
                names.queue, names.poison, names.table
            ),
        ];
        match shared {
            None => templates.extend(["namespace.yaml", "serviceaccount.yaml"]),
            Some(seen) => details.push(seen),
        }
        if karpenter {
            templates.push("default-pool.yaml");
        }
        if ctx.target.connection_for_pods().is_some() {
            // Storage by connection string (kind with Azurite): a Secret for pods and KEDA.
            templates.push("storage-secret.yaml");
            templates.push("consumer-deployment-connection.yaml");
        } else {
            templates.push("consumer-deployment.yaml");
        }
        for template in templates {
            match create_owned(ctx, template).await {
                Ok(created) => details.extend(created),
                Err(message) => return StepResult::failed(message, details),
            }
        }
        if !karpenter {
            details.push("NodePool skipped: the cluster serves no karpenter.sh API".to_owned());
        }
        ctx.recorder = Some(Recorder::start(
            ctx.target.client(),
            ctx.subject(),
            Duration::from_millis(100),
            ctx.clock(),
        ));
        StepResult::passed(details)
    })
}

/// Creates the run's queue, poison queue and table, recorded in the ledger first; refuses
/// (creating none) when one of them already exists, since the run would then delete what it
/// did not create.
async fn create_storage(ctx: &mut Context) -> Result<(), StepResult> {
    let storage = ctx.target.storage();
    let names = ctx.names.clone();
    let (queue, poison, table) = (
        storage.queue(&names.queue),
        storage.queue(&names.poison),
        storage.table(&names.table),
    );
    for (what, name, exists) in [
        ("queue", &names.queue, queue.exists().await),
        ("poison queue", &names.poison, poison.exists().await),
        ("table", &names.table, table.exists().await),
    ] {
        match exists {
            Ok(false) => {}
            Ok(true) => {
                return Err(StepResult::failed(
                    format!("the {what} {name} already exists and this run did not create it: it is left untouched"),
                    [],
                ))
            }
            Err(e) => return Err(StepResult::failed(format!("checking the {what} {name}: {e}"), [])),
        }
    }
    // The ledger first: a run that dies from here on is cleaned from it.
    ctx.created_storage = true;
    ctx.write_ledger();
    for (what, result) in [
        ("queue", queue.create().await),
        ("poison queue", poison.create().await),
        ("table", table.create().await),
    ] {
        if let Err(e) = result {
            return Err(StepResult::failed(format!("creating the {what}: {e}"), []));
        }
    }
    Ok(())
}

/// On a shared namespace (workload identity): the namespace and the federated service account
/// must already be there; the run uses them and changes neither. The TriggerAuthentication's
/// identityId is `WORKLOAD_MANAGED_IDENTITY_CLIENT_ID`, else the client id the service account
/// is annotated with (the sample's deploy.sh writes only the identity's name to deploy.state);
/// with neither, the run stops here rather than deploy with a zero id.
async fn shared_namespace_ready(ctx: &mut Context) -> Result<String, String> {
    let client = ctx.target.client();
    let (namespace, account) = (
        ctx.names.namespace.clone(),
        ctx.names.service_account.clone(),
    );
    let why = format!(
        "the consumer's workload identity is federated to system:serviceaccount:{namespace}:{account}, so the run uses that namespace and service account as they are and never creates or changes them: deploy the sample first (its deploy scripts create both), or set AQS_TARGET_NAMESPACE / SERVICE_ACCOUNT to the ones the federated credential names"
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.get_opt(&namespace).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(format!("namespace {namespace} does not exist: {why}")),
        Err(e) => return Err(format!("reading namespace {namespace}: {e}")),
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client, &namespace);
    match accounts.get_opt(&account).await {
        Ok(Some(found)) => {
            let annotated = found
                .metadata
                .annotations
                .and_then(|a| a.get("azure.workload.identity/client-id").cloned())
                .filter(|id| !id.is_empty());
            ctx.annotated_client_id = annotated;
            let origin = if ctx
                .config
                .get("WORKLOAD_MANAGED_IDENTITY_CLIENT_ID")
                .is_some()
            {
                "WORKLOAD_MANAGED_IDENTITY_CLIENT_ID"
            } else {
                "the service account's annotation azure.workload.identity/client-id"
            };
            let Some(client_id) = ctx.workload_client_id() else {
                return Err(format!(
                    "no client id for the workload identity: service account {namespace}/{account} has no azure.workload.identity/client-id annotation and WORKLOAD_MANAGED_IDENTITY_CLIENT_ID is not set (deploy.state names only the identity: `az identity show --name $WORKLOAD_MANAGED_IDENTITY_NAME --resource-group $RESOURCE_GROUP --query clientId -o tsv`)"
                ));
            };
            Ok(format!(
                "uses the existing namespace {namespace} and service account {account} (not created, not changed, not deleted); workload identity client id {client_id} (from {origin})"
            ))
        }
        Ok(None) => Err(format!(
            "service account {account} does not exist in namespace {namespace}: {why}"
        )),
        Err(e) => Err(format!(
            "reading service account {namespace}/{account}: {e}"
        )),
    }
}

/// Renders `template`, marks its objects as this run's, records them in the ledger and creates
/// them (never over an existing object). Returns what it created.
async fn create_owned(ctx: &mut Context, template: &str) -> Result<Vec<String>, String> {
    let mut objects = render(template, &ctx.template_vars()).map_err(|e| e.to_string())?;
    // The walkthrough's v1beta1 NodePool as AKS NAP serves it now (karpenter.sh/v1 only).
    objects
        .iter_mut()
        .for_each(crate::manifests::nodepool_as_v1);
    let owner = crate::manifests::Ownership {
        run_id: ctx.names.run_id.clone(),
        nodepool: ctx
            .target
            .capabilities()
            .karpenter
            .then(|| ctx.names.nodepool.clone()),
    };
    stamp_ownership(&mut objects, &owner);
    for planned in crate::manifests::planned(&objects) {
        if !ctx.applied.contains(&planned) {
            ctx.applied.push(planned);
        }
    }
    ctx.write_ledger();
    let created = create(&ctx.target.client(), &objects)
        .await
        .map_err(|e| crate::error_chain::text(&e))?;
    Ok(created
        .iter()
        .map(|a| format!("created {} {}", a.kind, a.name))
        .collect())
}

/// `--use-deployed`: the team's consumer, ScaledObject, queue and table are used as they are;
/// nothing is created. Checks they are there and starts observing.
async fn use_deployed(ctx: &mut Context) -> StepResult {
    let client = ctx.target.client();
    let names = ctx.names.clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &names.namespace);
    match deployments.get_opt(&names.deployment).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return StepResult::failed(
                format!(
                    "--use-deployed: Deployment {}/{} does not exist (set AQS_TARGET_NAMESPACE and AQS_TARGET_DEPLOYMENT to the deployed consumer)",
                    names.namespace, names.deployment
                ),
                [],
            )
        }
        Err(e) => return StepResult::failed(format!("reading Deployment {}/{}: {e}", names.namespace, names.deployment), []),
    }
    let queue = ctx.target.storage().queue(&names.queue);
    match queue.exists().await {
        Ok(true) => {}
        Ok(false) => {
            return StepResult::failed(
                format!("--use-deployed: queue {} does not exist (set AZURE_QUEUE_NAME to the queue the deployed consumer reads)", names.queue),
                [],
            )
        }
        Err(e) => return StepResult::failed(format!("reading queue {}: {e}", names.queue), []),
    }
    ctx.recorder = Some(Recorder::start(
        client,
        ctx.subject(),
        Duration::from_millis(100),
        ctx.clock(),
    ));
    StepResult::passed([format!(
        "--use-deployed: Deployment {}/{}, queue {} and table {} are the team's: used as they are, nothing created, nothing deleted",
        names.namespace, names.deployment, names.queue, names.table
    )])
}

/// Where the KEDA operator runs: `EDW_KEDA_NAMESPACE` if set, else kube-system (the AKS add-on)
/// and keda (KEDA's Helm chart, as `ci/kind-up.sh` installs it).
fn keda_namespaces() -> Vec<String> {
    match std::env::var("EDW_KEDA_NAMESPACE") {
        Ok(ns) if !ns.is_empty() => vec![ns],
        _ => vec!["kube-system".to_owned(), "keda".to_owned()],
    }
}

pub(super) fn validate_keda(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let client = ctx.target.client();
        let namespaces = keda_namespaces();
        let within = S(300);
        let clock = ctx.clock();
        let result = poll_until(&clock, within, || async {
            let mut seen = Vec::new();
            for namespace in &namespaces {
                let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
                let list = pods
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let running: Vec<String> = list
                    .items
                    .iter()
                    .filter_map(|p| {
                        let name = p.metadata.name.clone()?;
                        let operator = name.starts_with("keda-operator-")
                            && !name.starts_with("keda-operator-metrics-apiserver");
                        let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                        (operator && phase.as_deref() == Some("Running"))
                            .then(|| format!("{namespace}/{name}"))
                    })
                    .collect();
                if !running.is_empty() {
                    return Ok(running);
                }
                seen.push(format!("{} pods in {namespace}", list.items.len()));
            }
            Err(format!("{}, no keda-operator pod Running", seen.join(", ")))
        })
        .await;
        match result {
            Ok(running) => StepResult::passed([format!(
                "expected a Running keda-operator pod (in {}); found {}",
                namespaces.join(" or "),
                running.join(", ")
            )]),
            Err(last) => StepResult::failed(
                format!(
                    "no KEDA operator pod Running in {} (set EDW_KEDA_NAMESPACE where KEDA runs elsewhere; on AKS: --enable-keda): {last}",
                    namespaces.join(" or ")
                ),
                [],
            ),
        }
    })
}

pub(super) fn validate_consumer(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if ctx.footprint == Footprint::UseDeployed {
            return validate_deployed_template(ctx).await;
        }
        let pods: Api<Pod> = Api::namespaced(ctx.target.client(), &ctx.names.namespace);
        let service_account = ctx.names.service_account.clone();
        let selector = ctx.pod_selector();
        let within = S(300);
        let clock = ctx.clock();
        let result = poll_until(&clock, within, || async {
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| e.to_string())?;
            let live: Vec<&Pod> = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            match live.as_slice() {
                // An image that cannot be pulled does not come right by waiting.
                [pod] => match image_pull_failure(pod) {
                    Some(failure) => Ok(Err(failure)),
                    None if pod_phase(pod) == "Running" => Ok(Ok((*pod).clone())),
                    None => Err(format!("one consumer pod, {}", pod_phase(pod))),
                },
                other => Err(format!("{} consumer pods", other.len())),
            }
        })
        .await;
        let pod = match result {
            Ok(Ok(pod)) => pod,
            Ok(Err(failure)) => return StepResult::failed(failure, []),
            Err(last) => {
                return StepResult::failed(
                    format!("expected exactly one Running consumer pod: {last}"),
                    [],
                )
            }
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let label = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("azure.workload.identity/use"))
            .cloned();
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone());
        let mut details = vec![format!("one consumer pod: {name}")];
        if label.as_deref() != Some("true") {
            return StepResult::failed(
                format!(
                    "pod {name} lacks the label azure.workload.identity/use=true (has {label:?})"
                ),
                details,
            );
        }
        if account.as_deref() != Some(service_account.as_str()) {
            return StepResult::failed(
                format!(
                    "pod {name} runs as service account {account:?}, expected {service_account}"
                ),
                details,
            );
        }
        details.push(format!(
            "label azure.workload.identity/use=true, service account {service_account}"
        ));
        StepResult::passed(details)
    })
}

fn pod_phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "without a phase".to_owned())
}

/// A consumer container waiting on an image it cannot pull, said with the fix.
fn image_pull_failure(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|status| {
        let waiting = status.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        matches!(reason, "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName").then(|| {
            format!(
                "consumer pod {} cannot pull image {} ({reason}: {}): set EDW_CONSUMER_IMAGE to an image the cluster can pull, or AZURE_CONTAINER_REGISTRY_NAME to the registry holding aws2azure/aqs-consumer (the default acraksdemo.azurecr.io does not exist)",
                pod.metadata.name.as_deref().unwrap_or("?"),
                status.image,
                waiting.message.as_deref().unwrap_or("")
            )
        })
    })
}

/// `--use-deployed`: the deployed consumer's replicas are KEDA's to set (0 when the queue is
/// idle), so its pod template is checked: workload identity and the service account.
async fn validate_deployed_template(ctx: &Context) -> StepResult {
    let names = &ctx.names;
    let deployments: Api<Deployment> = Api::namespaced(ctx.target.client(), &names.namespace);
    let deployment = match deployments.get_opt(&names.deployment).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return StepResult::failed(
                format!(
                    "Deployment {}/{} does not exist",
                    names.namespace, names.deployment
                ),
                [],
            )
        }
        Err(e) => {
            return StepResult::failed(format!("reading Deployment {}: {e}", names.deployment), [])
        }
    };
    let template = deployment.spec.map(|s| s.template).unwrap_or_default();
    let label = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get("azure.workload.identity/use"))
        .cloned();
    let account = template.spec.and_then(|s| s.service_account_name);
    let mut details = vec![format!(
        "--use-deployed: the pod template of Deployment {}/{} (its replicas are KEDA's to set)",
        names.namespace, names.deployment
    )];
    if label.as_deref() != Some("true") {
        return StepResult::failed(
            format!("the deployed consumer's pods lack the label azure.workload.identity/use=true (has {label:?})"),
            details,
        );
    }
    if account.as_deref() != Some(names.service_account.as_str()) {
        return StepResult::failed(
            format!(
                "the deployed consumer runs as service account {account:?}, expected {}",
                names.service_account
            ),
            details,
        );
    }
    details.push(format!(
        "label azure.workload.identity/use=true, service account {}",
        names.service_account
    ));
    StepResult::passed(details)
}

pub(super) fn validate_nodepool(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if !ctx.target.capabilities().karpenter {
            return StepResult::skipped(
                "the cluster serves no karpenter.sh API (no Karpenter / Node Autoprovisioning)",
            );
        }
        let pools: Api<DynamicObject> = Api::all_with(
            ctx.target.client(),
            &dynamic("karpenter.sh", "v1", "NodePool", "nodepools"),
        );
        match pools.get_opt(&ctx.names.nodepool).await {
            Ok(Some(pool)) => {
                let api_version = pool.types.map(|t| t.api_version).unwrap_or_default();
                if api_version.starts_with("karpenter.sh/") {
                    StepResult::passed([format!(
                        "NodePool {} served as {api_version}",
                        ctx.names.nodepool
                    )])
                } else {
                    StepResult::failed(
                        format!(
                            "NodePool {} is served as {api_version}, not karpenter.sh",
                            ctx.names.nodepool
                        ),
                        [],
                    )
                }
            }
            Ok(None) => {
                StepResult::failed(format!("NodePool {} not found", ctx.names.nodepool), [])
            }
            Err(e) => {
                StepResult::failed(format!("reading NodePool {}: {e}", ctx.names.nodepool), [])
            }
        }
    })
}

pub(super) fn install_scaled_object(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if !ctx.target.capabilities().keda {
            return StepResult::failed(
                "the cluster serves no keda.sh API: install KEDA (on AKS: --enable-keda)",
                [],
            );
        }
        if ctx.footprint == Footprint::UseDeployed {
            // The team's ScaledObject: checked, never created or changed.
            return check_scaled_object(ctx).await;
        }
        let template = if ctx.target.connection_for_pods().is_some() {
            "scaledobject-connection.yaml"
        } else {
            "scaledobject.yaml"
        };
        match render(template, &ctx.template_vars()) {
            Ok(objects) => record_findings(ctx, &objects),
            Err(e) => return StepResult::failed(e.to_string(), []),
        }
        if let Err(message) = create_owned(ctx, template).await {
            return StepResult::failed(message, []);
        }
        // Ready=True, or a KEDA that cannot read the queue the harness reads, named at once.
        let guard = crate::observe::disagreement(agreement(ctx));
        tokio::select! {
            result = check_scaled_object(ctx) => result,
            mismatch = guard => StepResult::failed(mismatch.message, mismatch.details),
        }
    })
}

/// The configuration's findings (stranded tail, cooldown, NodePool limits, …) for the report.
fn record_findings(ctx: &mut Context, objects: &[serde_json::Value]) {
    let Some(so) = objects.iter().find(|o| o["kind"] == "ScaledObject") else {
        return;
    };
    let mut inputs = crate::findings::CheckInputs::new(so.clone());
    inputs.nodepool = render("default-pool.yaml", &ctx.template_vars())
        .ok()
        .and_then(|p| p.into_iter().next());
    inputs.burst = Some(ctx.settings.messages);
    inputs.drain_target = ctx.settings.drain_target;
    inputs.timing = ctx.target.timing();
    match crate::findings::check(&inputs) {
        Ok(findings) => ctx.findings = findings,
        Err(e) => ctx.progress(&format!("findings could not be computed: {e}")),
    }
}

/// The ScaledObject is Ready and KEDA's HPA has the expected min and max.
async fn check_scaled_object(ctx: &mut Context) -> StepResult {
    let client = ctx.target.client();
    let scaled: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ctx.names.namespace,
        &dynamic("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects"),
    );
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ctx.names.namespace);
    let (so_name, hpa_name) = (ctx.names.scaled_object.clone(), ctx.names.hpa.clone());
    let (min, max) = (ctx.settings.min_replicas.max(1), ctx.settings.max_replicas);
    let within = S(300);
    let clock = ctx.clock();
    let result = poll_until(&clock, within, || async {
        let so = scaled.get(&so_name).await.map_err(|e| e.to_string())?;
        let value = serde_json::to_value(&so).unwrap_or_default();
        let ready = value
            .pointer("/status/conditions")
            .and_then(|c| c.as_array())
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| {
                (
                    c["status"].as_str().unwrap_or("?").to_owned(),
                    c["message"].as_str().unwrap_or("").to_owned(),
                )
            });
        match ready {
            Some((status, _)) if status == "True" => {}
            Some((status, message)) => {
                return Err(format!("ScaledObject Ready={status}: {message}"))
            }
            None => return Err("ScaledObject has no Ready condition yet".to_owned()),
        }
        let hpa = hpas
            .get_opt(&hpa_name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("KEDA's HPA does not exist yet")?;
        let spec = hpa.spec.ok_or("the HPA has no spec")?;
        Ok((spec.min_replicas.unwrap_or(1), spec.max_replicas))
    })
    .await;
    match result {
        Ok((hpa_min, hpa_max)) if i64::from(hpa_min) == min && i64::from(hpa_max) == max => StepResult::passed([
            format!("ScaledObject {so_name} Ready=True"),
            format!("HPA {hpa_name}: min {hpa_min} (expected {min}), max {hpa_max} (expected {max})"),
        ]),
        Ok((hpa_min, hpa_max)) => StepResult::failed(format!("HPA {hpa_name} has min {hpa_min} / max {hpa_max}, expected min {min} / max {max}"), []),
        Err(last) => StepResult::failed(format!("the ScaledObject did not become Ready with its HPA: {last}"), []),
    }
}

pub(super) fn load(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let pool = ctx.names.nodepool.clone();
        let before = match ctx.recorder.as_ref() {
            Some(recorder) => {
                ctx.load_started_at = Some(recorder.elapsed());
                recorder.latest()
            }
            None => crate::observe::sample_once(&ctx.target.client(), &ctx.subject()).await,
        };
        ctx.nodes_before_load = before.nodes.get(&pool).copied().unwrap_or(0);
        ctx.load_started_stamp = Some(crate::workload::format_stamp(
            time::OffsetDateTime::now_utc(),
        ));
        let queue = ctx.target.storage().queue(&ctx.names.queue);
        let plan = ProducerPlan::burst(ctx.settings.messages, ctx.settings.producer_concurrency);
        match produce(&queue, &plan, &CancellationToken::new()).await {
            Ok(report) if report.failed.is_empty() => {
                ctx.property("messages.sent", report.sent_count());
                ctx.property("producer.per_second", format!("{:.0}", report.rate()));
                let line = format!(
                    "sent {} messages in {:.1} s ({:.0}/s)",
                    report.sent_count(),
                    report.elapsed.as_secs_f64(),
                    report.rate()
                );
                ctx.produced = Some(report);
                ctx.write_ledger();
                StepResult::passed([line])
            }
            Ok(report) => {
                let message = format!(
                    "{} of {} messages could not be sent",
                    report.failed.len(),
                    ctx.settings.messages
                );
                ctx.produced = Some(report);
                ctx.write_ledger();
                StepResult::failed(message, [])
            }
            Err(e) => StepResult::failed(crate::error_chain::text(&e), []),
        }
    })
}

/// Messages the load sent (or the configured count, before the load).
pub(super) fn messages(ctx: &Context) -> u64 {
    ctx.produced
        .as_ref()
        .map_or(ctx.settings.messages, |p| p.sent_count())
}

/// A wait whose expectation and time limit come from the model; the report shows both next to
/// what was observed.
pub(super) fn wait_modelled(
    ctx: &mut Context,
    expect: Expect,
    within: Duration,
    model: String,
) -> StepFuture<'_> {
    ctx.property("model", &model);
    ctx.property("model.within_seconds", within.as_secs());
    Box::pin(async move {
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running", []);
        };
        let started = recorder.elapsed();
        // Only what was sampled after the wait began counts: the latest sample can predate the
        // step (a queue read before the last messages of a steady rate were sent) and would
        // pass a drain that has not happened.
        let inner = expect.clone();
        let fresh = Expect::new(expect.description.clone(), move |o| {
            o.t >= started && inner.holds(o)
        });
        match eventually(recorder, &fresh, within).await {
            Ok(seen) => StepResult::passed([
                format!(
                    "expected {} within {} s ({model})",
                    expect.description,
                    within.as_secs()
                ),
                format!(
                    "observed after {:.1} s (t={:.1}): queue {}, desired {}, running {}",
                    (seen.t - started).max(0.0),
                    seen.t,
                    seen.queue.map_or("?".to_owned(), |q| q.to_string()),
                    seen.desired,
                    seen.running
                ),
            ]),
            Err(failure) => {
                let mut details = vec![format!("model: {model}")];
                details.extend(failure.lines());
                StepResult::failed(
                    format!(
                        "expected {} within {} s (target time)",
                        expect.description,
                        within.as_secs()
                    ),
                    details,
                )
            }
        }
    })
}

fn scale_out(ctx: &mut Context) -> StepFuture<'_> {
    let model = ctx.model();
    let n = messages(ctx);
    let e = model.burst(n);
    let timeouts = model.timeouts(n);
    let peak = e.peak_replicas;
    let ramp: Vec<String> = e.ramp.iter().map(|r| r.replicas.to_string()).collect();
    let line = format!(
        "peak = min(maxReplicaCount {}, ceil({n} / queueLength {})) = {peak}, ramp {}",
        model.scaling.max_replicas,
        model.scaling.queue_length,
        ramp.join(" -> ")
    );
    let expect = Expect::new(format!("desired replicas = {peak}"), move |o| {
        o.desired == peak
    });
    let guard = crate::observe::disagreement(agreement(ctx));
    let late = scale_out_after_the_drain(ctx, peak);
    let wait = wait_modelled(ctx, expect, timeouts.scale_out, line);
    Box::pin(async move {
        tokio::select! {
            result = wait => result,
            mismatch = guard => StepResult::failed(mismatch.message, mismatch.details),
            Some(result) = late => result,
        }
    })
}

/// When a scale step begins after the backlog is gone (`edw scale` run after the drain), what
/// it waits for can no longer be watched: instead of waiting out its time, the step answers
/// from what the cluster recorded while nobody watched (`look_back`). `None` while the first
/// sample of the step is `still_watchable`.
fn answered_after_the_drain<W, L, F>(
    ctx: &Context,
    still_watchable: W,
    look_back: L,
) -> impl std::future::Future<Output = Option<StepResult>> + Send + 'static
where
    W: Fn(&crate::scenario::model::Observation) -> bool + Send + 'static,
    L: FnOnce(crate::scenario::model::Observation) -> F + Send + 'static,
    F: std::future::Future<Output = StepResult> + Send,
{
    let recorder = ctx.recorder.as_ref().map(|r| (r.subscribe(), r.elapsed()));
    async move {
        let (mut samples, started) = recorder?;
        let first = loop {
            let seen = samples.borrow_and_update().clone();
            if seen.t >= started && seen.queue.is_some() {
                break seen;
            }
            samples.changed().await.ok()?;
        };
        if still_watchable(&first) {
            return std::future::pending().await;
        }
        Some(look_back(first).await)
    }
}

/// The sizes in `SuccessfulRescale` events of HPA `hpa` ("New size: 15; reason: …").
async fn rescale_sizes(
    events: Api<k8s_openapi::api::core::v1::Event>,
    hpa: &str,
) -> Result<Vec<u64>, String> {
    let selector = format!("involvedObject.name={hpa},reason=SuccessfulRescale");
    let list = events
        .list(&ListParams::default().fields(&selector))
        .await
        .map_err(|e| format!("the HPA {hpa}'s events could not be read: {e}"))?;
    Ok(list
        .items
        .iter()
        .filter_map(|e| e.message.as_deref()?.split("New size: ").nth(1))
        .filter_map(|rest| rest.split(';').next()?.trim().parse().ok())
        .collect())
}

/// The scale-out, seen in the HPA's events once the queue was empty before the step began.
fn scale_out_after_the_drain(
    ctx: &Context,
    peak: u64,
) -> impl std::future::Future<Output = Option<StepResult>> + Send + 'static {
    let events = Api::namespaced(ctx.target.client(), &ctx.names.namespace);
    let hpa = ctx.names.hpa.clone();
    answered_after_the_drain(
        ctx,
        move |o| o.queue != Some(0) || o.desired >= peak,
        move |first| async move {
            let began = format!(
                "the queue was already empty (0) when this step began (desired {})",
                first.desired
            );
            let sizes = match rescale_sizes(events, &hpa).await {
                Ok(sizes) => sizes,
                Err(e) => return StepResult::failed(format!("{began}, and {e}"), []),
            };
            let largest = sizes.iter().copied().max().unwrap_or(0);
            if largest >= peak {
                StepResult::passed([format!(
                    "{began}: the scale-out to {peak} is seen in HPA {hpa}'s SuccessfulRescale events (sizes {sizes:?}), not watched"
                )])
            } else {
                StepResult::failed(
                    format!(
                        "expected desired replicas = {peak}; {began}, and HPA {hpa}'s SuccessfulRescale events show at most {largest}: the scale-out was not seen (start `edw scale` right after `edw load`)"
                    ),
                    sizes.iter().map(|s| format!("SuccessfulRescale New size: {s}")),
                )
            }
        },
    )
}

/// Node growth, seen in the NodeClaims' `Registered` events (Karpenter's, on the cluster-scoped
/// NodeClaims, so in namespace `default`) once the backlog and its pods were gone before the
/// step began.
fn nodes_grow_after_the_drain(
    ctx: &Context,
) -> impl std::future::Future<Output = Option<StepResult>> + Send + 'static {
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(ctx.target.client(), "default");
    let pool = ctx.names.nodepool.clone();
    let before = ctx.nodes_before_load;
    answered_after_the_drain(
        ctx,
        |o| o.queue != Some(0) || o.desired > 0,
        move |first| async move {
            let began = format!(
                "the queue was already empty (0) and desired replicas {} when this step began",
                first.desired
            );
            let selector = "involvedObject.kind=NodeClaim,reason=Registered";
            let claims: std::collections::BTreeSet<String> =
                match events.list(&ListParams::default().fields(selector)).await {
                    Ok(list) => list
                        .items
                        .into_iter()
                        .filter_map(|e| e.involved_object.name)
                        .filter(|name| {
                            name.strip_prefix(pool.as_str())
                                .is_some_and(|rest| rest.starts_with('-'))
                        })
                        .collect(),
                    Err(e) => {
                        return StepResult::failed(
                            format!("{began}, and the NodeClaims' events could not be read: {e}"),
                            [],
                        )
                    }
                };
            let registered: Vec<String> = claims.into_iter().collect();
            if registered.len() as u64 > before {
                StepResult::passed([format!(
                    "{began}: {} NodeClaims of NodePool {pool} registered (their Registered events: {}), more than the {before} nodes it had at the load; the growth was not watched",
                    registered.len(),
                    registered.join(", ")
                )])
            } else {
                StepResult::failed(
                    format!(
                        "expected NodePool {pool} to grow; {began}, and {} of its NodeClaims registered, no more than the {before} nodes it had at the load (start `edw scale` right after `edw load`)",
                        registered.len()
                    ),
                    registered,
                )
            }
        },
    )
}

/// What the cluster's autoscaler should agree on with the harness while a backlog waits: the
/// run's ScaledObject and HPA against the queue the harness reads; the cluster gets two polls
/// and the HPA's 15 s sync to see a backlog.
fn agreement(ctx: &Context) -> crate::observe::Agreement {
    let polling = Duration::from_secs(ctx.settings.polling_interval);
    crate::observe::Agreement {
        client: ctx.target.client(),
        namespace: ctx.names.namespace.clone(),
        scaled_object: ctx.names.scaled_object.clone(),
        hpa: ctx.names.hpa.clone(),
        queue: ctx.target.storage().queue(&ctx.names.queue),
        activation: ctx.settings.activation_queue_length,
        polling,
        grace: polling * 2 + Duration::from_secs(15),
        clock: ctx.clock(),
    }
}

fn nodes_grow(ctx: &mut Context) -> StepFuture<'_> {
    if !ctx.target.capabilities().karpenter {
        return Box::pin(async {
            StepResult::skipped(
                "the cluster serves no karpenter.sh API: node growth cannot be observed",
            )
        });
    }
    let model = ctx.model();
    let n = messages(ctx);
    let e = model.burst(n);
    let line = format!(
        "{} consumer pods need {}..{} nodes ({} pods per 2-vCPU node)",
        e.peak_replicas, e.nodes_min, e.nodes_max, e.pods_per_small_node
    );
    let (pool, before) = (ctx.names.nodepool.clone(), ctx.nodes_before_load);
    // Growth is counted from the fewest nodes the pool had since the load started: Karpenter
    // may still remove the node of the Deployment's first pod (KEDA scales it to 0 before the
    // load) after the count at the load was taken, and the new node then only replaces it.
    let load_at = ctx.load_started_at.unwrap_or(0.0);
    let count = {
        let pool = pool.clone();
        move |o: &crate::scenario::model::Observation| o.nodes.get(&pool).copied().unwrap_or(0)
    };
    let fewest = ctx
        .timeline()
        .iter()
        .filter(|o| o.t >= load_at)
        .map(&count)
        .min()
        .map_or(before, |seen| seen.min(before));
    let floor = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(fewest));
    let expect = Expect::new(
        format!(
            "nodes of NodePool {pool} > the fewest it had since the load started ({before} at the load)"
        ),
        move |o| {
            let nodes = count(o);
            let fewest = floor
                .fetch_min(nodes, std::sync::atomic::Ordering::SeqCst)
                .min(nodes);
            nodes > fewest
        },
    );
    let late = nodes_grow_after_the_drain(ctx);
    let wait = wait_modelled(ctx, expect, model.timeouts(n).nodes_grow, line);
    Box::pin(async move {
        tokio::select! {
            result = wait => result,
            Some(result) = late => result,
        }
    })
}

fn drained(ctx: &mut Context) -> StepFuture<'_> {
    let model = ctx.model();
    let n = messages(ctx);
    let e = model.burst(n);
    if let Some(target) = ctx.settings.drain_target {
        // The configuration is judged against the stated target first: the model's estimate.
        if e.drain_estimate > target {
            let needed = (model.scaling.max_replicas..=1000)
                .find(|max| {
                    let mut m = model.clone();
                    m.scaling.max_replicas = *max;
                    m.burst(n).drain_estimate <= target
                })
                .map_or("no maxReplicaCount up to 1000".to_owned(), |m| {
                    format!("maxReplicaCount {m}")
                });
            let message = format!(
                "maxReplicaCount {} cannot drain {n} messages within the drain target of {} s: the model's estimate is {} s at a peak of {} replicas ({needed} would)",
                model.scaling.max_replicas,
                target.as_secs(),
                e.drain_estimate.as_secs(),
                e.peak_replicas
            );
            return Box::pin(async move { StepResult::failed(message, []) });
        }
        let line = format!(
            "drain target {} s (model estimate {} s)",
            target.as_secs(),
            e.drain_estimate.as_secs()
        );
        return wait_modelled(ctx, drained_expectation(e.max_stranded), target, line);
    }
    let line = format!(
        "drain estimate {} s for {n} messages at {} msg/s per pod",
        e.drain_estimate.as_secs(),
        model.timing.per_pod_rate
    );
    wait_modelled(
        ctx,
        drained_expectation(e.max_stranded),
        model.timeouts(n).drain,
        line,
    )
}

/// The queue drains to 0, or, where the configuration allows a stranded tail (the model's
/// `max_stranded`: minReplicaCount 0 with activationQueueLength above 0), to at most that many
/// messages with every consumer gone: KEDA deactivated at or below the activation threshold,
/// as it does on a real cluster whenever a poll lands in the last messages of a drain. The
/// finding `stranded-tail` names the fix; `verify` checks that the messages left are on the
/// queue, not lost; the `tail` scenarios test both sides.
fn drained_expectation(max_stranded: u64) -> Expect {
    if max_stranded == 0 {
        return Expect::new("queue depth = 0", |o| o.queue == Some(0));
    }
    Expect::new(
        format!("queue depth = 0, or a stranded tail of 1 to {max_stranded} messages at 0 replicas (finding stranded-tail)"),
        move |o| match o.queue {
            Some(0) => true,
            Some(left) => {
                left <= max_stranded && o.desired == 0 && o.running == 0 && o.pending == 0
            }
            None => false,
        },
    )
}

fn scaled_in(ctx: &mut Context) -> StepFuture<'_> {
    let model = ctx.model();
    let n = messages(ctx);
    let e = model.burst(n);
    let line = format!(
        "KEDA scales to minReplicaCount {} within {} s of the drain (cooldown {} s, polling {} s)",
        model.scaling.min_replicas,
        e.scale_to_zero_within.as_secs(),
        model.scaling.cooldown.as_secs(),
        model.scaling.polling.as_secs()
    );
    let min = model.scaling.min_replicas;
    let expect = Expect::new(
        format!("desired replicas = {min} and no more than {min} consumer pods running"),
        move |o| o.desired == min && o.running <= min,
    );
    wait_modelled(ctx, expect, model.timeouts(n).scale_in, line)
}

fn nodes_removed(ctx: &mut Context) -> StepFuture<'_> {
    if !ctx.target.capabilities().karpenter {
        return Box::pin(async {
            StepResult::skipped(
                "the cluster serves no karpenter.sh API: node removal cannot be observed",
            )
        });
    }
    if ctx.settings.min_replicas > 0 {
        return Box::pin(async {
            StepResult::skipped("minReplicaCount > 0 keeps consumer pods, and their nodes")
        });
    }
    let model = ctx.model();
    let n = messages(ctx);
    let line = format!(
        "empty nodes go within {} s (disruption loop, 15 s validation, VM deletion)",
        model.timing.node_removal.as_secs()
    );
    let (pool, before) = (ctx.names.nodepool.clone(), ctx.nodes_before_load);
    let expect = Expect::new(
        format!("nodes of NodePool {pool} <= {before} (before the load)"),
        move |o| o.nodes.get(&pool).copied().unwrap_or(0) <= before,
    );
    wait_modelled(ctx, expect, model.timeouts(n).nodes_removed, line)
}

/// What the load sent, reconciled with the run's table and poison queue (or the step's failure).
pub(super) async fn reconcile_run(
    ctx: &Context,
) -> Result<(ProduceReport, Reconciliation), StepResult> {
    let Some(produced) = ctx.produced.clone() else {
        return Err(StepResult::failed("nothing was produced", []));
    };
    let storage = ctx.target.storage();
    let (table, poison) = (
        storage.table(&ctx.names.table),
        storage.queue(&ctx.names.poison),
    );
    // The team's table (--use-deployed) holds earlier traffic too: only this run's rows count.
    let since = match ctx.footprint {
        Footprint::UseDeployed => ctx.load_started_stamp.clone().unwrap_or_default(),
        _ => String::new(),
    };
    match crate::workload::reconcile_since(&produced, &table, &poison, &since).await {
        Ok(result) => Ok((produced, result)),
        Err(e) => Err(StepResult::failed(format!("reading the table: {e}"), [])),
    }
}

fn verify(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let mut result = match reconcile_run(ctx).await {
            Ok((_, result)) => result,
            Err(failed) => return failed,
        };
        let tail = stranded_on_queue(ctx, &mut result).await;
        record_counts(ctx, &result);
        let max = ctx.settings.max_replicas as u64;
        let peak = ctx.timeline().iter().map(|o| o.desired).max().unwrap_or(0);
        ctx.property("replicas.peak", peak);
        let counts = result.summary();
        let mut details = vec![
            counts.clone(),
            format!("peak desired replicas {peak} (maxReplicaCount {max})"),
        ];
        if peak > max {
            return StepResult::failed(
                format!("replicas reached {peak}, above maxReplicaCount {max}; {counts}"),
                details,
            );
        }
        if let Some(recorder) = ctx.recorder.as_ref() {
            // The ceiling holds now too (consistently, over a short window of target time).
            let ceiling = Expect::new(format!("desired replicas <= {max}"), move |o| {
                o.desired <= max
            });
            if let Err(failure) = consistently(recorder, &ceiling, S(5)).await {
                details.extend(failure.lines());
                return StepResult::failed(
                    format!("the replica ceiling was broken; {counts}"),
                    details,
                );
            }
        }
        if !result.accounted() {
            details.push(format!(
                "lost: {:?}",
                result.lost.iter().take(20).collect::<Vec<_>>()
            ));
            return StepResult::failed(
                format!(
                    "{} lost and {} duplicated messages: {counts}",
                    result.lost.len(),
                    result.duplicated.len()
                ),
                details,
            );
        }
        match tail {
            StrandedTail::None => StepResult::passed(details),
            StrandedTail::Allowed(warning) => StepResult::passed_with_warnings(details, [warning]),
            StrandedTail::Refused(why) => StepResult::failed(format!("{why}: {counts}"), details),
        }
    })
}

/// Every count of `result` as the step's properties (`messages.sent`, …, zeros too).
pub(super) fn record_counts(ctx: &mut Context, result: &Reconciliation) {
    for (key, value) in result.properties() {
        ctx.property(key, value);
    }
}

/// What [`stranded_on_queue`] found about the sent messages without a row that are still on
/// the queue.
pub(super) enum StrandedTail {
    /// None is on the queue.
    None,
    /// A tail the configuration allows (at 0 replicas, at most the model's `max_stranded`):
    /// the text says so, with every count, for a warning.
    Allowed(String),
    /// On the queue, but more than the configuration can strand, or with consumers still
    /// running: why.
    Refused(String),
}

/// Moves the sent messages without a row that are still on the queue (peeked) from `lost` to
/// `stranded`, and says whether that is a stranded tail the configuration allows (at most the
/// model's `max_stranded`, with 0 replicas): they wait for the next traffic, not lost, not
/// processed.
pub(super) async fn stranded_on_queue(ctx: &Context, result: &mut Reconciliation) -> StrandedTail {
    if result.lost.is_empty() {
        return StrandedTail::None;
    }
    let Ok(peeked) = ctx
        .target
        .storage()
        .queue(&ctx.names.queue)
        .peek(crate::storage::MAX_BATCH)
        .await
    else {
        return StrandedTail::None;
    };
    let on_queue: std::collections::BTreeSet<String> = peeked
        .iter()
        .filter_map(|m| crate::workload::parse_message(&m.text).ok())
        .map(|m| m.msg)
        .collect();
    result.strand(|i| on_queue.contains(&crate::workload::label(i)));
    let left = result.stranded.len() as u64;
    if left == 0 {
        return StrandedTail::None;
    }
    let allowed = ctx.model().burst(messages(ctx)).max_stranded;
    let replicas = ctx.recorder.as_ref().map(|r| r.latest().desired);
    let activation = ctx.settings.activation_queue_length;
    if replicas != Some(0) {
        let replicas = replicas.map_or("unknown".to_owned(), |r| r.to_string());
        return StrandedTail::Refused(format!(
            "{left} message(s) are still on the queue with {replicas} desired replicas: not drained"
        ));
    }
    if left > allowed {
        return StrandedTail::Refused(format!(
            "{left} message(s) are left on the queue at 0 replicas, more than the configuration can strand ({allowed}: minReplicaCount {}, activationQueueLength {activation})",
            ctx.settings.min_replicas
        ));
    }
    StrandedTail::Allowed(format!(
        "stranded tail: {left} of {} sent message(s) were not processed; they are still on the queue at 0 replicas ({left} <= activationQueueLength {activation} with minReplicaCount 0, the configuration's finding `stranded-tail`) and wait for the next traffic ({})",
        result.sent,
        result.summary()
    ))
}

pub(super) fn cleanup_objects(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if ctx.applied.is_empty() {
            return StepResult::skipped(match ctx.footprint {
                Footprint::UseDeployed => "--use-deployed: the run created no Kubernetes object",
                _ => "the run created no Kubernetes object",
            });
        }
        let client = ctx.target.client();
        let run_id = ctx.names.run_id.clone();
        let mut details = Vec::new();
        let mut errors = Vec::new();
        let mut deleted = Vec::new();
        // In reverse: the ScaledObject first (KEDA stops scaling), the namespace last.
        let applied: Vec<Applied> = ctx.applied.iter().rev().cloned().collect();
        for object in &applied {
            match delete_owned(&client, object, &run_id).await {
                Ok(Removal::Deleted) => {
                    details.push(format!("deleted {} {}", object.kind, object.name));
                    deleted.push(object.clone());
                }
                Ok(Removal::AlreadyGone) => {
                    details.push(format!("{} {} was already gone", object.kind, object.name))
                }
                Ok(Removal::NotOurs { run_id: owner }) => details.push(format!(
                    "left alone: {} {} exists but does not carry this run's label {}={run_id} ({}): the run did not create it",
                    object.kind,
                    object.name,
                    crate::manifests::RUN_ID_LABEL,
                    owner.map_or("no run id".to_owned(), |o| format!("it carries {o}"))
                )),
                Err(e) => errors.push(crate::error_chain::text(&e)),
            }
        }
        let within = S(600);
        let clock = ctx.clock();
        let gone = poll_until(&clock, within, || async {
            let mut left = Vec::new();
            for object in &deleted {
                match exists(&client, object).await {
                    Ok(false) => {}
                    Ok(true) => left.push(format!("{} {}", object.kind, object.name)),
                    Err(e) => left.push(crate::error_chain::text(&e)),
                }
            }
            if left.is_empty() {
                Ok(())
            } else {
                Err(left.join(", "))
            }
        })
        .await;
        match gone {
            Err(left) => errors.push(format!("still present: {left}")),
            Ok(()) => details.push(format!(
                "checked: the {} object(s) this run created and deleted are gone",
                deleted.len()
            )),
        }
        if errors.is_empty() {
            StepResult::passed(details)
        } else {
            StepResult::failed(errors.join("; "), details)
        }
    })
}

/// The cleanup step that deletes the resource group the run deployed (and waits until it is
/// gone); skipped when the run reused a deployment.
pub fn cleanup_resource_group_step() -> Step {
    Step::new(
        "delete the resource group the run deployed",
        S(3600),
        cleanup_resource_group,
    )
}

fn cleanup_resource_group(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let Some(group) = ctx.deployed_group.clone() else {
            return StepResult::skipped(
                "the run deployed no resource group (it reused an existing deployment or ran on the twin)",
            );
        };
        match delete_group(&group).await {
            Ok(done) => StepResult::passed([done]),
            Err(e) => StepResult::failed(e, []),
        }
    })
}

/// [`delete_group`], announced on stderr first with why the group goes (`this run deployed
/// it`, `the deploy did not finish`).
pub async fn delete_group_announced(
    group: &super::DeployedGroup,
    why: &str,
) -> Result<String, String> {
    eprintln!("deleting resource group {} ({why})…", group.resource_group);
    delete_group(group).await
}

/// Deletes `group` and waits until Azure Resource Manager answers 404 (idempotent); the text
/// says what happened.
pub async fn delete_group(group: &super::DeployedGroup) -> Result<String, String> {
    let name = &group.resource_group;
    let client = crate::arm::ArmClient::from_env(&group.arm_url).map_err(|e| {
        format!("cannot reach Azure Resource Manager to delete resource group {name}: {e} (it is tagged for `edw sweep`)")
    })?;
    let groups = crate::arm::ResourceGroups::new(&client, &group.subscription);
    match groups.delete_resource_group(name).await {
        Ok(crate::arm::DeleteOutcome::Deleted) => Ok(format!(
            "deleted resource group {name} and waited until Azure Resource Manager answered 404"
        )),
        Ok(crate::arm::DeleteOutcome::AlreadyAbsent) => {
            Ok(format!("resource group {name} was already gone"))
        }
        Err(e) => Err(format!(
            "deleting resource group {name}: {e} (it is tagged for `edw sweep`)"
        )),
    }
}

pub(super) fn cleanup_storage(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if !ctx.created_storage {
            return StepResult::skipped("the run created no queue or table");
        }
        let storage = ctx.target.storage();
        let names = ctx.names.clone();
        let mut errors = Vec::new();
        for queue in [&names.queue, &names.poison] {
            let q = storage.queue(queue);
            if let Err(e) = q.delete().await {
                errors.push(e.to_string());
            } else if matches!(q.exists().await, Ok(true)) {
                errors.push(format!("queue {queue} still exists"));
            }
        }
        let table = storage.table(&names.table);
        if let Err(e) = table.delete().await {
            errors.push(e.to_string());
        }
        if errors.is_empty() {
            StepResult::passed([format!(
                "deleted queue {}, poison queue {} and table {} (checked)",
                names.queue, names.poison, names.table
            )])
        } else {
            StepResult::failed(errors.join("; "), [])
        }
    })
}

#[cfg(test)]
mod drained_tests {
    use super::drained_expectation;
    use crate::scenario::model::Observation;

    fn seen(queue: Option<u64>, desired: u64, running: u64) -> Observation {
        Observation {
            queue,
            desired,
            running,
            ..Observation::default()
        }
    }

    #[test]
    fn a_configuration_that_cannot_strand_must_drain_to_zero() {
        let strict = drained_expectation(0);
        assert!(strict.holds(&seen(Some(0), 0, 0)));
        assert!(!strict.holds(&seen(Some(3), 0, 0)));
        assert_eq!(strict.description, "queue depth = 0");
    }

    #[test]
    fn a_stranded_tail_is_accepted_only_within_the_model_and_with_no_consumer() {
        let sample = drained_expectation(20);
        assert!(sample.description.contains("stranded-tail"), "{sample:?}");
        assert!(sample.holds(&seen(Some(0), 15, 15)));
        assert!(sample.holds(&seen(Some(3), 0, 0)));
        assert!(sample.holds(&seen(Some(20), 0, 0)));
        // More than the activation threshold: KEDA would still be active.
        assert!(!sample.holds(&seen(Some(21), 0, 0)));
        // Consumers are still there: the drain is still going.
        assert!(!sample.holds(&seen(Some(5), 1, 1)));
        assert!(!sample.holds(&seen(Some(5), 0, 1)));
        // An unread queue says nothing.
        assert!(!sample.holds(&seen(None, 0, 0)));
    }
}

#[cfg(test)]
mod activation_refusal_tests {
    use super::{check_load_activates, FlowSettings};

    #[test]
    fn a_load_at_or_below_the_activation_threshold_at_min_zero_is_refused() {
        let settings = |messages, min_replicas, activation_queue_length| FlowSettings {
            messages,
            min_replicas,
            activation_queue_length,
            ..FlowSettings::default()
        };
        let refused = check_load_activates(&settings(10, 0, 20)).unwrap_err();
        assert_eq!(
            (refused.messages, refused.activation, refused.minimum),
            (10, 20, 21)
        );
        let text = refused.to_string();
        for part in [
            "--messages 10",
            "minReplicaCount 0",
            "activationQueueLength 20",
            "--messages 21 or more",
            "flow::activation",
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        assert!(
            check_load_activates(&settings(20, 0, 20)).is_err(),
            "AQ-7 is strict"
        );
        assert!(check_load_activates(&settings(21, 0, 20)).is_ok());
        // A floor of consumers reads any load; without an activation threshold 1 activates.
        assert!(check_load_activates(&settings(10, 1, 20)).is_ok());
        assert!(check_load_activates(&settings(1, 0, 0)).is_ok());
    }
}

#[cfg(test)]
mod consumer_pod_tests {
    use super::{image_pull_failure, pod_phase};
    use k8s_openapi::api::core::v1::Pod;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "aqs-app-k3x9q2-1"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn an_image_that_cannot_be_pulled_is_named_with_the_fix() {
        let stuck = pod(
            serde_json::json!({"phase": "Pending", "containerStatuses": [{
            "name": "keda-queue-reader", "image": "acraksdemo.azurecr.io/aws2azure/aqs-consumer",
            "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}),
        );
        let failure = image_pull_failure(&stuck).expect("a pull failure");
        assert!(
            failure.contains(
                "cannot pull image acraksdemo.azurecr.io/aws2azure/aqs-consumer (ImagePullBackOff"
            ),
            "{failure}"
        );
        assert!(failure.contains("EDW_CONSUMER_IMAGE"), "{failure}");
        let running = pod(serde_json::json!({"phase": "Running"}));
        assert_eq!(image_pull_failure(&running), None);
        assert_eq!(pod_phase(&running), "Running");
        assert_eq!(pod_phase(&pod(serde_json::json!({}))), "without a phase");
    }
}
