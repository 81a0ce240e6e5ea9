//! The sample's Kubernetes objects (the walkthrough's manifests) as JSON, for tests and
//! simulations that set the twin up without going through templates.

use edw_model::walkthrough::scaled_object;
use std::time::Duration;

use serde_json::{json, Value};

use crate::store::{ApiError, Store};

/// The knobs of the sample's ScaledObject.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingConfig {
    pub min: i64,
    pub max: i64,
    pub polling: i64,
    pub cooldown: i64,
    pub queue_length: i64,
    pub activation: i64,
    /// `advanced.horizontalPodAutoscalerConfig.behavior`, if set.
    pub behavior: Option<Value>,
}

impl Default for ScalingConfig {
    /// The walkthrough's values.
    fn default() -> Self {
        ScalingConfig {
            min: scaled_object::MIN_REPLICAS,
            max: scaled_object::MAX_REPLICAS,
            polling: scaled_object::POLLING_INTERVAL as i64,
            cooldown: scaled_object::COOLDOWN_PERIOD as i64,
            queue_length: scaled_object::QUEUE_LENGTH as i64,
            activation: scaled_object::ACTIVATION_QUEUE_LENGTH as i64,
            behavior: None,
        }
    }
}

/// The walkthrough's NodePool (`default-pool.yaml`, karpenter.sh/v1beta1; created as the same
/// pool in v1, as NAP serves it today: [`crate::conversion::nodepool_as_v1`]).
pub const DEFAULT_POOL_YAML: &str = include_str!("../../../fixtures/manifests/default-pool.yaml");

/// Creates what the sample deploys: namespace `aqs-demo`, the workload-identity service
/// account, the NodePool, the consumer Deployment, the TriggerAuthentication and the
/// ScaledObject.
pub fn deploy(store: &Store, queue: &str, scaling: &ScalingConfig) -> Result<(), ApiError> {
    deploy_with_table(store, queue, "aws2azpmts", scaling)
}

/// [`deploy`] with the consumer writing to `table`.
pub fn deploy_with_table(
    store: &Store,
    queue: &str,
    table: &str,
    scaling: &ScalingConfig,
) -> Result<(), ApiError> {
    deploy_with(store, queue, table, scaled_object(queue, scaling))
}

/// [`deploy`] with the consumer writing to `table` and the given ScaledObject (created in
/// `aqs-demo`).
pub fn deploy_with(
    store: &Store,
    queue: &str,
    table: &str,
    scaled_object: Value,
) -> Result<(), ApiError> {
    deploy_workload(store, queue, table)?;
    store.create("scaledobjects.keda.sh", "aqs-demo", scaled_object)?;
    Ok(())
}

/// [`deploy_with`] without the ScaledObject: the NodePool, namespace, service account,
/// consumer Deployment (1 replica, as the sample's manifest) and TriggerAuthentication.
pub fn deploy_workload(store: &Store, queue: &str, table: &str) -> Result<(), ApiError> {
    store.create("nodepools.karpenter.sh", "", default_nodepool()?)?;
    store.create("namespaces", "", namespace("aqs-demo"))?;
    store.create(
        "serviceaccounts",
        "aqs-demo",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "aqs-app-service-account", "annotations": {"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555"}}}),
    )?;
    store.create(
        "deployments.apps",
        "aqs-demo",
        consumer_deployment(queue, table),
    )?;
    store.create(
        "triggerauthentications.keda.sh",
        "aqs-demo",
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": "keda-az-credentials"}, "spec": {"podIdentity": {"provider": "azure-workload", "identityId": "11111111-2222-3333-4444-555555555555"}}}),
    )?;
    Ok(())
}

/// AKS NAP's `default` NodePool as the sample's cluster has it, as `karpenter.sh/v1`.
pub fn default_nodepool() -> Result<Value, ApiError> {
    let mut pool: Value = serde_saphyr::from_str(DEFAULT_POOL_YAML)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Server-populated fields of the captured object are not part of what one applies.
    if let Some(meta) = pool.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["creationTimestamp", "resourceVersion", "uid", "generation"] {
            meta.remove(field);
        }
    }
    crate::conversion::nodepool_as_v1(&mut pool);
    Ok(pool)
}

/// A Namespace named `name`.
pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// Runs the virtual-clock `engine` 10 simulated seconds at a time until `count` pods of
/// `namespace` are Running, for at most `deadline`; the pods' phases when they are not.
pub fn run_until_running(
    engine: &mut crate::engine::Engine,
    namespace: &str,
    count: usize,
    deadline: Duration,
) -> Result<(), String> {
    let start = engine.now();
    loop {
        let (pods, _) = engine.store.list("pods", Some(namespace), None, None);
        let running = pods
            .iter()
            .filter(|p| p.pointer("/status/phase") == Some(&json!("Running")))
            .count();
        if running >= count {
            return Ok(());
        }
        if engine.now() >= start + deadline {
            let phases: Vec<String> = pods
                .iter()
                .map(|p| format!("{}: {}", p["metadata"]["name"], p["status"]["phase"]))
                .collect();
            return Err(format!(
                "{running} of {count} pods Running in {namespace} after {deadline:?} simulated: {phases:?}"
            ));
        }
        let next = engine.now() + Duration::from_secs(10);
        engine.run_until(next);
    }
}

/// The consumer Deployment of `deploy-keda-app-workload-id.sh`.
pub fn consumer_deployment(queue: &str, table: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "aqs-app", "namespace": "aqs-demo"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "aqs-reader"}},
            "template": {
                "metadata": {"labels": {"app": "aqs-reader", "azure.workload.identity/use": "true"}},
                "spec": {
                    "serviceAccountName": "aqs-app-service-account",
                    "containers": [{
                        "name": "keda-queue-reader",
                        "image": "acraksdemo.azurecr.io/aws2azure/aqs-consumer",
                        "imagePullPolicy": "Always",
                        "env": [
                            {"name": "AZURE_QUEUE_NAME", "value": queue},
                            {"name": "AZURE_STORAGE_ACCOUNT_NAME", "value": "storaksdemo"},
                            {"name": "AZURE_TABLE_NAME", "value": table},
                        ],
                        "resources": {"requests": {"memory": "64Mi", "cpu": "250m"}, "limits": {"memory": "128Mi", "cpu": "500m"}},
                    }],
                },
            },
        },
    })
}

/// The ScaledObject of `keda-scaleobject-workload-id.sh`.
pub fn scaled_object(queue: &str, scaling: &ScalingConfig) -> Value {
    let mut so = json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "aws2az-queue-scaleobj", "namespace": "aqs-demo"},
        "spec": {
            "scaleTargetRef": {"name": "aqs-app"},
            "minReplicaCount": scaling.min,
            "maxReplicaCount": scaling.max,
            "pollingInterval": scaling.polling,
            "cooldownPeriod": scaling.cooldown,
            "triggers": [{
                "type": "azure-queue",
                "authenticationRef": {"name": "keda-az-credentials"},
                "metadata": {
                    "queueName": queue,
                    "accountName": "storaksdemo",
                    "queueLength": scaling.queue_length.to_string(),
                    "activationQueueLength": scaling.activation.to_string(),
                    "cloud": "AzurePublicCloud",
                },
            }],
        },
    });
    if let Some(behavior) = &scaling.behavior {
        so["spec"]["advanced"] = json!({"horizontalPodAutoscalerConfig": {"behavior": behavior}});
    }
    so
}
