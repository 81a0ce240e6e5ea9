//! The NodeClaim lifecycle: a new NodeClaim is Launched (the VM create starts; labels,
//! capacity and provider ID are known), Registered (its Node appears, tainted and not Ready,
//! with the DaemonSet pod) and Initialized (the Node is Ready, startup taints gone) on the
//! configured delays (KP-7, KP-8, AZ-1, AZ-2, AZ-8). A deleted NodeClaim's node is tainted and
//! drained, the VM goes, then the Node and the termination finalizer (KP-16).

use std::time::Duration;

use serde_json::{json, Value};

use super::nodepool::refresh_nodepool_status;
use super::{NODECLAIMS, TERMINATION_FINALIZER};
use crate::controllers::node_status;
use crate::engine::{Engine, Task};
use crate::objects::{
    condition, is_deleting, label, name, namespace, owner_reference, qos_class, set_condition,
    str_at,
};
use crate::skus::Sku;
use crate::store::{EventType, FieldSelector, ObjectKey, WatchEvent};

/// AZ-2: the subscription in the VMs' provider IDs.
const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";

/// A new NodeClaim gets its lifecycle scheduled; a deleting one is terminated; a gone one is
/// forgotten. Its pool's status follows every change.
pub(crate) fn on_nodeclaim(engine: &mut Engine, change: &WatchEvent) {
    let claim_name = change.key.name.clone();
    let pool = label(&change.object, "karpenter.sh/nodepool").map(str::to_owned);
    match change.event_type {
        EventType::Added => {
            let params = &engine.params;
            // One draw scales the three stages, so they stay in order.
            let factor = params.jitter_factor(&["nodeclaim", &claim_name]);
            let (launch, register, initialize) = (
                params.launch_delay.mul_f64(factor),
                params.register_delay.mul_f64(factor),
                params.initialize_delay.mul_f64(factor),
            );
            engine.schedule_in(
                launch,
                Task::NodeClaimLaunch {
                    nodeclaim: claim_name.clone(),
                },
            );
            engine.schedule_in(
                register,
                Task::NodeRegister {
                    nodeclaim: claim_name.clone(),
                },
            );
            engine.schedule_in(
                initialize,
                Task::NodeInitialize {
                    nodeclaim: claim_name,
                },
            );
        }
        EventType::Modified if is_deleting(&change.object) => terminate(engine, &change.object),
        EventType::Deleted => {
            let state = &mut engine.state.karpenter;
            state.terminating.remove(&claim_name);
            state.initialized_at.remove(&claim_name);
            state.nominated_at.remove(&claim_name);
        }
        _ => {}
    }
    if let Some(pool) = pool {
        refresh_nodepool_status(engine, &pool);
    }
}

/// The event Karpenter emits when a NodeClaim condition turns True.
fn transition_event(engine: &mut Engine, claim: &Value, type_: &str) {
    let message = format!(
        "Status condition transitioned, Type: {type_}, Status: Unknown -> True, Reason: {type_}"
    );
    engine.emit(claim, "Normal", type_, &message, "karpenter");
}

/// The labels KP-7 Launched adds to a NodeClaim, which its Node carries: the pool, the SKU's
/// and AKS's.
pub(super) fn launch_labels(engine: &Engine, sku: &Sku, pool: &str) -> Value {
    let region = engine.params.region.clone();
    json!({
        "karpenter.sh/nodepool": pool,
        "karpenter.sh/capacity-type": "on-demand",
        "node.kubernetes.io/instance-type": sku.name,
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": "0",
        "karpenter.azure.com/sku-name": sku.name,
        "karpenter.azure.com/sku-family": sku.family,
        "karpenter.azure.com/sku-series": sku.series(),
        "karpenter.azure.com/sku-version": sku.version(),
        "karpenter.azure.com/sku-cpu": sku.vcpus.to_string(),
        "karpenter.azure.com/sku-memory": (sku.memory_gib * 1024).to_string(),
        "karpenter.azure.com/sku-networking-accelerated": "true",
        "karpenter.azure.com/sku-storage-premium-capable": "true",
        "karpenter.azure.com/sku-gpu-count": "0",
        "karpenter.azure.com/placement-scope": "regional",
        "kubernetes.azure.com/sku-cpu": sku.vcpus.to_string(),
        "kubernetes.azure.com/sku-memory": (sku.memory_gib * 1024).to_string(),
        "kubernetes.azure.com/cluster": "mc_rg-aksdemo_aks-aksdemo_eastus",
        "kubernetes.azure.com/scalesetpriority": "regular",
        "kubernetes.azure.com/os-sku": "Ubuntu",
        "kubernetes.azure.com/ebpf-dataplane": "cilium",
    })
}

fn provider_id(node: &str) -> String {
    // AZ-2: azure:// + the VM resource id, resource group lower-cased.
    format!("azure:///subscriptions/{SUBSCRIPTION}/resourcegroups/mc_rg-aksdemo_aks-aksdemo_eastus/providers/Microsoft.Compute/virtualMachines/{node}")
}

/// AZ-5: the SKU's capacity and allocatable as the NodeClaim and Node report them.
fn resources_of(sku: &Sku, max_pods: u64) -> (Value, Value) {
    let allocatable = sku.allocatable(max_pods);
    (
        json!({"cpu": sku.vcpus.to_string(), "memory": format!("{}Ki", sku.memory_gib * 1024 * 1024), "pods": max_pods.to_string(), "ephemeral-storage": "128G"}),
        json!({"cpu": format!("{}m", allocatable.cpu_millis), "memory": format!("{}Mi", allocatable.memory_mib), "pods": allocatable.pods.to_string(), "ephemeral-storage": "119G"}),
    )
}

/// KP-7 Launched / AZ-3: the VM create started; labels, capacity and providerID are known.
pub(crate) fn launch(engine: &mut Engine, claim_name: &str) {
    let key = ObjectKey::new(NODECLAIMS, "", claim_name);
    let Some(claim) = engine.store.get(&key) else {
        return;
    };
    if is_deleting(&claim) {
        return;
    }
    let Some(sku) = engine.state.karpenter.sku_of.get(claim_name).copied() else {
        return;
    };
    let pool = label(&claim, "karpenter.sh/nodepool")
        .unwrap_or("default")
        .to_owned();
    let labels = launch_labels(engine, sku, &pool);
    let (capacity, allocatable) = resources_of(sku, engine.params.max_pods);
    let node_name = format!("aks-{claim_name}");
    let now = engine.clock.wall_rfc3339();
    let updated = engine.store.update(&key, |o| {
        if let (Some(existing), Some(new)) = (o.pointer_mut("/metadata/labels").and_then(Value::as_object_mut), labels.as_object()) {
            for (k, v) in new {
                existing.insert(k.clone(), v.clone());
            }
        }
        o["status"]["providerID"] = json!(provider_id(&node_name));
        o["status"]["imageID"] = json!("/CommunityGalleries/AKSUbuntu-38d80f77-467a-481f-a8d4-09b6d4220bd2/images/2204gen2containerd/versions/202411.12.0");
        o["status"]["capacity"] = capacity.clone();
        o["status"]["allocatable"] = allocatable.clone();
        set_condition(o, "Launched", "True", "Launched", "", &now);
        for type_ in ["Registered", "Initialized", "Ready"] {
            if condition(o, type_).is_none() {
                set_condition(o, type_, "Unknown", "AwaitingReconciliation", "object is awaiting reconciliation", &now);
            }
        }
    });
    if let Ok(Some(claim)) = updated {
        transition_event(engine, &claim, "Launched");
    }
}

/// KP-7 Registered: the Node object appears (AZ-1 name `aks-<nodeclaim>`), not yet Ready.
pub(crate) fn register(engine: &mut Engine, claim_name: &str) {
    let key = ObjectKey::new(NODECLAIMS, "", claim_name);
    let Some(claim) = engine.store.get(&key) else {
        return;
    };
    if is_deleting(&claim) || condition(&claim, "Launched").is_none() {
        return;
    }
    let node_name = format!("aks-{claim_name}");
    let mut labels = claim
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    labels["kubernetes.io/hostname"] = json!(node_name);
    labels["karpenter.sh/registered"] = json!("true");
    let mut taints: Vec<Value> = claim
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    taints.extend(
        claim
            .pointer("/spec/startupTaints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    );
    let mut node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_name,
            "labels": labels,
            "finalizers": [TERMINATION_FINALIZER],
            "ownerReferences": [owner_reference(&claim)],
        },
        "spec": {"providerID": provider_id(&node_name), "taints": taints},
        "status": {
            "capacity": claim.pointer("/status/capacity").cloned().unwrap_or(Value::Null),
            "allocatable": claim.pointer("/status/allocatable").cloned().unwrap_or(Value::Null),
        },
    });
    // The kubelet registers the node not Ready: the CNI is not up yet (AZ-9).
    node_status::register(engine, &mut node, false);
    if engine.store.create("nodes", "", node).is_err() {
        return;
    }
    create_daemon_pod(engine, &node_name);
    let now = engine.clock.wall_rfc3339();
    let updated = engine.store.update(&key, |o| {
        o["status"]["nodeName"] = json!(node_name);
        o["metadata"]["labels"]["karpenter.sh/registered"] = json!("true");
        set_condition(o, "Registered", "True", "Registered", "", &now);
    });
    if let Ok(Some(claim)) = updated {
        transition_event(engine, &claim, "Registered");
    }
}

/// The node's DaemonSet pods (A8 / AZ-7), as one pod that requests the modelled DaemonSet
/// CPU and memory, so that the scheduler sees the same room Karpenter simulated.
fn create_daemon_pod(engine: &mut Engine, node_name: &str) {
    let (cpu, memory) = (
        engine.params.daemonset_cpu_millis,
        engine.params.daemonset_memory_mib,
    );
    if cpu == 0 && memory == 0 {
        return;
    }
    // Owned by the DaemonSet the twin starts with (kubectl drain looks the owner up).
    let owner_uid = engine
        .store
        .get(&ObjectKey::new(
            "daemonsets.apps",
            "kube-system",
            crate::controllers::NODE_DAEMONS,
        ))
        .and_then(|ds| ds.pointer("/metadata/uid").cloned())
        .unwrap_or(json!("00000000-0000-0000-0000-0000000000d5"));
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "node-daemons-",
            "labels": {"app": "node-daemons", "k8s-app": "node-daemons"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": crate::controllers::NODE_DAEMONS, "uid": owner_uid, "controller": true}],
        },
        "spec": {
            "nodeName": node_name,
            "priorityClassName": "system-node-critical",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "daemons",
                "image": "mcr.microsoft.com/oss/cilium/cilium:1.16.6",
                "resources": {"requests": {"cpu": format!("{cpu}m"), "memory": format!("{memory}Mi")}},
            }],
        },
        "status": {"phase": "Pending"},
    });
    pod["status"]["qosClass"] = json!(qos_class(&pod["spec"]));
    let _ = engine.store.create("pods", "kube-system", pod);
}

/// True for a DaemonSet's pod (the node's DaemonSet pod stays until the node goes).
pub(super) fn is_daemon_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|r| {
            r.iter()
                .any(|o| o.get("kind").and_then(Value::as_str) == Some("DaemonSet"))
        })
}

/// KP-7 Initialized: the Node is Ready, its startup taints are gone.
pub(crate) fn initialize(engine: &mut Engine, claim_name: &str) {
    let key = ObjectKey::new(NODECLAIMS, "", claim_name);
    let Some(claim) = engine.store.get(&key) else {
        return;
    };
    let Some(node_name) = str_at(&claim, "/status/nodeName").map(str::to_owned) else {
        return;
    };
    if is_deleting(&claim) {
        return;
    }
    let startup: Vec<Value> = claim
        .pointer("/spec/startupTaints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let now = engine.clock.wall_rfc3339();
    let _ = engine
        .store
        .update(&ObjectKey::new("nodes", "", &node_name), |o| {
            if let Some(taints) = o.pointer_mut("/spec/taints").and_then(Value::as_array_mut) {
                taints.retain(|t| !startup.contains(t));
            }
            o["metadata"]["labels"]["karpenter.sh/initialized"] = json!("true");
            node_status::post_ready(o, &now);
        });
    let updated = engine.store.update(&key, |o| {
        o["metadata"]["labels"]["karpenter.sh/initialized"] = json!("true");
        set_condition(o, "Initialized", "True", "Initialized", "", &now);
        set_condition(o, "Ready", "True", "Ready", "", &now);
    });
    let now_sim = engine.now();
    engine
        .state
        .karpenter
        .initialized_at
        .insert(claim_name.to_owned(), now_sim);
    if let Ok(Some(claim)) = updated {
        transition_event(engine, &claim, "Initialized");
        transition_event(engine, &claim, "Ready");
    }
}

/// KP-16: a deleted NodeClaim's node is tainted and drained; the VM goes after a delay.
fn terminate(engine: &mut Engine, claim: &Value) {
    let claim_name = name(claim).to_owned();
    if !engine
        .state
        .karpenter
        .terminating
        .insert(claim_name.clone())
    {
        return;
    }
    if let Some(node_name) = str_at(claim, "/status/nodeName").map(str::to_owned) {
        let _ = engine
            .store
            .update(&ObjectKey::new("nodes", "", &node_name), |o| {
                let mut taints = o
                    .pointer("/spec/taints")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let disrupted = json!({"key": "karpenter.sh/disrupted", "effect": "NoSchedule"});
                if !taints.contains(&disrupted) {
                    taints.push(disrupted);
                }
                o["spec"]["taints"] = json!(taints);
            });
        let (pods, _) = engine.store.list(
            "pods",
            None,
            None,
            Some(
                &FieldSelector::parse(&format!("spec.nodeName={node_name}"))
                    .expect("node names are selector-safe"),
            ),
        );
        // Completed pods are not evicted (nothing runs in them); they go with the Node.
        for pod in pods.iter().filter(|p| {
            !is_deleting(p) && !is_daemon_pod(p) && !crate::controllers::workloads::is_completed(p)
        }) {
            let _ = engine
                .store
                .delete(&ObjectKey::new("pods", namespace(pod), name(pod)), None);
            engine.emit(
                pod,
                "Normal",
                "Evicted",
                "Evicted pod: node is being disrupted",
                "karpenter",
            );
        }
    }
    let delay = engine
        .params
        .jittered(engine.params.vm_delete_delay, &["vm_delete", &claim_name]);
    engine.schedule_in(
        delay,
        Task::VmDeleted {
            nodeclaim: claim_name,
        },
    );
}

/// The VM is gone: the Node goes, then the NodeClaim's finalizer.
pub(crate) fn vm_deleted(engine: &mut Engine, claim_name: &str) {
    let key = ObjectKey::new(NODECLAIMS, "", claim_name);
    let Some(claim) = engine.store.get(&key) else {
        return;
    };
    if let Some(node_name) = str_at(&claim, "/status/nodeName") {
        let selector = FieldSelector::parse(&format!("spec.nodeName={node_name}"))
            .expect("node names are selector-safe");
        let (pods, _) = engine.store.list("pods", None, None, Some(&selector));
        // KP-16: the drain finishes before the VM goes.
        if pods.iter().any(|p| !is_daemon_pod(p)) {
            engine.schedule_in(
                Duration::from_secs(1),
                Task::VmDeleted {
                    nodeclaim: claim_name.to_owned(),
                },
            );
            return;
        }
        for pod in &pods {
            engine
                .store
                .remove(&ObjectKey::new("pods", namespace(pod), name(pod)));
        }
        engine.store.remove(&ObjectKey::new("nodes", "", node_name));
        engine.state.pod_ips_given.remove(node_name);
    }
    let _ = engine.store.update(&key, |o| {
        if let Some(f) = o
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)
        {
            f.retain(|x| x.as_str() != Some(TERMINATION_FINALIZER));
        }
    });
    engine.state.karpenter.sku_of.remove(claim_name);
}
