//! What a node's kubelet reports about its node, as on an AKS node (the Ubuntu 22.04 node
//! image, Azure CNI overlay): `status.nodeInfo`, `status.addresses`, the pressure and Ready
//! conditions with their heartbeats, `status.daemonEndpoints` and the node's pod CIDR, then the
//! pod IPs it hands out from that CIDR. The machine id, system UUID and boot id are drawn from
//! the node name and the twin's seed, so a run is repeatable; heartbeats are written when a
//! condition is, not every 10 s.

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use crate::engine::Engine;
use crate::objects::str_at;
use crate::rng::Rng;

/// `uname -r` on the AKS Ubuntu 22.04 node image (AKSUbuntu-2204gen2containerd).
const KERNEL_VERSION: &str = "5.15.0-1089-azure";
/// `/etc/os-release`'s PRETTY_NAME on that image.
const OS_IMAGE: &str = "Ubuntu 22.04.5 LTS";
/// The container runtime that image ships.
const CONTAINER_RUNTIME_VERSION: &str = "containerd://1.7.27-1";
/// The kubelet's API port (`status.daemonEndpoints.kubeletEndpoint.Port`).
const KUBELET_PORT: u16 = 10250;
/// AKS's managed virtual network puts every node pool's nodes in one subnet, `aks-subnet`
/// 10.224.0.0/16; Azure keeps its first four addresses, so the first node is 10.224.0.4.
const NODE_SUBNET: Ipv4Addr = Ipv4Addr::new(10, 224, 0, 0);
const FIRST_NODE_HOST: u32 = 4;
/// Azure CNI overlay's default pod CIDR, 10.244.0.0/16, cut into one /24 per node.
const POD_NETWORK: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 0);
/// The pod addresses of a node's /24 the kubelet hands out: .2 to .254, then round again.
const FIRST_POD_HOST: u32 = 2;
const POD_HOSTS: u32 = 253;

/// Where a node sits on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeNetwork {
    /// The node's address in the cluster subnet (its `InternalIP`, its pods' `hostIP`).
    pub internal_ip: Ipv4Addr,
    /// The first address of the node's /24 pod CIDR.
    pub pod_cidr_base: Ipv4Addr,
}

impl NodeNetwork {
    /// The network of the cluster's `number`th node (from 0): addresses in registration order.
    pub fn numbered(number: u32) -> NodeNetwork {
        NodeNetwork {
            internal_ip: Ipv4Addr::from(u32::from(NODE_SUBNET) + FIRST_NODE_HOST + number),
            pod_cidr_base: Ipv4Addr::from(u32::from(POD_NETWORK) + (number << 8)),
        }
    }

    /// `spec.podCIDR`: `10.244.<n>.0/24`.
    pub fn pod_cidr(&self) -> String {
        format!("{}/24", self.pod_cidr_base)
    }
}

/// The kubelet's `status.nodeInfo` for node `name`: AKS node-image values, the identifiers
/// drawn from the name and `seed`.
pub fn node_info(name: &str, seed: u64, kubernetes_version: &str) -> Value {
    let mut rng = Rng::derived(seed, &["node", name]);
    let machine_id = rng.hex(32);
    let system_uuid = rng.uuid();
    let boot_id = rng.uuid();
    json!({
        "machineID": machine_id,
        "systemUUID": system_uuid,
        "bootID": boot_id,
        "kernelVersion": KERNEL_VERSION,
        "osImage": OS_IMAGE,
        "containerRuntimeVersion": CONTAINER_RUNTIME_VERSION,
        "kubeletVersion": kubernetes_version,
        "kubeProxyVersion": kubernetes_version,
        "operatingSystem": "linux",
        "architecture": "amd64",
    })
}

/// A node condition as the kubelet writes it.
fn node_condition(type_: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    })
}

/// The Ready condition: ready, or waiting for the CNI (Cilium) as a new AKS node does.
fn ready_condition(ready: bool, now: &str) -> Value {
    if ready {
        node_condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
            now,
        )
    } else {
        node_condition(
            "Ready",
            "False",
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
            now,
        )
    }
}

/// The kubelet registers `node` (an object with its name, labels, capacity and allocatable):
/// the next node network, `spec.podCIDR(s)`, and the status fields a kubelet writes, Ready or
/// not yet.
pub(crate) fn register(engine: &mut Engine, node: &mut Value, ready: bool) {
    let network = NodeNetwork::numbered(engine.state.nodes_registered);
    engine.state.nodes_registered += 1;
    let name = str_at(node, "/metadata/name")
        .unwrap_or_default()
        .to_owned();
    let now = engine.clock.wall_rfc3339();
    if !node.get("spec").is_some_and(Value::is_object) {
        node["spec"] = json!({});
    }
    node["spec"]["podCIDR"] = json!(network.pod_cidr());
    node["spec"]["podCIDRs"] = json!([network.pod_cidr()]);
    if !node.get("status").is_some_and(Value::is_object) {
        node["status"] = json!({});
    }
    let status = node["status"].as_object_mut().expect("just made an object");
    let fields: Map<String, Value> = [
        (
            "nodeInfo",
            node_info(&name, engine.params.seed, &engine.params.kubernetes_version),
        ),
        (
            "addresses",
            json!([
                {"type": "InternalIP", "address": network.internal_ip.to_string()},
                {"type": "Hostname", "address": name},
            ]),
        ),
        (
            "conditions",
            json!([
                node_condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                    &now
                ),
                node_condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                    &now
                ),
                node_condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                    &now
                ),
                ready_condition(ready, &now),
            ]),
        ),
        (
            "daemonEndpoints",
            json!({"kubeletEndpoint": {"Port": KUBELET_PORT}}),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    status.extend(fields);
}

/// The node's kubelet posts Ready: every condition gets a heartbeat, Ready its transition.
pub(crate) fn post_ready(node: &mut Value, now: &str) {
    let Some(conditions) = node
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        node["status"]["conditions"] = json!([ready_condition(true, now)]);
        return;
    };
    for condition in conditions.iter_mut() {
        condition["lastHeartbeatTime"] = json!(now);
    }
    match conditions
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
    {
        Some(ready) if ready.get("status").and_then(Value::as_str) == Some("True") => {}
        Some(ready) => *ready = ready_condition(true, now),
        None => conditions.push(ready_condition(true, now)),
    }
}

/// The node's `InternalIP`, if it reports one.
pub fn internal_ip(node: &Value) -> Option<&str> {
    node.pointer("/status/addresses")?
        .as_array()?
        .iter()
        .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))?
        .get("address")?
        .as_str()
}

/// The next pod IP of `node`'s pod CIDR (the kubelet's CNI hands them out in turn); `None`
/// for a node without a `spec.podCIDR`.
pub(crate) fn next_pod_ip(engine: &mut Engine, node: &Value) -> Option<Ipv4Addr> {
    let base: Ipv4Addr = str_at(node, "/spec/podCIDR")?
        .split_once('/')?
        .0
        .parse()
        .ok()?;
    let given = engine
        .state
        .pod_ips_given
        .entry(
            str_at(node, "/metadata/name")
                .unwrap_or_default()
                .to_owned(),
        )
        .or_default();
    let host = FIRST_POD_HOST + *given % POD_HOSTS;
    *given += 1;
    Some(Ipv4Addr::from(u32::from(base) + host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_networks_follow_the_registration_order() {
        let first = NodeNetwork::numbered(0);
        assert_eq!(first.internal_ip, Ipv4Addr::new(10, 224, 0, 4));
        assert_eq!(first.pod_cidr(), "10.244.0.0/24");
        let later = NodeNetwork::numbered(300);
        assert_eq!(later.internal_ip, Ipv4Addr::new(10, 224, 1, 48));
        assert_eq!(later.pod_cidr(), "10.245.44.0/24");
    }

    #[test]
    fn node_info_is_complete_and_repeatable_per_node() {
        let info = node_info("aks-systempool-23145678-vmss000000", 1, "v1.33.2");
        for field in [
            "machineID",
            "systemUUID",
            "bootID",
            "kernelVersion",
            "osImage",
            "containerRuntimeVersion",
            "kubeletVersion",
            "kubeProxyVersion",
            "operatingSystem",
            "architecture",
        ] {
            assert!(
                info[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field} in {info}"
            );
        }
        assert_eq!(info["machineID"].as_str().unwrap().len(), 32);
        assert_eq!(info["kubeletVersion"], "v1.33.2");
        assert_eq!(
            info,
            node_info("aks-systempool-23145678-vmss000000", 1, "v1.33.2")
        );
        let other = node_info("aks-systempool-23145678-vmss000001", 1, "v1.33.2");
        assert_ne!(info["machineID"], other["machineID"]);
        assert_ne!(info["systemUUID"], other["systemUUID"]);
    }

    #[test]
    fn posting_ready_keeps_the_pressure_transitions_and_beats_every_condition() {
        let mut node = json!({"status": {"conditions": [
            node_condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "m", "t0"),
            ready_condition(false, "t0"),
        ]}});
        post_ready(&mut node, "t1");
        let conditions = node["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions[0]["lastTransitionTime"], "t0");
        assert_eq!(conditions[0]["lastHeartbeatTime"], "t1");
        assert_eq!(conditions[1]["status"], "True");
        assert_eq!(conditions[1]["reason"], "KubeletReady");
        assert_eq!(conditions[1]["lastTransitionTime"], "t1");
    }
}
