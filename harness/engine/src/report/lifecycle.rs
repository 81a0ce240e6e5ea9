//! A run's lifecycle as pretty JSON (`lifecycle.json`): when each consumer pod and NodeClaim
//! passed each stage, and every replica change, in the model's format
//! ([`edw_model::lifecycle::Lifecycle`]), redacted like the timeline.

use serde_json::{json, Value};

use super::clean;
use super::timeline::redact_value;
use edw_model::report::ScenarioReport;

/// The report's lifecycle as pretty JSON, every string (keys included) redacted; `None` when
/// the run recorded none. It reads back as a [`edw_model::lifecycle::Lifecycle`].
/// With the drain rate per running pod when the run measured it (`drain`, for
/// `edw twin calibrate`'s `messages_per_pod_second`).
pub fn lifecycle_json(report: &ScenarioReport) -> Option<String> {
    let mut lifecycle = report.lifecycle.clone()?;
    if let Ok(rate) = super::latency::drain_rate(report) {
        lifecycle.drain = Some(edw_model::lifecycle::DrainMeasurement {
            messages: rate.messages,
            counted: rate.counted.to_owned(),
            pod_seconds: rate.pod_seconds,
            from: rate.from,
            until: rate.until,
        });
    }
    let value = redact_value(serde_json::to_value(&lifecycle).unwrap_or(Value::Null));
    Some(
        serde_json::to_string_pretty(&value).unwrap_or_else(|e| {
            // Serializing a `Value` does not fail; keep the output JSON if it ever does.
            json!({ "error": clean(&e.to_string()) }).to_string()
        }) + "\n",
    )
}
