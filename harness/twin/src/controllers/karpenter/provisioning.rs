//! Provisioning: provisionable pods are batched (KP-1, KP-2), then one pass places them on
//! existing nodes and in-flight NodeClaims or opens NodeClaims for the rest from the first
//! compatible pool in weight order (KP-3, KP-4), with the cheapest D SKU that fits (AZ-5..AZ-7)
//! and within the NodePool's limits (KP-5, KP-6). Pods no pool takes get Karpenter's
//! per-pool reasons and are tried again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::lifecycle::launch_labels;
use super::nodepool::{read_pools, Pool};
use super::{NODECLAIMS, TERMINATION_FINALIZER};
use crate::controllers::node_selection::{
    incompatibility, labels_satisfy, pod_requirements, Requirement,
};
use crate::controllers::scheduler::{node_allocatable, untolerated, usage_by_node};
use crate::engine::{Engine, Task};
use crate::objects::{
    condition, is_deleting, label, name, owner_reference, pod_requests, str_at, uid,
};
use crate::skus::{cheapest_fit, Allocatable, Request, Sku, D_FAMILY};
use crate::store::ObjectKey;

/// The SKUs a pool's requirements allow, cheapest first.
fn allowed_skus(pool: &Pool) -> Vec<&'static Sku> {
    let requirements: Vec<Requirement> = pool
        .requirements
        .iter()
        .map(Requirement::from_value)
        .collect();
    let mut skus = skus_meeting(D_FAMILY.iter().collect(), &requirements);
    skus.sort_by(|a, b| a.price.total_cmp(&b.price));
    skus
}

/// The SKUs of `skus` whose labels meet every requirement on a SKU label (other keys pass).
fn skus_meeting(skus: Vec<&'static Sku>, requirements: &[Requirement]) -> Vec<&'static Sku> {
    skus.into_iter()
        .filter(|sku| requirements.iter().all(|r| sku_meets(sku, r)))
        .collect()
}

/// True when `sku`'s value of the requirement's key meets it; keys that do not describe a SKU
/// pass. Capacity type: either offering will do (the twin launches on-demand only).
fn sku_meets(sku: &Sku, requirement: &Requirement) -> bool {
    let actual: Vec<String> = match requirement.key.as_str() {
        "karpenter.azure.com/sku-family" => vec![sku.family.to_owned()],
        "node.kubernetes.io/instance-type" | "karpenter.azure.com/sku-name" => {
            vec![sku.name.to_owned()]
        }
        "karpenter.azure.com/sku-cpu" => vec![sku.vcpus.to_string()],
        "karpenter.azure.com/sku-memory" => vec![(sku.memory_gib * 1024).to_string()],
        "kubernetes.io/arch" => vec!["amd64".to_owned()],
        "kubernetes.io/os" => vec!["linux".to_owned()],
        "karpenter.sh/capacity-type" => vec!["on-demand".to_owned(), "spot".to_owned()],
        _ => return true,
    };
    actual.into_iter().any(|value| {
        let labels = serde_json::Map::from_iter([(requirement.key.clone(), json!(value))]);
        requirement.satisfied_by(&labels)
    })
}

/// A8 / AZ-7: what the DaemonSet pods take on every Karpenter node.
fn daemonset_overhead(engine: &Engine) -> Request {
    Request {
        cpu_millis: engine.params.daemonset_cpu_millis,
        memory_mib: engine.params.daemonset_memory_mib,
        pods: 0,
    }
}

/// A pod Karpenter should find room for: unbound, marked `Unschedulable` by the scheduler, not
/// being deleted, and not a DaemonSet's or a static pod.
pub(super) fn is_provisionable(pod: &Value) -> bool {
    !is_deleting(pod)
        && str_at(pod, "/spec/nodeName").is_none_or(str::is_empty)
        && condition(pod, "PodScheduled")
            .and_then(|c| c.get("reason"))
            .and_then(Value::as_str)
            == Some("Unschedulable")
        && !pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|r| {
                r.iter().any(|o| {
                    matches!(
                        o.get("kind").and_then(Value::as_str),
                        Some("DaemonSet" | "Node")
                    )
                })
            })
}

/// KP-2: a provisionable pod opens or extends the batch.
pub(super) fn trigger(engine: &mut Engine) {
    let now = engine.now();
    let idle = engine.params.batch_idle;
    match &mut engine.state.karpenter.batch {
        Some((_, last)) => *last = now,
        None => {
            engine.state.karpenter.batch = Some((now, now));
            engine.schedule_in(idle, Task::BatchCheck);
        }
    }
}

/// The batch window closes after `batch_idle` without a new pod or `batch_max` in all.
pub(crate) fn batch_check(engine: &mut Engine) {
    let now = engine.now();
    if let Some((opened, last)) = engine.state.karpenter.batch {
        let deadline = (last + engine.params.batch_idle).min(opened + engine.params.batch_max);
        if now >= deadline {
            engine.state.karpenter.batch = None;
            provision(engine);
        } else {
            engine.schedule_at(deadline, Task::BatchCheck);
        }
    }
}

/// KP-1: pods that could not be placed are tried again.
pub(crate) fn provision_retry(engine: &mut Engine) {
    if engine.state.karpenter.batch.is_none() {
        provision(engine);
    }
}

/// A place a pod can go in the simulation: an existing node or an in-flight NodeClaim.
struct Bin {
    nodeclaim: String,
    node: Option<String>,
    free: Allocatable,
    taints: Vec<Value>,
    /// The node's labels, or those the NodeClaim's node will carry.
    labels: serde_json::Map<String, Value>,
}

/// A NodeClaim this pass will open: its pool, the SKUs every pod on it allows, its pods.
struct NewClaim {
    pool: usize,
    skus: Vec<&'static Sku>,
    request: Request,
    pods: Vec<Arc<Value>>,
}

/// The state of one provisioning pass (KP-4): pools, existing and new capacity, outcomes.
struct Pass {
    pools: Vec<Pool>,
    pool_skus: Vec<Vec<&'static Sku>>,
    /// CPU (millicores) each pool's existing NodeClaims hold, for its `limits` (KP-6).
    pool_used_cpu: Vec<u64>,
    overhead: Request,
    max_pods: u64,
    bins: Vec<Bin>,
    new_claims: Vec<NewClaim>,
    /// Open NodeClaims by ascending pod count (KP-4 step 2): (pods, index).
    by_count: std::collections::BTreeSet<(usize, usize)>,
    nominations: Vec<(Arc<Value>, String, Option<String>)>,
    unplaced: Vec<(Arc<Value>, String)>,
}

impl Pass {
    fn fits_some(&self, skus: &[&'static Sku], request: Request) -> bool {
        skus.iter()
            .any(|s| s.allocatable(self.max_pods).fits(request))
    }

    /// KP-4: existing capacity first, then an open NodeClaim, then a new one.
    fn place(&mut self, pod: Arc<Value>) {
        let request = pod_requests(&pod);
        let requirements = pod_requirements(&pod);
        if self.place_on_bin(&pod, request, &requirements) {
            return;
        }
        let options: Vec<Result<Vec<&'static Sku>, String>> = (0..self.pools.len())
            .map(|i| self.pool_option(i, &pod, &requirements, request))
            .collect();
        if self.place_on_open_claim(&pod, request, &options) {
            return;
        }
        // KP-6: a new NodeClaim only with instance types within the pool's remaining limits;
        // a pool at its limits leaves the pod to the next compatible pool.
        let options: Vec<Result<Vec<&'static Sku>, String>> = options
            .into_iter()
            .enumerate()
            .map(|(i, option)| option.and_then(|skus| self.within_limits(i, skus, request)))
            .collect();
        // KP-3: the first compatible pool in weight order.
        match options.iter().position(Result::is_ok) {
            Some(pool) => {
                self.by_count.insert((1, self.new_claims.len()));
                self.new_claims.push(NewClaim {
                    pool,
                    skus: options[pool].clone().unwrap_or_default(),
                    request: self.overhead + request,
                    pods: vec![pod],
                });
            }
            None => {
                let reason = self.unplaced_reason(&options);
                self.unplaced.push((pod, reason));
            }
        }
    }

    /// The pool's `skus` that fit `request` and stay within its CPU limit, counting its
    /// existing NodeClaims and those this pass opens (each at its cheapest fitting size).
    fn within_limits(
        &self,
        pool: usize,
        skus: Vec<&'static Sku>,
        request: Request,
    ) -> Result<Vec<&'static Sku>, String> {
        let Some(limit) = self.pools[pool].cpu_limit_millis else {
            return Ok(skus);
        };
        let opened: u64 = self
            .new_claims
            .iter()
            .filter(|c| c.pool == pool)
            .filter_map(|c| cheapest_fit(&c.skus, c.request, self.max_pods))
            .map(|s| s.vcpus * 1000)
            .sum();
        let remaining = limit.saturating_sub(self.pool_used_cpu[pool] + opened);
        let within: Vec<&'static Sku> = skus
            .into_iter()
            .filter(|s| s.vcpus * 1000 <= remaining)
            .collect();
        if self.fits_some(&within, self.overhead + request) {
            Ok(within)
        } else {
            Err(format!(
                "all available instance types exceed limits for nodepool: \"{}\"",
                self.pools[pool].name
            ))
        }
    }

    /// An existing node or in-flight NodeClaim whose taints, labels and room suit the pod.
    fn place_on_bin(&mut self, pod: &Arc<Value>, request: Request, wanted: &[Requirement]) -> bool {
        let Some(bin) = self.bins.iter_mut().find(|b| {
            b.free.fits(request)
                && untolerated(pod, &b.taints).is_empty()
                && labels_satisfy(wanted, &b.labels)
        }) else {
            return false;
        };
        bin.free = bin.free.minus(request);
        self.nominations
            .push((pod.clone(), bin.nodeclaim.clone(), bin.node.clone()));
        true
    }

    /// A NodeClaim opened in this pass whose pool suits the pod and whose SKUs still fit all.
    fn place_on_open_claim(
        &mut self,
        pod: &Arc<Value>,
        request: Request,
        options: &[Result<Vec<&'static Sku>, String>],
    ) -> bool {
        let narrowed = |claim: &NewClaim| -> Vec<&'static Sku> {
            let allowed = options[claim.pool].as_deref().unwrap_or_default();
            claim
                .skus
                .iter()
                .copied()
                .filter(|s| allowed.contains(s))
                .collect()
        };
        let open = self.by_count.iter().copied().find(|&(_, i)| {
            let claim = &self.new_claims[i];
            self.fits_some(&narrowed(claim), claim.request + request)
        });
        let Some((count, i)) = open else {
            return false;
        };
        self.by_count.remove(&(count, i));
        let claim = &mut self.new_claims[i];
        claim.skus = narrowed(claim);
        claim.request = claim.request + request;
        claim.pods.push(pod.clone());
        self.by_count.insert((claim.pods.len(), i));
        true
    }

    /// The pool's SKUs that suit the pod and fit it with the DaemonSet overhead, or why the
    /// pool cannot take it (Karpenter checks taints, then requirements, then instance types).
    fn pool_option(
        &self,
        index: usize,
        pod: &Value,
        wanted: &[Requirement],
        request: Request,
    ) -> Result<Vec<&'static Sku>, String> {
        let pool = &self.pools[index];
        let untolerated: Vec<String> = untolerated(pod, &pool.taints)
            .into_iter()
            .map(taint_text)
            .map(|t| format!("did not tolerate {t}"))
            .collect();
        if !untolerated.is_empty() {
            return Err(untolerated.join("; "));
        }
        if let Some(error) = incompatibility(&pool.constraints, wanted) {
            return Err(format!("incompatible requirements, {error}"));
        }
        let skus = skus_meeting(self.pool_skus[index].clone(), wanted);
        if !self.fits_some(&skus, self.overhead + request) {
            return Err(format!(
                "no instance type satisfied resources {} and requirements {}",
                resources_text(request),
                requirements_text(&pool.constraints, wanted)
            ));
        }
        Ok(skus)
    }

    /// Karpenter's FailedScheduling text: every pool's reason, in pool order.
    fn unplaced_reason(&self, options: &[Result<Vec<&'static Sku>, String>]) -> String {
        if self.pools.is_empty() {
            return "no nodepools found".to_owned();
        }
        let overhead = resources_text(self.overhead_with_daemon_pod());
        self.pools
            .iter()
            .zip(options)
            .filter_map(|(pool, option)| option.as_ref().err().map(|e| (pool, e)))
            .map(|(pool, error)| {
                format!(
                    "incompatible with nodepool {:?}, daemonset overhead={overhead}, {error}",
                    pool.name
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn overhead_with_daemon_pod(&self) -> Request {
        let daemon_pods = u64::from(self.overhead.cpu_millis > 0 || self.overhead.memory_mib > 0);
        Request {
            pods: daemon_pods,
            ..self.overhead
        }
    }
}

/// A taint as Karpenter prints it: `key=value:Effect`.
fn taint_text(taint: &Value) -> String {
    let field = |f: &str| taint.get(f).and_then(Value::as_str).unwrap_or_default();
    format!("{}={}:{}", field("key"), field("value"), field("effect"))
}

/// A resource list as Karpenter prints it: `{"cpu":"100m","memory":"128Mi","pods":"1"}`.
fn resources_text(request: Request) -> String {
    json!({
        "cpu": format!("{}m", request.cpu_millis),
        "memory": format!("{}Mi", request.memory_mib),
        "pods": request.pods.to_string(),
    })
    .to_string()
}

/// The pool's and the pod's requirements, sorted, as Karpenter lists them.
fn requirements_text(pool: &[Requirement], pod: &[Requirement]) -> String {
    let mut texts: Vec<String> = pool.iter().chain(pod).map(ToString::to_string).collect();
    texts.sort();
    texts.dedup();
    texts.join(", ")
}

/// KP-3 / KP-4: one provisioning pass.
fn provision(engine: &mut Engine) {
    let unbound = crate::store::FieldSelector::parse("spec.nodeName=").expect("static selector");
    let (pods, _) = engine.store.list("pods", None, None, Some(&unbound));
    let mut pending: Vec<Arc<Value>> = pods.into_iter().filter(|p| is_provisionable(p)).collect();
    if pending.is_empty() {
        return;
    }
    // KP-4: CPU then memory descending, then creation time and name.
    pending.sort_by_cached_key(|p| {
        let r = pod_requests(p);
        (
            std::cmp::Reverse(r.cpu_millis),
            std::cmp::Reverse(r.memory_mib),
            str_at(p, "/metadata/creationTimestamp")
                .unwrap_or_default()
                .to_owned(),
            name(p).to_owned(),
        )
    });
    let pools = read_pools(engine);
    let mut pass = Pass {
        pool_skus: pools.iter().map(allowed_skus).collect(),
        pool_used_cpu: pools
            .iter()
            .map(|p| pool_cpu_millis(engine, &p.name))
            .collect(),
        bins: bins(engine, &pools),
        pools,
        overhead: daemonset_overhead(engine),
        max_pods: engine.params.max_pods,
        new_claims: Vec::new(),
        by_count: std::collections::BTreeSet::new(),
        nominations: Vec::new(),
        unplaced: Vec::new(),
    };
    for pod in pending {
        pass.place(pod);
    }
    let Pass {
        pools,
        new_claims,
        mut nominations,
        mut unplaced,
        max_pods,
        ..
    } = pass;
    let mut pool_cpu: HashMap<String, u64> = HashMap::new();
    for claim in new_claims {
        let pool = &pools[claim.pool];
        let skus = &claim.skus;
        let Some(sku) = cheapest_fit(skus, claim.request, max_pods) else {
            continue;
        };
        // KP-6: the NodePool's limits are checked before creating.
        if let Some(limit) = pool.cpu_limit_millis {
            let used = *pool_cpu
                .entry(pool.name.clone())
                .or_insert_with(|| pool_cpu_millis(engine, &pool.name));
            if used + sku.vcpus * 1000 > limit {
                for pod in &claim.pods {
                    unplaced.push((
                        pod.clone(),
                        format!(
                            "all available instance types exceed limits for nodepool: \"{}\"",
                            pool.name
                        ),
                    ));
                }
                continue;
            }
            pool_cpu.insert(pool.name.clone(), used + sku.vcpus * 1000);
        }
        let Some(nodeclaim) = create_nodeclaim(engine, pool, sku, skus, claim.request) else {
            continue;
        };
        for pod in &claim.pods {
            nominations.push((pod.clone(), nodeclaim.clone(), None));
        }
    }
    let now = engine.now();
    for (pod, nodeclaim, node) in nominations {
        engine
            .state
            .karpenter
            .nominated_at
            .insert(nodeclaim.clone(), now);
        if engine
            .state
            .karpenter
            .announced_nominations
            .insert((uid(&pod).to_owned(), nodeclaim.clone()))
        {
            let message = match node {
                Some(node) => format!("Pod should schedule on: nodeclaim/{nodeclaim}, node/{node}"),
                None => format!("Pod should schedule on: nodeclaim/{nodeclaim}"),
            };
            engine.emit(&pod, "Normal", "Nominated", &message, "karpenter");
        }
    }
    if !unplaced.is_empty() {
        for (pod, reason) in &unplaced {
            engine.emit(
                pod,
                "Warning",
                "FailedScheduling",
                &format!("Failed to schedule pod, {reason}"),
                "karpenter",
            );
        }
        engine.schedule_in(Duration::from_secs(10), Task::ProvisionRetry);
    }
}

/// Taints Karpenter ignores on a node because the node lifecycle removes them
/// (`scheduling.KnownEphemeralTaints`).
const EPHEMERAL_TAINTS: &[&str] = &[
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.cloudprovider.kubernetes.io/uninitialized",
];

/// Existing Karpenter nodes and in-flight NodeClaims, with their free capacity.
fn bins(engine: &Engine, pools: &[Pool]) -> Vec<Bin> {
    let (claims, _) = engine.store.list(NODECLAIMS, None, None, None);
    let usage = usage_by_node(engine);
    let overhead = daemonset_overhead(engine);
    let mut claims: Vec<Arc<Value>> = claims.into_iter().filter(|c| !is_deleting(c)).collect();
    claims.sort_by(|a, b| {
        str_at(a, "/metadata/creationTimestamp")
            .cmp(&str_at(b, "/metadata/creationTimestamp"))
            .then(name(a).cmp(name(b)))
    });
    claims
        .iter()
        .filter_map(|claim| {
            let claim_name = name(claim).to_owned();
            let node_name = str_at(claim, "/status/nodeName").map(str::to_owned);
            let node = node_name
                .as_ref()
                .and_then(|n| engine.store.get(&ObjectKey::new("nodes", "", n)));
            if node.as_ref().is_some_and(|n| is_deleting(n)) {
                return None;
            }
            let pool = pools
                .iter()
                .find(|p| Some(p.name.as_str()) == label(claim, "karpenter.sh/nodepool"));
            let pool_taints = pool.map(|p| p.taints.clone()).unwrap_or_default();
            // A registered node is judged by its own taints (a cordoned one carries
            // node.kubernetes.io/unschedulable), less the ones Karpenter expects to go: the
            // pool's startup taints and the ephemeral node-lifecycle ones.
            let taints = match &node {
                Some(node) => node
                    .pointer("/spec/taints")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|t| {
                        !EPHEMERAL_TAINTS.contains(&t["key"].as_str().unwrap_or_default())
                            && !pool.is_some_and(|p| {
                                p.startup_taints.iter().any(|s| s["key"] == t["key"])
                            })
                    })
                    .cloned()
                    .collect(),
                None => pool_taints,
            };
            let (allocatable, used, labels) = match &node {
                Some(node) => (
                    node_allocatable(node),
                    usage.get(name(node)).copied().unwrap_or_default(),
                    labels_of(node),
                ),
                None => {
                    let sku = engine.state.karpenter.sku_of.get(&claim_name)?;
                    (
                        sku.allocatable(engine.params.max_pods),
                        overhead,
                        in_flight_labels(engine, claim, sku),
                    )
                }
            };
            Some(Bin {
                nodeclaim: claim_name,
                node: node_name,
                free: allocatable.minus(used),
                taints,
                labels,
            })
        })
        .collect()
}

/// An object's labels (empty when it has none).
fn labels_of(object: &Value) -> serde_json::Map<String, Value> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The labels the node of a NodeClaim not yet registered will carry: the claim's (its pool's)
/// and those of its SKU (KP-7 Launched adds them).
fn in_flight_labels(engine: &Engine, claim: &Value, sku: &Sku) -> serde_json::Map<String, Value> {
    let mut labels = labels_of(claim);
    let pool = label(claim, "karpenter.sh/nodepool").unwrap_or_default();
    if let Value::Object(sku_labels) = launch_labels(engine, sku, pool) {
        labels.extend(sku_labels);
    }
    labels
}

/// KP-6: the CPU of the pool's NodeClaims, in millicores.
fn pool_cpu_millis(engine: &Engine, pool: &str) -> u64 {
    let (claims, _) = engine.store.list(NODECLAIMS, None, None, None);
    claims
        .iter()
        .filter(|c| label(c, "karpenter.sh/nodepool") == Some(pool))
        .filter_map(|c| engine.state.karpenter.sku_of.get(name(c)))
        .map(|s| s.vcpus * 1000)
        .sum()
}

/// KP-5 / KP-6: a NodeClaim for `pool` sized for `request`.
fn create_nodeclaim(
    engine: &mut Engine,
    pool: &Pool,
    sku: &'static Sku,
    allowed: &[&'static Sku],
    request: Request,
) -> Option<String> {
    let fitting: Vec<&str> = allowed
        .iter()
        .filter(|s| s.allocatable(engine.params.max_pods).fits(request))
        .take(600)
        .map(|s| s.name)
        .collect();
    let mut requirements = pool.requirements.clone();
    requirements.retain(|r| {
        r.get("key").and_then(Value::as_str) != Some("node.kubernetes.io/instance-type")
    });
    requirements.push(
        json!({"key": "node.kubernetes.io/instance-type", "operator": "In", "values": fitting}),
    );
    requirements
        .push(json!({"key": "karpenter.sh/nodepool", "operator": "In", "values": [pool.name]}));
    let mut labels = pool.labels.clone();
    labels["karpenter.sh/nodepool"] = json!(pool.name);
    let hash = pool
        .object
        .pointer("/metadata/annotations/karpenter.sh~1nodepool-hash")
        .cloned()
        .unwrap_or_else(|| json!("0"));
    let nodeclaim = json!({
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodeClaim",
        "metadata": {
            "generateName": format!("{}-", pool.name),
            "labels": labels,
            "annotations": {
                "karpenter.sh/nodepool-hash": hash,
                "karpenter.sh/nodepool-hash-version": "v3",
                "karpenter.sh/nodeclaim-min-values-relaxed": "false",
            },
            "finalizers": [TERMINATION_FINALIZER],
            "ownerReferences": [owner_reference(&pool.object)],
        },
        "spec": {
            "nodeClassRef": {"group": "karpenter.azure.com", "kind": "AKSNodeClass", "name": "default"},
            "requirements": requirements,
            "resources": {"requests": {"cpu": format!("{}m", request.cpu_millis), "memory": format!("{}Mi", request.memory_mib), "pods": request.pods.to_string()}},
            "taints": pool.taints,
            "startupTaints": pool.startup_taints,
            "expireAfter": "Never",
        },
    });
    let created = engine.store.create(NODECLAIMS, "", nodeclaim).ok()?;
    let claim_name = name(&created).to_owned();
    engine
        .state
        .karpenter
        .sku_of
        .insert(claim_name.clone(), sku);
    Some(claim_name)
}
