//! The diagnostic bundle captured after a failure and before cleanup: recent events, pending
//! pods with their scheduling reasons, ScaledObject and HPA conditions, NodePools and
//! NodeClaims, and the queue depth.

use std::fmt::Write;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::Subject;

fn dynamic(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn conditions(object: &Value) -> String {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    format!(
                        "{}={} ({}{})",
                        c["type"].as_str().unwrap_or("?"),
                        c["status"].as_str().unwrap_or("?"),
                        c["reason"].as_str().unwrap_or(""),
                        c["message"]
                            .as_str()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_else(|| "no conditions".to_owned())
}

/// Captures the bundle as text (secrets redacted).
pub async fn capture(client: &kube::Client, subject: &Subject) -> String {
    let mut out = String::new();
    if let Some(queue) = &subject.queue {
        let depth = queue
            .approximate_count()
            .await
            .map_or_else(|e| format!("unreadable ({e})"), |d| d.to_string());
        let _ = writeln!(out, "queue {}: approximate depth {depth}", queue.name());
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &subject.namespace);
    match pods.list(&ListParams::default()).await {
        Ok(list) => {
            let pending: Vec<_> = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"))
                .collect();
            let _ = writeln!(
                out,
                "pods in {}: {} ({} pending)",
                subject.namespace,
                list.items.len(),
                pending.len()
            );
            for pod in pending.iter().take(10) {
                let reason = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
                    .map(|c| {
                        format!(
                            "{} {}",
                            c.reason.clone().unwrap_or_default(),
                            c.message.clone().unwrap_or_default()
                        )
                    })
                    .unwrap_or_else(|| "not yet considered by the scheduler".to_owned());
                let _ = writeln!(
                    out,
                    "  pending {}: {reason}",
                    pod.metadata.name.clone().unwrap_or_default()
                );
            }
        }
        Err(e) => {
            let _ = writeln!(out, "pods: cannot list ({})", crate::error_chain::text(&e));
        }
    }
    let scaled: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &subject.namespace,
        &dynamic("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects"),
    );
    if let Ok(list) = scaled.list(&ListParams::default()).await {
        for so in list.items {
            let value = serde_json::to_value(&so).unwrap_or_default();
            let _ = writeln!(
                out,
                "ScaledObject {}: {}",
                so.metadata.name.unwrap_or_default(),
                conditions(&value)
            );
        }
    }
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &subject.namespace);
    if let Ok(list) = hpas.list(&ListParams::default()).await {
        for hpa in list.items {
            let value = serde_json::to_value(&hpa).unwrap_or_default();
            let _ = writeln!(
                out,
                "HPA {}: current {} desired {}; {}",
                hpa.metadata.name.clone().unwrap_or_default(),
                value
                    .pointer("/status/currentReplicas")
                    .unwrap_or(&Value::Null),
                value
                    .pointer("/status/desiredReplicas")
                    .unwrap_or(&Value::Null),
                conditions(&value)
            );
        }
    }
    if subject.karpenter {
        for (kind, plural) in [("NodePool", "nodepools"), ("NodeClaim", "nodeclaims")] {
            let api: Api<DynamicObject> =
                Api::all_with(client.clone(), &dynamic("karpenter.sh", "v1", kind, plural));
            if let Ok(list) = api.list(&ListParams::default()).await {
                for item in list.items {
                    let value = serde_json::to_value(&item).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{kind} {}: {}",
                        item.metadata.name.unwrap_or_default(),
                        conditions(&value)
                    );
                }
            }
        }
    }
    let events: Api<Event> = Api::namespaced(client.clone(), &subject.namespace);
    if let Ok(list) = events.list(&ListParams::default()).await {
        let mut items = list.items;
        items.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
        let skip = items.len().saturating_sub(25);
        let _ = writeln!(out, "recent events in {}:", subject.namespace);
        for e in items.iter().skip(skip) {
            let _ = writeln!(
                out,
                "  {} {} {}/{}: {}",
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.involved_object.kind.clone().unwrap_or_default(),
                e.involved_object.name.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            );
        }
    }
    crate::secrets::redact(&out)
}
