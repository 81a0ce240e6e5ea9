"""Lists the twin's nodes and pods with the official Kubernetes Python client.

Usage: python3 list_objects.py KUBECONFIG

Prints one JSON document on stdout: what the client deserialized (typed models, so a field it
requires and the server left out fails here). Exits 3 when the `kubernetes` package is not
importable, so the calling test can say it skipped.
"""

import json
import sys

try:
    from kubernetes import client, config
except ImportError as error:  # the calling test reports the skip
    print(f"the kubernetes package is not importable: {error}", file=sys.stderr)
    sys.exit(3)


def pod_ips(status):
    # Newer generated models name the field pod_ips, older ones pod_i_ps.
    ips = getattr(status, "pod_ips", None) or getattr(status, "pod_i_ps", None) or []
    return [ip.ip for ip in ips]


def addresses(node):
    return {a.type: a.address for a in node.status.addresses or []}


def main(kubeconfig):
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    nodes = core.list_node()
    pods = core.list_pod_for_all_namespaces()
    print(
        json.dumps(
            {
                "nodes": [
                    {
                        "name": n.metadata.name,
                        "kubeletVersion": n.status.node_info.kubelet_version,
                        "bootID": n.status.node_info.boot_id,
                        "machineID": n.status.node_info.machine_id,
                        "kernelVersion": n.status.node_info.kernel_version,
                        "internalIP": addresses(n).get("InternalIP"),
                        "hostname": addresses(n).get("Hostname"),
                        "podCIDR": n.spec.pod_cidr,
                        "kubeletPort": n.status.daemon_endpoints.kubelet_endpoint.port,
                        "conditions": {c.type: c.status for c in n.status.conditions},
                        "heartbeats": all(c.last_heartbeat_time for c in n.status.conditions),
                        "nodepool": (n.metadata.labels or {}).get("karpenter.sh/nodepool"),
                    }
                    for n in nodes.items
                ],
                "pods": [
                    {
                        "namespace": p.metadata.namespace,
                        "name": p.metadata.name,
                        "node": p.spec.node_name,
                        "phase": p.status.phase,
                        "podIP": p.status.pod_ip,
                        "podIPs": pod_ips(p.status),
                        "hostIP": p.status.host_ip,
                        "qosClass": p.status.qos_class,
                        "startTime": p.status.start_time.isoformat() if p.status.start_time else None,
                        "containers": [
                            {
                                "image": c.image,
                                "imageID": c.image_id,
                                "containerID": c.container_id,
                                "ready": c.ready,
                                "started": c.started,
                                "restartCount": c.restart_count,
                                "running": c.state.running is not None and c.state.running.started_at is not None,
                            }
                            for c in p.status.container_statuses or []
                        ],
                    }
                    for p in pods.items
                ],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
