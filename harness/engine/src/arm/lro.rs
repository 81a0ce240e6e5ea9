//! Long-running operations: after a 201/202, poll `Azure-AsyncOperation` (its body's `status`)
//! or else `Location` (202 = still running) until `Succeeded`, `Failed` or `Canceled`, within
//! the client's deadline, honouring `Retry-After` between polls.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

use super::client::{ensure_success, parse_json, retry_after, ArmClient, ArmResponse};
use super::error::ArmError;
use crate::secrets::redact;

const ASYNC_OPERATION: &str = "azure-asyncoperation";
const LOCATION: &str = "location";

/// True when the response started a long-running operation ARM lets us follow.
pub(crate) fn has_operation(headers: &HeaderMap) -> bool {
    headers.contains_key(ASYNC_OPERATION) || headers.contains_key(LOCATION)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// Waits for the operation `initial` started on `resource_id`.
pub(crate) async fn wait(
    client: &ArmClient,
    resource_id: &str,
    initial: &ArmResponse,
) -> Result<(), ArmError> {
    let settings = client.settings().clone();
    let started = tokio::time::Instant::now();
    let deadline = started + settings.operation_deadline;
    let (url, async_op) = match (
        header(&initial.headers, ASYNC_OPERATION),
        header(&initial.headers, LOCATION),
    ) {
        (Some(op), _) => (client.same_origin(resource_id, op)?, true),
        (None, Some(loc)) => (client.same_origin(resource_id, loc)?, false),
        (None, None) => return Ok(()),
    };
    let mut delay = pause(
        &initial.headers,
        settings.poll_interval,
        settings.max_retry_after,
    );
    let mut last = format!("HTTP {}", initial.status);
    loop {
        if tokio::time::Instant::now() + delay > deadline {
            return Err(ArmError::Timeout {
                resource: redact(resource_id),
                waited: started.elapsed(),
                last,
            });
        }
        tokio::time::sleep(delay).await;
        let response = client
            .send(Method::GET, url.clone(), None, resource_id)
            .await?;
        let response = ensure_success(resource_id, response)?;
        delay = pause(
            &response.headers,
            settings.poll_interval,
            settings.max_retry_after,
        );
        if async_op {
            let body = parse_json(resource_id, &response)?;
            let status = body.get("status").and_then(Value::as_str).ok_or_else(|| {
                ArmError::malformed(
                    resource_id,
                    response.status,
                    "operation status has no `status`",
                )
            })?;
            tracing::debug!(resource = %redact(resource_id), status, "ARM operation polled");
            if status.eq_ignore_ascii_case("Succeeded") {
                return Ok(());
            }
            if status.eq_ignore_ascii_case("Failed") || status.eq_ignore_ascii_case("Canceled") {
                let field = |name: &str| {
                    body.pointer(&format!("/error/{name}"))
                        .and_then(Value::as_str)
                        .map(redact)
                        .unwrap_or_else(|| "unknown".to_owned())
                };
                return Err(ArmError::OperationFailed {
                    resource: redact(resource_id),
                    status: status.to_owned(),
                    code: field("code"),
                    message: field("message"),
                });
            }
            last = format!("status {}", redact(status));
        } else {
            if response.status != 202 {
                return Ok(());
            }
            last = "HTTP 202".to_owned();
        }
    }
}

fn pause(headers: &HeaderMap, default: Duration, max: Duration) -> Duration {
    retry_after(headers).unwrap_or(default).min(max)
}
