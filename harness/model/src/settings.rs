//! The model's inputs, read from the ScaledObject and NodePool objects (or the flow settings):
//! KEDA's defaults (KS-1, AQ-1) where a field is absent.

use std::time::Duration;

use serde_json::Value;

use crate::walkthrough::scaled_object;

/// Why an object cannot be modelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("{object}: {field} is {value:?}, expected {expected}")]
    Field {
        object: String,
        field: String,
        value: String,
        expected: String,
    },
    #[error("{object}: no azure-queue trigger")]
    NoQueueTrigger { object: String },
}

/// The ScaledObject's scaling settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingSettings {
    pub min_replicas: u64,
    pub max_replicas: u64,
    pub polling: Duration,
    pub cooldown: Duration,
    pub queue_length: u64,
    pub activation: u64,
    /// `advanced.horizontalPodAutoscalerConfig.behavior` is set (HPA-8 instead of HPA-7).
    pub behavior_set: bool,
}

impl Default for ScalingSettings {
    /// The walkthrough's ScaledObject.
    fn default() -> Self {
        ScalingSettings {
            min_replicas: scaled_object::MIN_REPLICAS as u64,
            max_replicas: scaled_object::MAX_REPLICAS as u64,
            polling: Duration::from_secs(scaled_object::POLLING_INTERVAL),
            cooldown: Duration::from_secs(scaled_object::COOLDOWN_PERIOD),
            queue_length: scaled_object::QUEUE_LENGTH,
            activation: scaled_object::ACTIVATION_QUEUE_LENGTH,
            behavior_set: false,
        }
    }
}

fn number(
    object: &str,
    field: &str,
    value: Option<&Value>,
    default: u64,
) -> Result<u64, ModelError> {
    let bad = |v: &Value| ModelError::Field {
        object: object.to_owned(),
        field: field.to_owned(),
        value: v.to_string(),
        expected: if v.as_str().is_some_and(|s| s.contains("${")) {
            "a whole number >= 0 (this is an unrendered template: its ${…} variables need values)"
                .to_owned()
        } else {
            "a whole number >= 0".to_owned()
        },
    };
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| bad(&Value::Number(n.clone()))),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| bad(&Value::String(s.clone()))),
        Some(other) => Err(bad(other)),
    }
}

impl ScalingSettings {
    /// Reads a ScaledObject (KS-1 / AQ-1 defaults for absent fields).
    pub fn from_scaled_object(so: &Value) -> Result<ScalingSettings, ModelError> {
        let name = format!(
            "ScaledObject {}",
            so.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?")
        );
        let spec = so.get("spec").cloned().unwrap_or(Value::Null);
        let trigger = spec
            .get("triggers")
            .and_then(Value::as_array)
            .and_then(|t| {
                t.iter()
                    .find(|t| t.get("type").and_then(Value::as_str) == Some("azure-queue"))
            })
            .ok_or_else(|| ModelError::NoQueueTrigger {
                object: name.clone(),
            })?;
        let meta = trigger.get("metadata").cloned().unwrap_or(Value::Null);
        let settings = ScalingSettings {
            min_replicas: number(
                &name,
                "spec.minReplicaCount",
                spec.get("minReplicaCount"),
                0,
            )?,
            max_replicas: number(
                &name,
                "spec.maxReplicaCount",
                spec.get("maxReplicaCount"),
                100,
            )?,
            polling: Duration::from_secs(number(
                &name,
                "spec.pollingInterval",
                spec.get("pollingInterval"),
                30,
            )?),
            cooldown: Duration::from_secs(number(
                &name,
                "spec.cooldownPeriod",
                spec.get("cooldownPeriod"),
                300,
            )?),
            queue_length: number(&name, "queueLength", meta.get("queueLength"), 5)?,
            activation: number(
                &name,
                "activationQueueLength",
                meta.get("activationQueueLength"),
                0,
            )?,
            behavior_set: spec
                .pointer("/advanced/horizontalPodAutoscalerConfig/behavior")
                .is_some(),
        };
        if settings.queue_length == 0 {
            return Err(ModelError::Field {
                object: name,
                field: "queueLength".into(),
                value: "0".into(),
                expected: "at least 1".into(),
            });
        }
        Ok(settings)
    }
}

/// The NodePool's settings the model needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePoolSettings {
    pub name: String,
    /// `spec.limits.cpu` in millicores, if set.
    pub cpu_limit_millis: Option<u64>,
    /// The largest vCPU count its requirements allow (D family: up to 96).
    pub max_vcpus: u64,
    /// The smallest vCPU count its requirements allow.
    pub min_vcpus: u64,
    pub budget_percent: Option<f64>,
}

impl Default for NodePoolSettings {
    /// The sample's default-pool.yaml: D family, no limits, budget 100 %.
    fn default() -> Self {
        NodePoolSettings {
            name: "default".to_owned(),
            cpu_limit_millis: None,
            max_vcpus: 96,
            min_vcpus: 2,
            budget_percent: Some(100.0),
        }
    }
}

impl NodePoolSettings {
    /// Reads a karpenter.sh NodePool (v1 or v1beta1).
    pub fn from_nodepool(pool: &Value) -> NodePoolSettings {
        let mut settings = NodePoolSettings {
            name: pool
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned(),
            cpu_limit_millis: pool.pointer("/spec/limits/cpu").map(cpu_millis),
            budget_percent: pool
                .pointer("/spec/disruption/budgets/0/nodes")
                .and_then(Value::as_str)
                .and_then(|b| b.strip_suffix('%'))
                .and_then(|p| p.parse().ok())
                .or(Some(10.0)),
            ..NodePoolSettings::default()
        };
        for requirement in pool
            .pointer("/spec/template/spec/requirements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if requirement.get("key").and_then(Value::as_str) != Some("karpenter.azure.com/sku-cpu")
            {
                continue;
            }
            let values: Vec<u64> = requirement
                .get("values")
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(|x| x.as_str().and_then(|s| s.parse().ok()))
                        .collect()
                })
                .unwrap_or_default();
            match requirement.get("operator").and_then(Value::as_str) {
                Some("In") if !values.is_empty() => {
                    settings.max_vcpus = *values.iter().max().unwrap_or(&96);
                    settings.min_vcpus = *values.iter().min().unwrap_or(&2);
                }
                Some("Lt") => {
                    settings.max_vcpus = values.first().map_or(96, |v| v.saturating_sub(1))
                }
                Some("Gt") => settings.min_vcpus = values.first().map_or(2, |v| v + 1),
                _ => {}
            }
        }
        settings
    }
}

/// CPU quantity in millicores.
pub fn cpu_millis(quantity: &Value) -> u64 {
    let text = match quantity {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return 0,
    };
    match text.trim().strip_suffix('m') {
        Some(m) => m.parse::<f64>().map_or(0, |v| v as u64),
        None => text
            .trim()
            .parse::<f64>()
            .map_or(0, |v| (v * 1000.0) as u64),
    }
}

/// How the target's time and latencies behave (A2, A3, A5, A6 of the twin spec for AKS NAP).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetTiming {
    /// HPA sync period (HPA-1).
    pub hpa_sync: Duration,
    /// NodeClaim creation to a Ready node (AZ-10; the SLA's bound is 5 minutes).
    pub node_ready: Duration,
    /// Pod bind to Running (image pull, start).
    pub pod_start: Duration,
    /// Karpenter's batch window (KP-2).
    pub batch: Duration,
    /// Empty node to gone (disruption loop, validation, VM deletion).
    pub node_removal: Duration,
    /// Consumer messages per second per Running pod (the sample: about 1).
    pub per_pod_rate: f64,
    /// CPU a consumer pod requests (the sample: 250m).
    pub pod_cpu_millis: u64,
    /// DaemonSet CPU per node (AZ-7 [U]).
    pub daemonset_cpu_millis: u64,
    /// The most messages per target second the storage sustains for the consumers, if it is
    /// the bottleneck (Azurite on a small machine; an Azure queue takes about 2,000/s).
    pub storage_rate: Option<f64>,
}

impl Default for TargetTiming {
    /// The twin specification's defaults for AKS with NAP.
    fn default() -> Self {
        TargetTiming {
            hpa_sync: Duration::from_secs(15),
            node_ready: Duration::from_secs(90),
            pod_start: Duration::from_secs(5),
            batch: Duration::from_secs(1),
            node_removal: Duration::from_secs(45),
            per_pod_rate: 1.0,
            pod_cpu_millis: 250,
            daemonset_cpu_millis: 100,
            storage_rate: None,
        }
    }
}
