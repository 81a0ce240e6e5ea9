//! Validate steps: KEDA runs, the consumer has its workload-identity pod, the NodePool is served by Karpenter, the ScaledObject is Ready with its HPA; and the observation recorder a phase run starts.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};

use super::{deploy::*, k8s::*, secs};
use crate::observe::Recorder;
use crate::runner::{Context, Footprint, StepFuture, StepResult};

/// Starts the observation recorder (a phase run in a new process has none yet).
pub fn observe(ctx: &mut Context) -> StepFuture<'_> {
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

/// The ScaledObject is Ready and its HPA has the settings' min and max.
pub fn validate_scaled_object(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move { check_scaled_object(ctx).await })
}

/// Where the KEDA operator runs: `EDW_KEDA_NAMESPACE` if set, else kube-system (the AKS add-on)
/// and keda (KEDA's Helm chart, as `ci/kind-up.sh` installs it).
pub fn keda_namespaces() -> Vec<String> {
    match std::env::var("EDW_KEDA_NAMESPACE") {
        Ok(ns) if !ns.is_empty() => vec![ns],
        _ => vec!["kube-system".to_owned(), "keda".to_owned()],
    }
}

/// The KEDA operator runs (kube-system, keda, or `EDW_KEDA_NAMESPACE`).
pub fn validate_keda(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let client = ctx.target.client();
        let namespaces = keda_namespaces();
        let within = secs(300);
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

/// The consumer Deployment has one Running pod with the workload identity (an image that
/// cannot be pulled fails at once, naming the image).
pub fn validate_consumer(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if ctx.footprint == Footprint::UseDeployed {
            return validate_deployed_template(ctx).await;
        }
        let pods: Api<Pod> = Api::namespaced(ctx.target.client(), &ctx.names.namespace);
        let service_account = ctx.names.service_account.clone();
        let selector = ctx.pod_selector();
        let within = secs(300);
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

/// A pod's phase, `without a phase` when it has none.
pub fn pod_phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "without a phase".to_owned())
}

/// A consumer container waiting on an image it cannot pull, said with the fix.
pub fn image_pull_failure(pod: &Pod) -> Option<String> {
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
pub async fn validate_deployed_template(ctx: &Context) -> StepResult {
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

/// The run's NodePool is served by karpenter.sh (skipped without Karpenter).
pub fn validate_nodepool(ctx: &mut Context) -> StepFuture<'_> {
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
