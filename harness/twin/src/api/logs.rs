//! `GET pods/NAME/log`: the lines a pod's program wrote ([`crate::activity`]), with the query
//! parameters kubectl sends (`container`, `follow`, `tailLines`, `sinceSeconds`, `sinceTime`,
//! `timestamps`, `limitBytes`, `previous`) and kube-apiserver's answers for a pod that cannot
//! have logs (not found, not scheduled, not started, no previous container).

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{ApiBody, ApiServer, Req};
use crate::activity::LogLine;
use crate::store::{ApiError, ObjectKey};

/// How often a follow stream looks for new lines (real time).
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Which lines a request wants.
struct Selection {
    tail: Option<usize>,
    since: Option<OffsetDateTime>,
    timestamps: bool,
    limit_bytes: Option<usize>,
}

fn parse_param<T: std::str::FromStr>(req: &Req, name: &str) -> Result<Option<T>, ApiError> {
    req.param(name)
        .map(|v| {
            v.parse::<T>().map_err(|_| {
                ApiError::bad_request(format!("invalid value {v:?} for query parameter {name}"))
            })
        })
        .transpose()
}

impl Selection {
    fn of(req: &Req, now: OffsetDateTime) -> Result<Selection, ApiError> {
        let since_seconds: Option<i64> = parse_param(req, "sinceSeconds")?;
        if since_seconds.is_some_and(|s| s < 1) {
            return Err(ApiError::invalid(
                "PodLogOptions",
                "",
                vec![("sinceSeconds".into(), "must be greater than 0".into())],
            ));
        }
        let since_time = req
            .param("sinceTime")
            .map(|t| {
                OffsetDateTime::parse(t, &Rfc3339).map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid value {t:?} for query parameter sinceTime"
                    ))
                })
            })
            .transpose()?;
        let tail: Option<i64> = parse_param(req, "tailLines")?;
        Ok(Selection {
            // A negative tailLines means all lines, as kubectl's -1 default.
            tail: tail.filter(|t| *t >= 0).map(|t| t as usize),
            since: since_seconds
                .map(|s| now - time::Duration::seconds(s))
                .or(since_time),
            timestamps: req.flag("timestamps"),
            limit_bytes: parse_param(req, "limitBytes")?,
        })
    }

    fn render(&self, line: &LogLine) -> String {
        if self.timestamps {
            let stamp = line
                .at
                .format(&Rfc3339)
                .unwrap_or_else(|_| line.at.unix_timestamp().to_string());
            format!("{stamp} {}\n", line.text)
        } else {
            format!("{}\n", line.text)
        }
    }

    /// The text of the first answer: the selected lines, tail and byte limit applied.
    fn first(&self, lines: &[LogLine]) -> String {
        let selected: Vec<&LogLine> = lines
            .iter()
            .filter(|l| self.since.is_none_or(|since| l.at >= since))
            .collect();
        let start = self.tail.map_or(0, |t| selected.len().saturating_sub(t));
        let mut text: String = selected[start..].iter().map(|l| self.render(l)).collect();
        if let Some(limit) = self.limit_bytes {
            let mut cut = limit.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        text
    }
}

fn containers(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The container the request means, or kube-apiserver's 400.
fn container_of(pod: &Value, pod_name: &str, req: &Req) -> Result<String, ApiError> {
    let names = containers(pod);
    match req.param("container").filter(|c| !c.is_empty()) {
        Some(c) if names.iter().any(|n| n == c) => Ok(c.to_owned()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        None if names.len() == 1 => Ok(names[0].clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// Answers a log request for pod `name`.
pub(crate) fn serve(
    api: &ApiServer,
    namespace: &str,
    name: &str,
    req: &Req,
) -> Result<Response<ApiBody>, ApiError> {
    let key = ObjectKey::new("pods", namespace, name);
    let pod = api
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found("pods", name))?;
    let container = container_of(&pod, name, req)?;
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    if req.flag("previous") {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let status = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(container.as_str()));
    let started = status.is_some_and(|s| {
        s.pointer("/state/running").is_some() || s.pointer("/state/terminated").is_some()
    });
    if !started {
        // The kubelet's waiting reason (e.g. InvalidImageName), as the API server says it.
        let reason = status
            .and_then(|s| s.pointer("/state/waiting/reason"))
            .and_then(Value::as_str)
            .unwrap_or("ContainerCreating");
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let activity = api.store.activity().clone();
    let selection = Selection::of(req, api.store.clock().wall())?;
    let (lines, mut written) = activity.lines_after(&key, 0);
    let first = selection.first(&lines);
    if !req.flag("follow") {
        return Ok(text_response(ApiBody::full(first)));
    }
    // Follow: what is there, then each new line until the pod is gone or the client leaves.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(64);
    let store = api.store.clone();
    let uid = pod.pointer("/metadata/uid").cloned();
    tokio::spawn(async move {
        if !first.is_empty() && sender.send(Bytes::from(first)).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(FOLLOW_POLL).await;
            let (fresh, total) = activity.lines_after(&key, written);
            written = total;
            let text: String = fresh.iter().map(|l| selection.render(l)).collect();
            if !text.is_empty() && sender.send(Bytes::from(text)).await.is_err() {
                return;
            }
            let alive = store
                .get(&key)
                .is_some_and(|p| p.pointer("/metadata/uid").cloned() == uid);
            if !alive || sender.is_closed() {
                return;
            }
        }
    });
    Ok(text_response(ApiBody::stream(receiver)))
}

fn text_response(body: ApiBody) -> Response<ApiBody> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(second: i64, text: &str) -> LogLine {
        LogLine {
            at: time::macros::datetime!(2026-01-01 00:00 UTC) + time::Duration::seconds(second),
            text: text.to_owned(),
        }
    }

    fn selection(tail: Option<usize>, since: Option<i64>, timestamps: bool) -> Selection {
        Selection {
            tail,
            since: since.map(|s| line(s, "").at),
            timestamps,
            limit_bytes: None,
        }
    }

    fn served() -> ApiServer {
        let clock = std::sync::Arc::new(crate::clock::VirtualClock::new(
            time::macros::datetime!(2026-01-01 00:00 UTC),
        ));
        let api = ApiServer::new(
            crate::store::Store::new(clock, 5),
            std::sync::Arc::new(crate::resources::Registry::standard().unwrap()),
        );
        api.ensure_system_namespaces();
        api
    }

    async fn get(api: &ApiServer, path: &str) -> (u16, String) {
        let request = http::Request::builder()
            .uri(path)
            .body(Bytes::new())
            .unwrap();
        let response = api.handle(request).await;
        let code = response.status().as_u16();
        let body = response.body().as_bytes().unwrap_or_default().to_vec();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    fn pod(api: &ApiServer, name: &str, node: Option<&str>, running: bool) {
        let mut pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]}});
        if let Some(node) = node {
            pod["spec"]["nodeName"] = serde_json::json!(node);
        }
        if running {
            pod["status"] = serde_json::json!({"phase": "Running",
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]});
        }
        api.store().create("pods", "default", pod).unwrap();
    }

    #[tokio::test]
    async fn a_pod_that_never_ran_has_no_logs_and_says_why() {
        let api = served();
        pod(&api, "pending", None, false);
        pod(&api, "starting", Some("aks-default-abcde"), false);
        pod(&api, "running", Some("aks-default-abcde"), true);
        let base = "/api/v1/namespaces/default/pods";
        let (code, body) = get(&api, &format!("{base}/pending/log")).await;
        assert_eq!(code, 400, "{body}");
        assert!(
            body.contains("pod pending does not have a host assigned"),
            "{body}"
        );
        let (code, body) = get(&api, &format!("{base}/starting/log")).await;
        assert_eq!(code, 400, "{body}");
        assert!(body.contains("container \\\"app\\\" in pod \\\"starting\\\" is waiting to start: ContainerCreating"), "{body}");
        let (code, body) = get(&api, &format!("{base}/ghost/log")).await;
        assert_eq!(code, 404, "{body}");
        let (code, body) = get(&api, &format!("{base}/running/log?previous=true")).await;
        assert_eq!(code, 400, "{body}");
        assert!(body.contains("previous terminated container"), "{body}");
        let (code, body) = get(&api, &format!("{base}/running/log?container=sidecar")).await;
        assert_eq!(code, 400, "{body}");
        assert!(
            body.contains("container sidecar is not valid for pod running"),
            "{body}"
        );
        let (code, body) = get(&api, &format!("{base}/running/log?tailLines=x")).await;
        assert_eq!(code, 400, "{body}");

        // A running pod's lines, selected as asked.
        let key = ObjectKey::new("pods", "default", "running");
        api.store().activity().log(&key, "first");
        api.store().activity().log(&key, "second");
        let (code, body) = get(&api, &format!("{base}/running/log")).await;
        assert_eq!((code, body.as_str()), (200, "first\nsecond\n"));
        let (code, body) = get(
            &api,
            &format!("{base}/running/log?tailLines=1&timestamps=true"),
        )
        .await;
        assert_eq!(
            (code, body.as_str()),
            (200, "2026-01-01T00:00:00Z second\n")
        );
    }

    #[test]
    fn tail_since_and_timestamps_select_and_render_lines() {
        let lines = vec![line(0, "a"), line(10, "b"), line(20, "c")];
        assert_eq!(selection(None, None, false).first(&lines), "a\nb\nc\n");
        assert_eq!(selection(Some(2), None, false).first(&lines), "b\nc\n");
        assert_eq!(selection(Some(0), None, false).first(&lines), "");
        assert_eq!(selection(None, Some(10), false).first(&lines), "b\nc\n");
        assert_eq!(
            selection(Some(1), None, true).first(&lines),
            "2026-01-01T00:00:20Z c\n"
        );
        let limited = Selection {
            limit_bytes: Some(3),
            ..selection(None, None, false)
        };
        assert_eq!(limited.first(&lines), "a\nb");
    }
}
