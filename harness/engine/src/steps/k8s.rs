//! Kubernetes helpers the steps share: a dynamic API for a CRD, polling until a condition holds, the run's running consumer pods.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::core::{ApiResource, GroupVersionKind};

use crate::target::TargetClock;

/// The API resource of a custom resource (`group/version`, `kind`, `plural`), for dynamic APIs.
pub fn dynamic(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Polls `probe` every 200 ms (real) until it returns `Ok`, or gives its last error.
/// Calls `probe` until it succeeds, for at most `within` of target time on `clock`; the error is
/// the last probe's.
pub async fn poll_until<T, F, Fut>(
    clock: &TargetClock,
    within: Duration,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = clock.now() + within;
    loop {
        match probe().await {
            Ok(value) => return Ok(value),
            Err(last) if clock.now() >= deadline => return Err(last),
            Err(_) => {
                let nap = clock.nap_before(deadline);
                tokio::time::sleep(nap.clamp(Duration::from_millis(1), Duration::from_millis(200)))
                    .await
            }
        }
    }
}

/// Running, not terminating consumer pods.
/// `selector` picks the run's consumer pods ([`Context::pod_selector`]): in a shared namespace
/// the team's own consumer pods are never counted, let alone killed.
pub async fn running_consumers(pods: &Api<Pod>, selector: &str) -> Result<Vec<String>, String> {
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| e.to_string())?;
    Ok(list
        .items
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect())
}
