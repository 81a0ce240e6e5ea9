//! `metrics.k8s.io/v1beta1` as metrics-server's APIService serves it, from the twin's usage
//! model ([`crate::metrics`]): `nodes` (NodeMetrics, cluster-scoped) and `pods` (PodMetrics,
//! namespaced), get and list only, with `labelSelector` and `fieldSelector` applied to the
//! nodes and pods measured. Only Ready nodes and the Running pods on them have metrics; a GET
//! of any other is metrics-server's 404: `podmetrics.metrics.k8s.io "NS/NAME" not found`
//! (`nodemetrics.metrics.k8s.io "NAME" not found`), or `pods "NAME" not found` (`nodes …`)
//! when there is no such pod (node). Objects are never stored: each
//! answer is computed on the twin's clock (`timestamp` and `creationTimestamp` are now). As
//! metrics-server's, list items carry no `kind` or `apiVersion`.

use std::collections::{BTreeMap, BTreeSet};

use http::{Method, Response};
use serde_json::{json, Map, Value};

use super::{json_response, no_route, ApiBody, ApiServer, Req};
use crate::metrics::{self, Usage};
use crate::objects::{name, namespace};
use crate::store::{ApiError, FieldSelector, LabelSelector, ObjectKey};

/// The group metrics-server serves.
pub(crate) const GROUP: &str = "metrics.k8s.io";
/// Its one version.
pub(crate) const VERSION: &str = "v1beta1";

const NODE_METRICS: &str = "nodemetrics.metrics.k8s.io";
const POD_METRICS: &str = "podmetrics.metrics.k8s.io";

/// The group version's resources, as metrics-server's discovery lists them.
pub(crate) fn resources() -> Value {
    json!([
        {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
        {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
    ])
}

/// What a metrics request asks for.
enum Target<'a> {
    Nodes,
    Node(&'a str),
    Pods(Option<&'a str>),
    Pod(&'a str, &'a str),
}

fn target<'a>(rest: &[&'a str]) -> Result<Target<'a>, ApiError> {
    Ok(match rest {
        ["nodes"] => Target::Nodes,
        ["nodes", node] => Target::Node(node),
        ["pods"] => Target::Pods(None),
        ["namespaces", ns, "pods"] => Target::Pods(Some(ns)),
        ["namespaces", ns, "pods", pod] => Target::Pod(ns, pod),
        _ => return Err(no_route()),
    })
}

fn selectors(req: &Req) -> Result<(Option<LabelSelector>, Option<FieldSelector>), ApiError> {
    let param = |key: &str| req.param(key).filter(|s| !s.trim().is_empty());
    let labels = param("labelSelector")
        .map(LabelSelector::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = param("fieldSelector")
        .map(FieldSelector::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
    Ok((labels, fields))
}

/// Answers `/apis/metrics.k8s.io/v1beta1/{rest}`.
pub(crate) fn handle(
    api: &ApiServer,
    rest: &[&str],
    req: &Req,
) -> Result<Response<ApiBody>, ApiError> {
    let target = target(rest)?;
    if req.method != Method::GET || req.flag("watch") {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ));
    }
    let metrics = Metrics::now(api);
    let body = match target {
        Target::Nodes => {
            let (labels, fields) = selectors(req)?;
            let (nodes, _) = api
                .store
                .list("nodes", None, labels.as_ref(), fields.as_ref());
            let pods = metrics.pod_usage_by_node();
            let items = nodes
                .iter()
                .filter(|n| metrics::node_has_metrics(n))
                .map(|n| metrics.node(n, &pods))
                .collect();
            list("NodeMetricsList", items)
        }
        Target::Node(node_name) => {
            let node = api
                .store
                .get(&ObjectKey::new("nodes", "", node_name))
                .ok_or_else(|| ApiError::not_found("nodes", node_name))?;
            if !metrics::node_has_metrics(&node) {
                return Err(ApiError::not_found(NODE_METRICS, node_name));
            }
            typed(
                "NodeMetrics",
                metrics.node(&node, &metrics.pod_usage_by_node()),
            )
        }
        Target::Pods(ns) => {
            let (labels, fields) = selectors(req)?;
            let (pods, _) = api.store.list("pods", ns, labels.as_ref(), fields.as_ref());
            let items = pods
                .iter()
                .filter(|p| metrics.has_metrics(p))
                .map(|p| metrics.pod(p))
                .collect();
            list("PodMetricsList", items)
        }
        Target::Pod(ns, pod_name) => {
            let pod = api
                .store
                .get(&ObjectKey::new("pods", ns, pod_name))
                .ok_or_else(|| ApiError::not_found("pods", pod_name))?;
            if !metrics.has_metrics(&pod) {
                return Err(ApiError::not_found(
                    POD_METRICS,
                    &format!("{ns}/{pod_name}"),
                ));
            }
            typed("PodMetrics", metrics.pod(&pod))
        }
    };
    Ok(json_response(200, &body))
}

fn typed(kind: &str, mut item: Value) -> Value {
    let mut object = Map::new();
    object.insert("kind".into(), json!(kind));
    object.insert("apiVersion".into(), json!(format!("{GROUP}/{VERSION}")));
    if let Value::Object(fields) = item.take() {
        object.extend(fields);
    }
    Value::Object(object)
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": format!("{GROUP}/{VERSION}"), "metadata": {}, "items": items})
}

fn usage_json(usage: Usage) -> Value {
    json!({"cpu": usage.cpu_quantity(), "memory": usage.memory_quantity()})
}

/// One answer's view of the cluster: its Ready nodes and the time.
struct Metrics<'a> {
    api: &'a ApiServer,
    ready_nodes: BTreeSet<String>,
    now: String,
}

impl<'a> Metrics<'a> {
    fn now(api: &'a ApiServer) -> Metrics<'a> {
        let (nodes, _) = api.store.list("nodes", None, None, None);
        Metrics {
            api,
            ready_nodes: nodes
                .iter()
                .filter(|n| metrics::node_has_metrics(n))
                .map(|n| name(n).to_owned())
                .collect(),
            now: api.store.clock().wall_rfc3339(),
        }
    }

    fn has_metrics(&self, pod: &Value) -> bool {
        metrics::pod_has_metrics(pod, |node| self.ready_nodes.contains(node))
    }

    fn metadata(&self, object: &Value) -> Value {
        let mut metadata = json!({"name": name(object), "creationTimestamp": self.now});
        if !namespace(object).is_empty() {
            metadata["namespace"] = json!(namespace(object));
        }
        if let Some(labels) = object.pointer("/metadata/labels").filter(|l| l.is_object()) {
            metadata["labels"] = labels.clone();
        }
        metadata
    }

    fn window(&self, object: &Value) -> Value {
        json!(metrics::go_duration(metrics::window_of(name(object))))
    }

    fn pod(&self, pod: &Value) -> Value {
        let containers = metrics::pod_usage(pod, self.api.store.activity());
        json!({
            "metadata": self.metadata(pod),
            "timestamp": self.now,
            "window": self.window(pod),
            "containers": containers
                .into_iter()
                .map(|(container, usage)| json!({"name": container, "usage": usage_json(usage)}))
                .collect::<Vec<_>>(),
        })
    }

    /// Each Ready node's pods' usage (their totals), by node name.
    fn pod_usage_by_node(&self) -> BTreeMap<String, Vec<Usage>> {
        let (pods, _) = self.api.store.list("pods", None, None, None);
        let mut by_node: BTreeMap<String, Vec<Usage>> = BTreeMap::new();
        for pod in pods.iter().filter(|p| self.has_metrics(p)) {
            let node = pod.pointer("/spec/nodeName").and_then(Value::as_str);
            let usage = metrics::total(&metrics::pod_usage(pod, self.api.store.activity()));
            by_node
                .entry(node.unwrap_or_default().to_owned())
                .or_default()
                .push(usage);
        }
        by_node
    }

    fn node(&self, node: &Value, pods: &BTreeMap<String, Vec<Usage>>) -> Value {
        let pod_usage = pods.get(name(node)).into_iter().flatten().copied();
        json!({
            "metadata": self.metadata(node),
            "timestamp": self.now,
            "window": self.window(node),
            "usage": usage_json(metrics::node_usage(node, pod_usage)),
        })
    }
}
