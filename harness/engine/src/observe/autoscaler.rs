//! What the cluster's autoscaler sees, next to what the harness sees: the ScaledObject's Ready
//! and Active conditions, KEDA's `KEDAScalerFailed` events and the HPA's external metric, set
//! against the queue depth the harness reads. A cluster whose KEDA reads another account or
//! queue, or cannot authenticate, is named at once instead of after a scale-out timeout.

use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use crate::storage::Queue;
use crate::target::TargetClock;

/// The autoscaler's side, read once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AutoscalerView {
    /// The ScaledObject's Ready condition: (status, message).
    pub ready: Option<(String, String)>,
    /// The ScaledObject's Active condition: (status, message).
    pub active: Option<(String, String)>,
    /// The newest `KEDAScalerFailed` event's message on the ScaledObject.
    pub scaler_failed: Option<String>,
    /// The HPA's current external metric value, as the HPA reports it.
    pub hpa_metric: Option<String>,
}

impl AutoscalerView {
    /// KEDA says it cannot read the trigger's queue now (Ready=False), with the newest
    /// `KEDAScalerFailed` event's text as the reason when there is one. An event alone is
    /// history (events stay after KEDA recovers), so it does not count by itself.
    pub fn scaler_error(&self) -> Option<String> {
        let (status, message) = self.ready.as_ref()?;
        if status != "False" {
            return None;
        }
        Some(match &self.scaler_failed {
            Some(event) => {
                format!("ScaledObject Ready=False: {message}; KEDA event KEDAScalerFailed: {event}")
            }
            None => format!("ScaledObject Ready=False: {message}"),
        })
    }

    /// The autoscaler sees nothing to scale for: not Active, and the HPA's metric (if any) 0.
    pub fn sees_nothing(&self) -> bool {
        let active = self.active.as_ref().is_some_and(|(s, _)| s == "True");
        let metric_zero = self
            .hpa_metric
            .as_deref()
            .is_none_or(|m| m == "0" || m.starts_with("0m") || m == "0.0");
        !active && metric_zero
    }

    /// One line: what the cluster reports.
    pub fn describe(&self) -> String {
        let condition = |c: &Option<(String, String)>| {
            c.as_ref().map_or("not reported".to_owned(), |(s, m)| {
                if m.is_empty() {
                    s.clone()
                } else {
                    format!("{s} ({m})")
                }
            })
        };
        format!(
            "ScaledObject Ready={}, Active={}; HPA external metric {}{}",
            condition(&self.ready),
            condition(&self.active),
            self.hpa_metric.as_deref().unwrap_or("not reported"),
            self.scaler_failed
                .as_ref()
                .map(|m| format!("; KEDAScalerFailed: {m}"))
                .unwrap_or_default()
        )
    }
}

/// Reads the autoscaler's view of ScaledObject `scaled_object` and HPA `hpa` in `namespace`.
pub async fn read_view(
    client: &kube::Client,
    namespace: &str,
    scaled_object: &str,
    hpa: &str,
) -> AutoscalerView {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    );
    let objects: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let mut view = AutoscalerView::default();
    if let Ok(so) = objects.get(scaled_object).await {
        let conditions = so
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array);
        let find = |kind: &str| {
            conditions?.iter().find(|c| c["type"] == kind).map(|c| {
                (
                    c["status"].as_str().unwrap_or("?").to_owned(),
                    c["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
        };
        view.ready = find("Ready");
        view.active = find("Active");
    }
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let selector = format!("involvedObject.name={scaled_object},reason=KEDAScalerFailed");
    if let Ok(list) = events.list(&ListParams::default().fields(&selector)).await {
        view.scaler_failed = list
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("KEDAScalerFailed"))
            .filter(|e| e.involved_object.name.as_deref() == Some(scaled_object))
            .max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0))
            .and_then(|e| e.message.clone());
    }
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    if let Ok(Some(found)) = hpas.get_opt(hpa).await {
        view.hpa_metric = found
            .status
            .and_then(|s| s.current_metrics)
            .and_then(|metrics| {
                metrics.into_iter().find_map(|m| {
                    let current = m.external?.current;
                    current.average_value.or(current.value).map(|q| q.0)
                })
            });
    }
    view
}

/// What the guard found: a message naming both sides, and details.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub message: String,
    pub details: Vec<String>,
}

/// Where the harness and the cluster should agree.
pub struct Agreement {
    pub client: kube::Client,
    pub namespace: String,
    pub scaled_object: String,
    pub hpa: String,
    /// The queue as the harness reads it.
    pub queue: Queue,
    /// `activationQueueLength`: above it KEDA must be active.
    pub activation: u64,
    /// KEDA's polling interval: a scaler error that lasts two of them is not a passing one.
    pub polling: Duration,
    /// How long the cluster may take to see a backlog: polls and the HPA's sync.
    pub grace: Duration,
    pub clock: TargetClock,
}

/// Watches until the cluster's autoscaler disagrees with the harness's queue depth, and then
/// returns what both saw; runs forever while they agree (race it against the wait it guards).
/// A scaler error while the harness sees messages is reported at once; a cluster that sees
/// nothing while the harness sees more than `activation` messages, after `grace`.
pub async fn disagreement(agreement: Agreement) -> Mismatch {
    let started = agreement.clock.now();
    let mut failing_since: Option<Duration> = None;
    loop {
        agreement.clock.sleep(Duration::from_secs(5)).await;
        // The harness must read the queue itself for a disagreement to mean anything.
        let Ok(depth) = agreement.queue.approximate_count().await else {
            continue;
        };
        let view = read_view(
            &agreement.client,
            &agreement.namespace,
            &agreement.scaled_object,
            &agreement.hpa,
        )
        .await;
        let now = agreement.clock.now();
        let waited = now.saturating_sub(started);
        let harness = format!(
            "the harness reads queue {} ({depth} messages)",
            agreement.queue.name()
        );
        let details = vec![
            format!("cluster: {}", view.describe()),
            format!("harness: {harness}"),
            format!(
                "after {:.0} s of target time (the cluster may take {} s to see a backlog: polls and the HPA's sync)",
                waited.as_secs_f64(),
                agreement.grace.as_secs()
            ),
        ];
        match view.scaler_error() {
            // Two polling intervals of errors (three failed polls in a row): not a passing
            // one, such as a throttled request.
            Some(error) => {
                let since = *failing_since.get_or_insert(now);
                if now.saturating_sub(since) >= agreement.polling * 2 {
                    return Mismatch {
                        message: format!(
                            "the cluster's KEDA cannot read the queue ({error}) while {harness}: the ScaledObject or its TriggerAuthentication points at another storage account or queue, or cannot authenticate"
                        ),
                        details,
                    };
                }
            }
            None => failing_since = None,
        }
        if depth > agreement.activation && waited > agreement.grace && view.sees_nothing() {
            return Mismatch {
                message: format!(
                    "the cluster's autoscaler sees nothing to scale ({}) while {harness}, above activationQueueLength {}: the cluster reads another storage account or queue than the harness, or cannot authenticate",
                    view.describe(),
                    agreement.activation
                ),
                details,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(status: &str, message: &str) -> Option<(String, String)> {
        Some((status.to_owned(), message.to_owned()))
    }

    #[test]
    fn a_false_ready_is_an_error_and_an_old_event_alone_is_not() {
        let failed = AutoscalerView {
            ready: condition(
                "False",
                "Triggers defined in ScaledObject are not working correctly",
            ),
            scaler_failed: Some("QueueNotFound".into()),
            ..AutoscalerView::default()
        };
        assert!(failed.scaler_error().unwrap().contains("QueueNotFound"));
        let recovered = AutoscalerView {
            ready: condition("True", ""),
            scaler_failed: Some("QueueNotFound".into()),
            ..AutoscalerView::default()
        };
        assert_eq!(recovered.scaler_error(), None);
        let not_ready = AutoscalerView {
            ready: condition(
                "False",
                "Triggers defined in ScaledObject are not working correctly",
            ),
            ..AutoscalerView::default()
        };
        assert!(not_ready.scaler_error().unwrap().contains("Ready=False"));
        let fine = AutoscalerView {
            ready: condition("True", ""),
            ..AutoscalerView::default()
        };
        assert_eq!(fine.scaler_error(), None);
    }

    #[test]
    fn an_active_scaler_or_a_nonzero_metric_sees_something() {
        let idle = AutoscalerView {
            active: condition("False", "not active"),
            hpa_metric: Some("0".into()),
            ..AutoscalerView::default()
        };
        assert!(idle.sees_nothing());
        let active = AutoscalerView {
            active: condition("True", ""),
            ..AutoscalerView::default()
        };
        assert!(!active.sees_nothing());
        let metric = AutoscalerView {
            active: condition("False", ""),
            hpa_metric: Some("66666m".into()),
            ..AutoscalerView::default()
        };
        assert!(!metric.sees_nothing());
    }
}
