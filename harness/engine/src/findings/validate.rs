//! Bounds on the inputs, checked before the model sees them: the CRDs' int32 fields, counts
//! and latencies the model's arithmetic can hold, so that no input makes a check panic.

use std::time::Duration;

use serde_json::Value;

use super::{CheckInputs, FindingsError};
use edw_model::ScalingSettings;

/// The CRDs declare replica counts, pollingInterval and cooldownPeriod as int32.
const INT32_MAX: u64 = i32::MAX as u64;
/// Queue lengths, activation thresholds and bursts the model is asked about.
const MAX_MESSAGES: u64 = 1_000_000_000;
/// The largest vCPU count a NodePool requirement may name.
const MAX_VCPUS: u64 = 4096;
/// The longest latency a target's timing may have.
const MAX_LATENCY: Duration = Duration::from_secs(24 * 3600);

fn field(object: &str, field: &str, value: impl ToString, expected: &str) -> FindingsError {
    FindingsError::Field {
        object: object.to_owned(),
        field: field.to_owned(),
        value: value.to_string(),
        expected: expected.to_owned(),
    }
}

fn object_name(object: &Value, kind: &str) -> String {
    format!(
        "{kind} {}",
        object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
    )
}

fn kind(object: &Value, expected: &str) -> Result<(), FindingsError> {
    let kind = object.get("kind").and_then(Value::as_str);
    if kind == Some(expected) {
        return Ok(());
    }
    Err(field(
        &object_name(object, kind.unwrap_or("object")),
        "kind",
        kind.map_or_else(|| "missing".to_owned(), |k| format!("{k:?}")),
        expected,
    ))
}

/// Kinds, the NodePool's vCPU requirements, the burst and the timing.
pub(super) fn inputs(inputs: &CheckInputs) -> Result<(), FindingsError> {
    kind(&inputs.scaled_object, "ScaledObject")?;
    if let Some(pool) = &inputs.nodepool {
        kind(pool, "NodePool")?;
        let name = object_name(pool, "NodePool");
        let requirements = pool
            .pointer("/spec/template/spec/requirements")
            .and_then(Value::as_array);
        for (i, requirement) in requirements.into_iter().flatten().enumerate() {
            if requirement.get("key").and_then(Value::as_str) != Some("karpenter.azure.com/sku-cpu")
            {
                continue;
            }
            let values = requirement.get("values").and_then(Value::as_array);
            for value in values.into_iter().flatten() {
                let parsed = value.as_str().and_then(|s| s.parse::<u64>().ok());
                if parsed.is_some_and(|v| v > MAX_VCPUS) {
                    return Err(field(
                        &name,
                        &format!("spec.template.spec.requirements[{i}].values"),
                        value,
                        &format!("vCPU counts up to {MAX_VCPUS}"),
                    ));
                }
            }
        }
    }
    if let Some(burst) = inputs.burst.filter(|b| *b > MAX_MESSAGES) {
        return Err(field(
            "the check",
            "burst",
            burst,
            &format!("at most {MAX_MESSAGES} messages"),
        ));
    }
    let t = &inputs.timing;
    for (name, d) in [
        ("hpa_sync", t.hpa_sync),
        ("node_ready", t.node_ready),
        ("pod_start", t.pod_start),
        ("batch", t.batch),
        ("node_removal", t.node_removal),
    ] {
        if d > MAX_LATENCY {
            return Err(field(
                "the target timing",
                name,
                format!("{d:?}"),
                "at most 24 h",
            ));
        }
    }
    if !(t.per_pod_rate.is_finite() && (0.001..=1e6).contains(&t.per_pod_rate)) {
        return Err(field(
            "the target timing",
            "per_pod_rate",
            t.per_pod_rate,
            "0.001 to 1000000 messages per second",
        ));
    }
    if !(1..=1_000_000).contains(&t.pod_cpu_millis) {
        return Err(field(
            "the target timing",
            "pod_cpu_millis",
            t.pod_cpu_millis,
            "1 to 1000000",
        ));
    }
    if t.daemonset_cpu_millis > 1_000_000 {
        return Err(field(
            "the target timing",
            "daemonset_cpu_millis",
            t.daemonset_cpu_millis,
            "at most 1000000",
        ));
    }
    Ok(())
}

/// The ScaledObject's numbers within the CRD's int32 fields and the model's range.
pub(super) fn scaling(object: &str, s: &ScalingSettings) -> Result<(), FindingsError> {
    for (name, value) in [
        ("spec.minReplicaCount", s.min_replicas),
        ("spec.maxReplicaCount", s.max_replicas),
        ("spec.pollingInterval", s.polling.as_secs()),
        ("spec.cooldownPeriod", s.cooldown.as_secs()),
    ] {
        if value > INT32_MAX {
            return Err(field(object, name, value, "at most 2147483647 (int32)"));
        }
    }
    for (name, value) in [
        ("queueLength", s.queue_length),
        ("activationQueueLength", s.activation),
    ] {
        if value > MAX_MESSAGES {
            return Err(field(
                object,
                name,
                value,
                &format!("at most {MAX_MESSAGES}"),
            ));
        }
    }
    if s.min_replicas > s.max_replicas {
        return Err(field(
            object,
            "spec.minReplicaCount",
            s.min_replicas,
            &format!("at most maxReplicaCount ({})", s.max_replicas),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::tests::{pool, walkthrough};
    use super::super::{check, CheckInputs};

    #[test]
    fn out_of_range_fields_are_errors_naming_object_and_field() {
        let mut so = walkthrough();
        so["spec"]["minReplicaCount"] = 20.into();
        let err = check(&CheckInputs::new(so)).unwrap_err().to_string();
        assert!(
            err.contains("ScaledObject aws2az-queue-scaleobj: spec.minReplicaCount is 20"),
            "{err}"
        );
        let mut inputs = CheckInputs::new(walkthrough());
        inputs.nodepool = Some(pool(
            serde_json::json!({"template": {"spec": {"requirements": [
                {"key": "karpenter.azure.com/sku-cpu", "operator": "Gt", "values": ["18446744073709551615"]}
            ]}}}),
        ));
        let err = check(&inputs).unwrap_err().to_string();
        assert!(
            err.contains("NodePool default: spec.template.spec.requirements[0].values"),
            "{err}"
        );
        let mut inputs = CheckInputs::new(walkthrough());
        inputs.nodepool = Some(walkthrough());
        let err = check(&inputs).unwrap_err().to_string();
        assert!(
            err.contains("kind is \"ScaledObject\", expected NodePool"),
            "{err}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// No numbers make a check panic: they are findings or errors.
        #[test]
        fn arbitrary_numbers_never_panic(
            min in prop_oneof![Just(0u64), Just(1), any::<u64>()],
            max in prop_oneof![Just(1u64), Just(15), any::<u64>()],
            polling in prop_oneof![Just(0u64), Just(30), any::<u64>()],
            cooldown in prop_oneof![Just(0u64), Just(10), any::<u64>()],
            queue in prop_oneof![Just(1u64), Just(5), any::<u64>()],
            activation in prop_oneof![Just(0u64), Just(20), any::<u64>()],
            burst in proptest::option::of(prop_oneof![Just(1000u64), any::<u64>()]),
            cpu in prop_oneof![Just("1".to_owned()), Just("1e30".to_owned()), "[0-9]{1,25}m?"],
            vcpus in prop_oneof![Just("2".to_owned()), "[0-9]{1,22}"],
            op in prop_oneof![Just("In"), Just("Gt"), Just("Lt")],
            budget in prop_oneof![Just("10%".to_owned()), "[0-9.e-]{0,6}%"],
            target in 0u64..100_000,
        ) {
            let mut so = walkthrough();
            so["spec"]["minReplicaCount"] = min.into();
            so["spec"]["maxReplicaCount"] = max.into();
            so["spec"]["pollingInterval"] = polling.into();
            so["spec"]["cooldownPeriod"] = cooldown.into();
            so["spec"]["triggers"][0]["metadata"]["queueLength"] = queue.to_string().into();
            so["spec"]["triggers"][0]["metadata"]["activationQueueLength"] = activation.to_string().into();
            let mut inputs = CheckInputs::new(so);
            inputs.nodepool = Some(pool(serde_json::json!({
                "limits": {"cpu": cpu},
                "disruption": {"budgets": [{"nodes": budget}]},
                "template": {"spec": {"requirements": [
                    {"key": "karpenter.azure.com/sku-cpu", "operator": op, "values": [vcpus]}
                ]}}
            })));
            inputs.burst = burst;
            inputs.drain_target = Some(std::time::Duration::from_secs(target));
            let _ = check(&inputs);
        }
    }
}
