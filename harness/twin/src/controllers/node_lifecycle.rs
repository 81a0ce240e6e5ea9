//! The node lifecycle controller's part the twin needs: a cordoned node (`spec.unschedulable`,
//! what `kubectl cordon` and `drain` set) gets the `node.kubernetes.io/unschedulable:NoSchedule`
//! taint, and loses it when uncordoned, as kube-controller-manager's TaintNodesByCondition
//! does; Karpenter then counts no room on it, as on AKS.

use serde_json::{json, Value};

use crate::engine::Engine;
use crate::store::{EventType, WatchEvent};

/// The taint a cordoned node carries.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

fn has_taint(node: &Value) -> bool {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| t["key"] == UNSCHEDULABLE_TAINT))
}

/// Keeps the taint in step with `spec.unschedulable`.
pub fn on_node(engine: &mut Engine, change: &WatchEvent) {
    if change.event_type == EventType::Deleted {
        return;
    }
    let node = &change.object;
    let cordoned = node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true);
    if cordoned == has_taint(node) {
        return;
    }
    let now = engine.clock().wall_rfc3339();
    // A node deleted meanwhile needs no taint.
    let _ = engine.store.update(&change.key, |node| {
        let cordoned = node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true);
        let taints = node["spec"]
            .as_object_mut()
            .map(|spec| spec.entry("taints").or_insert_with(|| json!([])));
        let Some(Value::Array(taints)) = taints else {
            return;
        };
        taints.retain(|t| t["key"] != UNSCHEDULABLE_TAINT);
        if cordoned {
            taints.push(
                json!({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": now}),
            );
        }
        if taints.is_empty() {
            if let Some(spec) = node["spec"].as_object_mut() {
                spec.remove("taints");
            }
        }
    });
}
