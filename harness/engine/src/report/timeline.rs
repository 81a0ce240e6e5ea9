//! The timeline of a run as pretty JSON: scenario, target, phases and observations.

use serde_json::{json, Map, Value};

use super::{clean, load_start_offset};
use edw_model::report::{ScenarioReport, STEP_CLOCK};

/// Pretty JSON with the scenario, its target, whether it passed, the phases (seconds after
/// the load started, `null` when a phase did not happen), the load start on the timeline's
/// clock, the clocks every figure is measured on (`clock`), the timeline itself (each
/// observation with its `total_nodes`) and, with Karpenter, the nodes by size with their
/// node-hours and estimated cost (`cost`). Every string, keys included, is redacted.
pub fn timeline_json(report: &ScenarioReport) -> String {
    let started_at = report
        .started_at
        .format(&time::format_description::well_known::Rfc3339)
        .ok();
    let timeline: Vec<Value> = report
        .timeline
        .iter()
        .map(|o| {
            let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut v {
                map.insert("total_nodes".into(), json!(o.total_nodes()));
            }
            v
        })
        .collect();
    let value = json!({
        "scenario": report.scenario,
        "target": {
            "name": report.target.name,
            "description": report.target.description,
            "simulated": report.target.simulated,
        },
        "started_at": started_at,
        "duration_seconds": report.duration.as_secs_f64(),
        "clock": {
            "steps_and_duration": STEP_CLOCK,
            "timeline_phases_and_node_hours": report.target.clock.describe(),
            "kind": report.target.clock,
        },
        "passed": report.passed(),
        "load_start_offset_seconds": load_start_offset(report),
        "phases": report.phases.iter().map(|p| json!({
            "name": p.name,
            "after_load_seconds": p.after_load,
        })).collect::<Vec<_>>(),
        "timeline": timeline,
        "cost": report.cost,
        "prediction": report.prediction,
    });
    let value = redact_value(value);
    serde_json::to_string_pretty(&value).unwrap_or_else(|e| {
        // Serializing a `Value` does not fail; keep the output JSON if it ever does.
        json!({ "error": clean(&e.to_string()) }).to_string()
    }) + "\n"
}

/// `value` with every string and every key passed through [`clean`].
pub(super) fn redact_value(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(clean(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_value).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (clean(&k), redact_value(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other,
    }
}
