//! Deploy steps: the run's namespace, service account, consumer and NodePool (or the team's, used as they are), its queue and table, then the ScaledObject and TriggerAuthentication with the findings they raise.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DynamicObject};

use super::{k8s::*, scale::*, secs};
use crate::manifests::{create, render, stamp_ownership};
use crate::observe::Recorder;
use crate::runner::{Context, FlowSettings, Footprint, StepFuture, StepResult};

/// Creates what the run's footprint asks for (namespace, service account, consumer, NodePool,
/// queue and table; or checks the team's, with `--use-deployed`), recording each in the ledger
/// before it is created, and starts the observation recorder.
pub fn deploy(ctx: &mut Context) -> StepFuture<'_> {
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
pub async fn create_storage(ctx: &mut Context) -> Result<(), StepResult> {
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
pub async fn shared_namespace_ready(ctx: &mut Context) -> Result<String, String> {
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
pub async fn create_owned(ctx: &mut Context, template: &str) -> Result<Vec<String>, String> {
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
pub async fn use_deployed(ctx: &mut Context) -> StepResult {
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

/// Applies the ScaledObject and TriggerAuthentication of the run's settings, waits for KEDA to
/// take the ScaledObject, and records the findings its settings raise.
pub fn install_scaled_object(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if !ctx.target.capabilities().keda {
            return StepResult::failed(
                "the cluster serves no keda.sh API: install KEDA (on AKS: --enable-keda)",
                [],
            );
        }
        if ctx.footprint == Footprint::UseDeployed {
            // The team's ScaledObject: read, checked, never created or changed. Its scaling
            // settings are the run's: the expectations (peak, stranded tail, timeouts) follow
            // what is deployed, not the walkthrough's defaults.
            let adopted = match adopt_deployed_scaling(ctx).await {
                Ok(line) => line,
                Err(message) => return StepResult::failed(message, []),
            };
            return match check_scaled_object(ctx).await {
                StepResult::Passed { details, warnings } => StepResult::Passed {
                    details: std::iter::once(adopted).chain(details).collect(),
                    warnings,
                },
                StepResult::Failed { message, details } => StepResult::Failed {
                    message,
                    details: std::iter::once(adopted).chain(details).collect(),
                },
                skipped => skipped,
            };
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
        // When it exists (KEDA polls from then on), for the prediction: taken before the
        // calls, it would be early by their real time, twenty-fold on the twin's clock.
        ctx.scaled_object_applied_at = ctx.recorder.as_ref().map(|r| r.elapsed());
        // Ready=True, or a KEDA that cannot read the queue the harness reads, named at once.
        let guard = crate::observe::disagreement(agreement(ctx));
        tokio::select! {
            result = check_scaled_object(ctx) => result,
            mismatch = guard => StepResult::failed(mismatch.message, mismatch.details),
        }
    })
}

/// Reads the team's ScaledObject and makes its scaling settings the run's; says what they are
/// and which differ from the settings the run was given.
async fn adopt_deployed_scaling(ctx: &mut Context) -> Result<String, String> {
    let scaled: Api<DynamicObject> = Api::namespaced_with(
        ctx.target.client(),
        &ctx.names.namespace,
        &dynamic("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects"),
    );
    let name = ctx.names.scaled_object.clone();
    let so = match scaled.get_opt(&name).await {
        Ok(Some(so)) => serde_json::to_value(&so).unwrap_or_default(),
        Ok(None) => {
            return Err(format!(
                "--use-deployed: ScaledObject {}/{name} does not exist (the deployed consumer must be scaled by KEDA)",
                ctx.names.namespace
            ))
        }
        Err(e) => {
            return Err(format!(
                "reading ScaledObject {}/{name}: {e}",
                ctx.names.namespace
            ))
        }
    };
    let deployed = deployed_scaling(&so, &ctx.settings)
        .map_err(|e| format!("--use-deployed: ScaledObject {name}: {e}"))?;
    let line = adopted_line(&name, &ctx.settings, &deployed);
    ctx.settings = deployed;
    Ok(line)
}

/// `settings` with the scaling of deployed ScaledObject `so` (its `azure-queue` trigger's
/// queueLength and activationQueueLength, minReplicaCount, maxReplicaCount, pollingInterval,
/// cooldownPeriod), KEDA's defaults where a field is left out (0, 100, 30 s, 300 s; the
/// trigger's 5 and 0).
pub fn deployed_scaling(
    so: &serde_json::Value,
    settings: &FlowSettings,
) -> Result<FlowSettings, String> {
    let spec = &so["spec"];
    let trigger = spec["triggers"]
        .as_array()
        .and_then(|triggers| triggers.iter().find(|t| t["type"] == "azure-queue"))
        .ok_or("it has no azure-queue trigger")?;
    // Trigger metadata values are strings ("5"); the spec's counts are numbers.
    let metadata = |key: &str, default: u64| -> Result<u64, String> {
        match &trigger["metadata"][key] {
            serde_json::Value::Null => Ok(default),
            value => value
                .as_str()
                .map(str::trim)
                .and_then(|v| v.parse().ok())
                .or_else(|| value.as_u64())
                .ok_or_else(|| format!("its trigger's {key} is not a count: {value}")),
        }
    };
    let count = |key: &str, default: i64| -> Result<i64, String> {
        match &spec[key] {
            serde_json::Value::Null => Ok(default),
            value => value
                .as_i64()
                .filter(|v| *v >= 0)
                .ok_or_else(|| format!("its {key} is not a count: {value}")),
        }
    };
    Ok(FlowSettings {
        queue_length: metadata("queueLength", 5)?,
        activation_queue_length: metadata("activationQueueLength", 0)?,
        min_replicas: count("minReplicaCount", 0)?,
        max_replicas: count("maxReplicaCount", 100)?,
        polling_interval: count("pollingInterval", 30)? as u64,
        cooldown_period: count("cooldownPeriod", 300)? as u64,
        ..settings.clone()
    })
}

/// What the team's ScaledObject says, and what differs from the run's settings.
fn adopted_line(name: &str, given: &FlowSettings, deployed: &FlowSettings) -> String {
    let pairs = [
        (
            "queueLength",
            given.queue_length as i64,
            deployed.queue_length as i64,
        ),
        (
            "activationQueueLength",
            given.activation_queue_length as i64,
            deployed.activation_queue_length as i64,
        ),
        ("minReplicaCount", given.min_replicas, deployed.min_replicas),
        ("maxReplicaCount", given.max_replicas, deployed.max_replicas),
        (
            "pollingInterval",
            given.polling_interval as i64,
            deployed.polling_interval as i64,
        ),
        (
            "cooldownPeriod",
            given.cooldown_period as i64,
            deployed.cooldown_period as i64,
        ),
    ];
    let deployed_text: Vec<String> = pairs.iter().map(|(k, _, d)| format!("{k} {d}")).collect();
    let changed: Vec<String> = pairs
        .iter()
        .filter(|(_, g, d)| g != d)
        .map(|(k, g, d)| format!("{k} {g} -> {d}"))
        .collect();
    let differences = if changed.is_empty() {
        "the same as the run's settings".to_owned()
    } else {
        format!("instead of the run's settings: {}", changed.join(", "))
    };
    format!(
        "the team's ScaledObject {name}: {}; the run's expectations follow it ({differences})",
        deployed_text.join(", ")
    )
}

/// The configuration's findings (stranded tail, cooldown, NodePool limits, …) for the report.
pub fn record_findings(ctx: &mut Context, objects: &[serde_json::Value]) {
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
pub async fn check_scaled_object(ctx: &mut Context) -> StepResult {
    let client = ctx.target.client();
    let scaled: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ctx.names.namespace,
        &dynamic("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects"),
    );
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ctx.names.namespace);
    let (so_name, hpa_name) = (ctx.names.scaled_object.clone(), ctx.names.hpa.clone());
    let (min, max) = (ctx.settings.min_replicas.max(1), ctx.settings.max_replicas);
    let within = secs(300);
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

/// The ScaledObject of `settings`, for the twin's virtual clock.
pub fn scaled_object_json(settings: &FlowSettings) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "aws2az-queue-scaleobj"},
        "spec": {
            "scaleTargetRef": {"name": "aqs-app"},
            "minReplicaCount": settings.min_replicas,
            "maxReplicaCount": settings.max_replicas,
            "pollingInterval": settings.polling_interval,
            "cooldownPeriod": settings.cooldown_period,
            "triggers": [{"type": "azure-queue", "metadata": {
                "queueName": "aws2azmsgs",
                "queueLength": settings.queue_length.to_string(),
                "activationQueueLength": settings.activation_queue_length.to_string(),
            }}],
        },
    })
}

#[cfg(test)]
mod deployed_scaling_tests {
    use super::{adopted_line, deployed_scaling};
    use crate::runner::FlowSettings;
    use serde_json::json;

    /// queueLength, activationQueueLength, min, max, polling, cooldown.
    fn scaling(s: &FlowSettings) -> (u64, u64, i64, i64, u64, u64) {
        (
            s.queue_length,
            s.activation_queue_length,
            s.min_replicas,
            s.max_replicas,
            s.polling_interval,
            s.cooldown_period,
        )
    }

    fn team_scaled_object(
        metadata: serde_json::Value,
        spec: serde_json::Value,
    ) -> serde_json::Value {
        let mut so = json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "spec": {
                "scaleTargetRef": {"name": "aqs-app"},
                "triggers": [
                    {"type": "cpu", "metadata": {"value": "50"}},
                    {"type": "azure-queue", "metadata": metadata},
                ],
            },
        });
        for (key, value) in spec.as_object().unwrap() {
            so["spec"][key] = value.clone();
        }
        so
    }

    #[test]
    fn the_team_scaled_objects_settings_become_the_runs() {
        let given = FlowSettings::default();
        let so = team_scaled_object(
            json!({"queueName": "q", "queueLength": "10", "activationQueueLength": "0"}),
            json!({"minReplicaCount": 1, "maxReplicaCount": 30, "pollingInterval": 15, "cooldownPeriod": 120}),
        );
        let deployed = deployed_scaling(&so, &given).unwrap();
        assert_eq!(scaling(&deployed), (10, 0, 1, 30, 15, 120));
        // What is not scaling stays the run's.
        assert_eq!(deployed.messages, given.messages);
        let line = adopted_line("team-so", &given, &deployed);
        assert!(line.starts_with("the team's ScaledObject team-so: queueLength 10, activationQueueLength 0, minReplicaCount 1, maxReplicaCount 30"), "{line}");
        assert!(line.contains("instead of the run's settings: queueLength 5 -> 10, activationQueueLength 20 -> 0, minReplicaCount 0 -> 1, maxReplicaCount 15 -> 30"), "{line}");
        // The walkthrough's own ScaledObject changes nothing.
        let walkthrough = team_scaled_object(
            json!({"queueLength": "5", "activationQueueLength": "20"}),
            json!({"minReplicaCount": 0, "maxReplicaCount": 15, "pollingInterval": 30, "cooldownPeriod": 10}),
        );
        let same = deployed_scaling(&walkthrough, &given).unwrap();
        assert_eq!(same, given);
        assert!(adopted_line("so", &given, &same).ends_with("(the same as the run's settings)"));
    }

    #[test]
    fn fields_left_out_take_kedas_defaults_and_bad_ones_are_named() {
        let given = FlowSettings::default();
        let bare = team_scaled_object(json!({"queueName": "q"}), json!({}));
        let deployed = deployed_scaling(&bare, &given).unwrap();
        assert_eq!(scaling(&deployed), (5, 0, 0, 100, 30, 300));
        let bad = team_scaled_object(json!({"queueLength": "five"}), json!({}));
        let error = deployed_scaling(&bad, &given).unwrap_err();
        assert!(
            error.contains("queueLength is not a count") && error.contains("five"),
            "{error}"
        );
        let negative = team_scaled_object(json!({}), json!({"maxReplicaCount": -1}));
        assert!(deployed_scaling(&negative, &given)
            .unwrap_err()
            .contains("maxReplicaCount"));
        let cpu_only = json!({"spec": {"triggers": [{"type": "cpu", "metadata": {}}]}});
        assert_eq!(
            deployed_scaling(&cpu_only, &given).unwrap_err(),
            "it has no azure-queue trigger"
        );
    }
}
