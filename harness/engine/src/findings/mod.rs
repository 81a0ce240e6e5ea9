//! Configuration findings: settings of the ScaledObject, the NodePool and the sample's deploy
//! script that look fine but lose work or money, each with its consequence computed by
//! [`edw_model`] (concrete numbers, never hard-coded) and a fix.
//!
//! [`check`] reads a ScaledObject (and optionally a NodePool, a deploy script with the files it
//! sources, a burst size and a drain target) and returns the findings, Risk first. `edw check-config` prints them;
//! scenario reports carry them (`ScenarioReport::findings`).

mod defaults;
mod drain;
mod kubernetes_version;
mod nodepool;
mod scaling;
mod script_findings;
mod validate;

use std::time::Duration;

use serde_json::Value;

use edw_model::{Model, ModelError, NodePoolSettings, ScalingSettings, TargetTiming};

pub use defaults::{default_objects, pick_document, template_vars, DefaultObjects};

pub use edw_model::finding::{Finding, Severity};

/// What [`check`] reads.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckInputs {
    /// A keda.sh ScaledObject with an azure-queue trigger.
    pub scaled_object: Value,
    /// A karpenter.sh NodePool; without it the sample's default pool is assumed (no limits,
    /// budget 100 %).
    pub nodepool: Option<Value>,
    /// The sample's deploy script: (path, text).
    pub deploy_script: Option<(String, String)>,
    /// The shell files the deploy script sources (the sample's environmentVariables.sh), in
    /// order: (path, text).
    pub sourced_scripts: Vec<(String, String)>,
    /// Variables the script may take from its environment, as the configuration resolves them:
    /// (name, value, where it comes from).
    pub script_variables: Vec<(String, String, String)>,
    /// The day support dates are judged on.
    pub today: time::Date,
    /// A burst of messages to estimate the drain for.
    pub burst: Option<u64>,
    /// How long draining `burst` may take.
    pub drain_target: Option<Duration>,
    /// The target's latencies and the consumer's rate.
    pub timing: TargetTiming,
}

impl CheckInputs {
    /// Inputs with only a ScaledObject and the default (AKS NAP) timing.
    pub fn new(scaled_object: Value) -> Self {
        CheckInputs {
            scaled_object,
            nodepool: None,
            deploy_script: None,
            sourced_scripts: Vec::new(),
            script_variables: Vec::new(),
            today: time::OffsetDateTime::now_utc().date(),
            burst: None,
            drain_target: None,
            timing: TargetTiming::default(),
        }
    }
}

/// Why the configuration could not be checked. Each names the object and field (or file).
#[derive(Debug, thiserror::Error)]
pub enum FindingsError {
    /// The model cannot read the object.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A field is outside what the model (and the CRD) accepts.
    #[error("{object}: {field} is {value}, expected {expected}")]
    Field {
        object: String,
        field: String,
        value: String,
        expected: String,
    },
    /// A file or text holds no usable object.
    #[error("{source_name}: {reason}")]
    Document { source_name: String, reason: String },
    /// An embedded template could not be rendered.
    #[error("rendering the embedded template")]
    Template(#[from] crate::manifests::ManifestError),
}

/// What every finding's check sees: the inputs and the model built from them.
pub(crate) struct Checked<'a> {
    pub inputs: &'a CheckInputs,
    pub model: Model,
    /// `ScaledObject <name>`.
    pub scaled_object: String,
    /// `NodePool <name>`.
    pub nodepool: String,
    /// Index of the azure-queue trigger in `spec.triggers`.
    pub trigger: usize,
}

impl Checked<'_> {
    /// `ScaledObject <name>: <field>`.
    pub fn so_subject(&self, field: &str) -> String {
        format!("{}: {field}", self.scaled_object)
    }

    /// `ScaledObject <name>: spec.triggers[i].metadata.<field>`.
    pub fn trigger_subject(&self, field: &str) -> String {
        format!(
            "{}: spec.triggers[{}].metadata.{field}",
            self.scaled_object, self.trigger
        )
    }

    /// `NodePool <name>: <field>`.
    pub fn pool_subject(&self, field: &str) -> String {
        format!("{}: {field}", self.nodepool)
    }

    /// The burst to show numbers for: the given one, else one that brings the ScaledObject
    /// to maxReplicaCount.
    pub fn burst_or_full(&self) -> u64 {
        self.inputs
            .burst
            .unwrap_or_else(|| full_burst(&self.model.scaling))
    }
}

/// The burst the checks assume without `--burst`: the smallest that asks for every replica
/// (maxReplicaCount x queueLength), and at least one above activationQueueLength.
pub fn full_burst(s: &ScalingSettings) -> u64 {
    s.max_replicas
        .max(1)
        .saturating_mul(s.queue_length)
        .max(s.activation.saturating_add(1))
}

/// A ScaledObject's scaling settings, checked as `check` checks them (an azure-queue trigger,
/// whole numbers within the CRD's int32 fields and the model's range, min at most max).
pub fn scaling_settings(so: &Value) -> Result<ScalingSettings, FindingsError> {
    let scaling = ScalingSettings::from_scaled_object(so)?;
    validate::scaling(&scaled_object_name(so), &scaling)?;
    Ok(scaling)
}

fn scaled_object_name(so: &Value) -> String {
    format!(
        "ScaledObject {}",
        so.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
    )
}

/// Checks the configuration in `inputs`; the findings come Risk first, then Warning, then Info.
pub fn check(inputs: &CheckInputs) -> Result<Vec<Finding>, FindingsError> {
    validate::inputs(inputs)?;
    let so = &inputs.scaled_object;
    let scaled_object = scaled_object_name(so);
    let scaling = scaling_settings(so)?;
    let pool = inputs
        .nodepool
        .as_ref()
        .map(NodePoolSettings::from_nodepool)
        .unwrap_or_default();
    let trigger = so
        .pointer("/spec/triggers")
        .and_then(Value::as_array)
        .and_then(|t| {
            t.iter()
                .position(|t| t.get("type").and_then(Value::as_str) == Some("azure-queue"))
        })
        .unwrap_or(0);
    let checked = Checked {
        inputs,
        nodepool: format!("NodePool {}", pool.name),
        model: Model::new(scaling, pool, inputs.timing.clone()),
        scaled_object,
        trigger,
    };
    let mut findings: Vec<Finding> = [
        scaling::stranded_tail(&checked),
        drain::drain_target(&checked),
        scaling::cooldown_shorter_than_polling(&checked),
        nodepool::nodepool_limit(&checked),
        script_findings::role_assignment_scope(&checked),
        kubernetes_version::kubernetes_version_unsupported(&checked),
        scaling::legacy_hpa_ramp(&checked),
        scaling::slow_activation(&checked),
        nodepool::serial_node_removal(&checked),
        nodepool::nodepool_v1beta1(&checked),
    ]
    .into_iter()
    .flatten()
    .collect();
    findings.sort_by_key(|f| f.severity);
    Ok(findings)
}

/// True when a finding is a Risk.
pub fn has_risk(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Risk)
}

/// A duration as findings show it: `45 s`, `657 s (10m 57s)`.
pub fn secs(d: Duration) -> String {
    let whole = d.as_secs_f64().round() as u64;
    if whole < 120 {
        format!("{whole} s")
    } else {
        format!("{whole} s ({}m {:02}s)", whole / 60, whole % 60)
    }
}

/// A ramp for a finding's text: `1 → 4 → 8 → 15`.
pub(crate) fn ramp_text(ramp: &[edw_model::RampStep]) -> String {
    ramp.iter()
        .map(|r| r.replicas.to_string())
        .collect::<Vec<_>>()
        .join(" → ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The walkthrough's ScaledObject (the embedded template's values).
    pub fn walkthrough() -> Value {
        serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "aws2az-queue-scaleobj", "namespace": "aqs-demo"},
            "spec": {
                "scaleTargetRef": {"name": "aqs-app"},
                "minReplicaCount": 0,
                "maxReplicaCount": 15,
                "pollingInterval": 30,
                "cooldownPeriod": 10,
                "triggers": [{
                    "type": "azure-queue",
                    "metadata": {
                        "queueName": "aws2azmsgs",
                        "queueLength": "5",
                        "activationQueueLength": "20"
                    }
                }]
            }
        })
    }

    /// A NodePool with `spec` merged into the sample's default.
    pub fn pool(spec: Value) -> Value {
        let mut pool = serde_json::json!({
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": "default"},
            "spec": {
                "disruption": {"budgets": [{"nodes": "100%"}]},
                "template": {"spec": {"requirements": [
                    {"key": "karpenter.azure.com/sku-family", "operator": "In", "values": ["D"]}
                ]}}
            }
        });
        if let (Some(base), Some(extra)) = (pool["spec"].as_object_mut(), spec.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        pool
    }

    pub fn find(inputs: &CheckInputs, id: &str) -> Option<Finding> {
        check(inputs)
            .expect("check")
            .into_iter()
            .find(|f| f.id == id)
    }

    #[test]
    fn the_walkthrough_has_its_known_findings_risk_first() {
        let inputs = CheckInputs::new(walkthrough());
        let findings = check(&inputs).unwrap();
        let ids: Vec<_> = findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "stranded-tail",
                "cooldown-shorter-than-polling",
                "legacy-hpa-ramp",
                "slow-activation"
            ]
        );
        assert!(has_risk(&findings));
        for f in &findings {
            assert!(!f.message.is_empty() && !f.consequence.is_empty() && !f.fix.is_empty());
            assert!(f.id.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        }
    }

    #[test]
    fn the_fixed_walkthrough_has_no_risk_or_warning() {
        let mut so = walkthrough();
        so["spec"]["triggers"][0]["metadata"]["activationQueueLength"] = "0".into();
        so["spec"]["cooldownPeriod"] = 300.into();
        let findings = check(&CheckInputs::new(so)).unwrap();
        assert!(
            findings.iter().all(|f| f.severity == Severity::Info),
            "{findings:?}"
        );
    }

    #[test]
    fn not_a_scaled_object_is_an_error_naming_it() {
        let mut so = walkthrough();
        so["kind"] = "Deployment".into();
        let err = check(&CheckInputs::new(so)).unwrap_err().to_string();
        assert!(err.contains("kind") && err.contains("Deployment"), "{err}");
        let mut so = walkthrough();
        so["spec"]["maxReplicaCount"] = "many".into();
        let err = check(&CheckInputs::new(so)).unwrap_err().to_string();
        assert!(
            err.contains("ScaledObject aws2az-queue-scaleobj") && err.contains("maxReplicaCount"),
            "{err}"
        );
    }

    #[test]
    fn durations_and_ramps_for_people() {
        assert_eq!(secs(Duration::from_secs(45)), "45 s");
        assert_eq!(secs(Duration::from_secs(657)), "657 s (10m 57s)");
        let model = Model::new(
            ScalingSettings::default(),
            NodePoolSettings::default(),
            TargetTiming::default(),
        );
        assert_eq!(ramp_text(&model.ramp(1, 15)), "1 → 4 → 8 → 15");
    }
}
