//! NodePools as Karpenter reads them: weight order, requirements and the labels and taints a
//! pool's nodes carry, limits, the disruption settings with the v1 and v1beta1 defaults
//! (KP-15), and the status Karpenter keeps on each pool (resources, node count, conditions).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{NODECLAIMS, NODEPOOLS};
use crate::controllers::node_selection::Requirement;
use crate::engine::Engine;
use crate::objects::{is_deleting, label, name, set_condition, str_at};
use crate::skus::Sku;
use crate::store::{EventType, ObjectKey, WatchEvent};

/// A NodePool as Karpenter reads it (v1, or v1beta1 with its defaults, KP-15).
#[derive(Debug, Clone)]
pub(super) struct Pool {
    pub(super) name: String,
    pub(super) object: Arc<Value>,
    weight: i64,
    pub(super) requirements: Vec<Value>,
    /// What a node of the pool is known to carry (KP-3): its requirements, its template
    /// labels and `karpenter.sh/nodepool`.
    pub(super) constraints: Vec<Requirement>,
    pub(super) taints: Vec<Value>,
    pub(super) startup_taints: Vec<Value>,
    /// The template labels, the single-value `In` requirements and `karpenter.sh/nodepool`.
    pub(super) labels: Value,
    pub(super) cpu_limit_millis: Option<u64>,
    pub(super) policy: String,
    pub(super) consolidate_after: Option<Duration>,
    pub(super) budgets: Vec<String>,
}

/// `30s`, `5m`, `720h`, `0s`; `None` for `Never`.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "Never" {
        return None;
    }
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            0.001
        } else {
            match c {
                'h' => 3600.0,
                'm' => 60.0,
                's' => 1.0,
                _ => return Some(Duration::ZERO),
            }
        };
        total += number.parse::<f64>().unwrap_or(0.0) * unit;
        number.clear();
    }
    if !number.is_empty() {
        total += number.parse::<f64>().unwrap_or(0.0);
    }
    Some(Duration::from_secs_f64(total))
}

/// The NodePools not being deleted, highest weight first, then by name (KP-3 tries them in
/// this order).
pub(super) fn read_pools(engine: &Engine) -> Vec<Pool> {
    let (items, _) = engine.store.list(NODEPOOLS, None, None, None);
    let mut pools: Vec<Pool> = items
        .into_iter()
        .filter(|p| !is_deleting(p))
        .map(|p| {
            let v1beta1 = str_at(&p, "/apiVersion") == Some("karpenter.sh/v1beta1");
            let list = |pointer: &str| {
                p.pointer(pointer)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            let policy = str_at(&p, "/spec/disruption/consolidationPolicy")
                .unwrap_or(if v1beta1 {
                    "WhenUnderutilized"
                } else {
                    "WhenEmptyOrUnderutilized"
                })
                .to_owned();
            let consolidate_after = match str_at(&p, "/spec/disruption/consolidateAfter") {
                Some(text) => parse_duration(text),
                None => Some(engine.params.default_consolidate_after),
            };
            let budgets = p
                .pointer("/spec/disruption/budgets")
                .and_then(Value::as_array)
                .map(|b| {
                    b.iter()
                        .filter_map(|b| b.get("nodes").and_then(Value::as_str).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_else(|| vec!["10%".to_owned()]);
            let requirements = list("/spec/template/spec/requirements");
            let labels = pool_labels(name(&p), &p, &requirements);
            Pool {
                name: name(&p).to_owned(),
                weight: p
                    .pointer("/spec/weight")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
                constraints: pool_constraints(&requirements, &labels),
                requirements,
                taints: list("/spec/template/spec/taints"),
                startup_taints: {
                    let mut taints = list("/spec/template/spec/startupTaints");
                    let cilium = json!({"key": "node.cilium.io/agent-not-ready", "value": "true", "effect": "NoExecute"});
                    if engine.params.nap_startup_taint && !taints.contains(&cilium) {
                        taints.push(cilium);
                    }
                    taints
                },
                labels,
                cpu_limit_millis: p
                    .pointer("/spec/limits/cpu")
                    .map(crate::objects::cpu_millis),
                policy,
                consolidate_after,
                budgets,
                object: p,
            }
        })
        .collect();
    pools.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.name.cmp(&b.name)));
    pools
}

/// The labels Karpenter puts on a pool's NodeClaims (KP-5): the template labels, the value of
/// each single-value `In` requirement outside the restricted Kubernetes domains, and
/// `karpenter.sh/nodepool`.
fn pool_labels(pool_name: &str, pool: &Value, requirements: &[Value]) -> Value {
    let mut labels = pool
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    for requirement in requirements.iter().map(Requirement::from_value) {
        let restricted =
            requirement.key.contains("kubernetes.io/") || requirement.key.contains("k8s.io/");
        if requirement.operator == "In" && requirement.values.len() == 1 && !restricted {
            labels
                .as_object_mut()
                .expect("labels are an object")
                .entry(requirement.key)
                .or_insert_with(|| json!(requirement.values[0]));
        }
    }
    labels["karpenter.sh/nodepool"] = json!(pool_name);
    labels
}

/// The pool's requirements and labels as requirements, for the compatibility check (KP-3).
fn pool_constraints(requirements: &[Value], labels: &Value) -> Vec<Requirement> {
    let labelled = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| Requirement::label(k, v.as_str().unwrap_or_default()));
    requirements
        .iter()
        .map(Requirement::from_value)
        .chain(labelled)
        .collect()
}

/// A new pool gets its status at once; NodeClaim changes refresh it later.
pub(crate) fn on_nodepool(engine: &mut Engine, change: &WatchEvent) {
    if change.event_type == EventType::Added {
        refresh_nodepool_status(engine, &change.key.name);
    }
}

/// The pool's status: the resources and nodes of its NodeClaims, and its conditions.
pub(super) fn refresh_nodepool_status(engine: &mut Engine, pool: &str) {
    let now = engine.clock.wall_rfc3339();
    let (claims, _) = engine.store.list(NODECLAIMS, None, None, None);
    let pool_claims: Vec<_> = claims
        .iter()
        .filter(|c| label(c, "karpenter.sh/nodepool") == Some(pool))
        .collect();
    let skus: Vec<&Sku> = pool_claims
        .iter()
        .filter_map(|c| engine.state.karpenter.sku_of.get(name(c)).copied())
        .collect();
    let cpu: u64 = skus.iter().map(|s| s.vcpus).sum();
    let memory: u64 = skus.iter().map(|s| s.memory_gib).sum();
    let nodes = pool_claims
        .iter()
        .filter(|c| str_at(c, "/status/nodeName").is_some())
        .count();
    let _ = engine.store.update(&ObjectKey::new(NODEPOOLS, "", pool), |o| {
        o["status"]["resources"] = json!({"cpu": cpu.to_string(), "memory": format!("{memory}Gi"), "nodes": nodes.to_string(), "pods": (nodes as u64 * engine.params.max_pods).to_string()});
        o["status"]["nodes"] = json!(nodes);
        set_condition(o, "ValidationSucceeded", "True", "ValidationSucceeded", "", &now);
        set_condition(o, "NodeClassReady", "True", "NodeClassReady", "", &now);
        set_condition(o, "NodeRegistrationHealthy", "True", "NodeRegistrationHealthy", "", &now);
        set_condition(o, "Ready", "True", "Ready", "", &now);
    });
}
