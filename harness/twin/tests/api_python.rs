//! The twin's API server through the official Kubernetes Python client (PyPI `kubernetes`):
//! `CoreV1Api().list_node()` and `list_pod_for_all_namespaces()` deserialize every node and pod
//! the twin's controllers made (system nodes, a Karpenter node, the KEDA add-on's pods and a
//! workload's) into the client's typed models, which reject an object that lacks a field they
//! require. Without the package the test says SKIPPED and why (`.ci/run` installs it).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use edw_twin::api::{ApiServer, GIT_VERSION};
use edw_twin::engine::Engine;
use edw_twin::params::TwinParams;
use edw_twin::queue::LoadProfile;
use edw_twin::store::LabelSelector;
use serde_json::{json, Value};
use tokio::process::Command;

const NS: &str = "python-client";
const APP: &str = "web";
const REPLICAS: usize = 3;

/// The Python client's exit code when the `kubernetes` package is missing
/// (`tests/python/list_objects.py`).
const PACKAGE_MISSING: i32 = 3;

fn script(name: &str) -> String {
    format!("{}/tests/python/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Why the official client cannot run here, if it cannot.
async fn python_client_missing() -> Option<String> {
    let probe = Command::new("python3")
        .args(["-c", "import kubernetes"])
        .stdin(Stdio::null())
        .output()
        .await;
    match probe {
        Err(error) => Some(format!("python3 does not run ({error})")),
        Ok(out) if !out.status.success() => Some(format!(
            "the official Kubernetes Python client is not importable (`python3 -m pip install kubernetes`): {}",
            // The traceback's last line says what is missing.
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
        )),
        Ok(_) => None,
    }
}

/// The twin on its virtual clock with a `default` NodePool and a Deployment that only a
/// Karpenter node can take (it does not tolerate the system pool's taint), run until the
/// Deployment's pods are Running, or a panic that says what they are doing.
fn twin_with_karpenter_node() -> Engine {
    let mut engine =
        Engine::new_virtual(TwinParams::default(), &LoadProfile::default()).expect("twin");
    let store = &engine.store;
    store
        .create(
            "namespaces",
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        )
        .expect("namespace");
    store
        .create(
            "nodepools.karpenter.sh",
            "",
            json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "default"},
                "spec": {"template": {"spec": {
                    "nodeClassRef": {"group": "karpenter.azure.com", "kind": "AKSNodeClass", "name": "default"},
                    "requirements": [{"key": "karpenter.azure.com/sku-family", "operator": "In", "values": ["D"]}]}}}}),
        )
        .expect("nodepool");
    store
        .create(
            "deployments.apps",
            NS,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP},
                "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": APP}},
                    "template": {"metadata": {"labels": {"app": APP}}, "spec": {"containers": [{
                        "name": APP, "image": "nginx:1.27",
                        "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "250m", "memory": "64Mi"}}}]}}}}),
        )
        .expect("deployment");
    let selector = LabelSelector::parse(&format!("app={APP}")).expect("selector");
    let deadline = Duration::from_secs(600);
    let mut now = Duration::ZERO;
    loop {
        let (pods, _) = engine.store.list("pods", Some(NS), Some(&selector), None);
        let running = pods
            .iter()
            .filter(|p| p.pointer("/status/phase") == Some(&json!("Running")))
            .count();
        if running == REPLICAS {
            return engine;
        }
        assert!(
            now < deadline,
            "{running} of {REPLICAS} pods Running after {deadline:?} simulated: {pods:#?}"
        );
        now += Duration::from_secs(10);
        engine.run_until(now);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_lists_nodes_and_pods() {
    if let Some(reason) = python_client_missing().await {
        println!("SKIPPED: {reason}");
        return;
    }
    let engine = twin_with_karpenter_node();
    let api = ApiServer::new(engine.store.clone(), engine.registry.clone());
    let served = api.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, served.kubeconfig()).unwrap();

    let listed = run_python(&script("list_objects.py"), &kubeconfig).await;

    let nodes = listed["nodes"].as_array().expect("nodes");
    let node_names: BTreeSet<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
    for i in 0..TwinParams::default().system_nodes {
        let system = format!("aks-systempool-23145678-vmss{i:06}");
        assert!(
            node_names.contains(system.as_str()),
            "{system} in {node_names:?}"
        );
    }
    let karpenter: Vec<&Value> = nodes
        .iter()
        .filter(|n| n["nodepool"] == "default")
        .collect();
    assert!(!karpenter.is_empty(), "a Karpenter node in {nodes:#?}");
    let mut internal_ips = BTreeSet::new();
    let mut boot_ids = BTreeSet::new();
    for node in nodes {
        assert_eq!(node["kubeletVersion"], GIT_VERSION, "{node}");
        assert_eq!(node["hostname"], node["name"], "{node}");
        assert_eq!(node["kubeletPort"], 10250, "{node}");
        assert_eq!(node["conditions"]["Ready"], "True", "{node}");
        assert_eq!(node["conditions"]["MemoryPressure"], "False", "{node}");
        assert_eq!(node["heartbeats"], true, "{node}");
        let ip = node["internalIP"].as_str().expect("an InternalIP");
        assert!(ip.starts_with("10.224."), "{node}");
        assert!(
            node["kernelVersion"]
                .as_str()
                .is_some_and(|k| k.ends_with("-azure")),
            "{node}"
        );
        internal_ips.insert(ip.to_owned());
        boot_ids.insert(node["bootID"].as_str().expect("a bootID").to_owned());
    }
    assert_eq!(internal_ips.len(), nodes.len(), "one InternalIP per node");
    assert_eq!(boot_ids.len(), nodes.len(), "one bootID per node");

    let pods = listed["pods"].as_array().expect("pods");
    let running: Vec<&Value> = pods.iter().filter(|p| p["phase"] == "Running").collect();
    assert!(
        running.iter().any(|p| p["namespace"] == "kube-system"),
        "the KEDA add-on's pods run: {pods:#?}"
    );
    let workload: Vec<&Value> = running
        .iter()
        .copied()
        .filter(|p| p["namespace"] == NS)
        .collect();
    assert_eq!(workload.len(), REPLICAS, "{pods:#?}");
    let karpenter_names: BTreeSet<&str> = karpenter
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    let mut pod_ips = BTreeSet::new();
    for pod in &running {
        let node = nodes
            .iter()
            .find(|n| n["name"] == pod["node"])
            .unwrap_or_else(|| panic!("the node of {pod}"));
        assert_eq!(pod["hostIP"], node["internalIP"], "{pod}");
        let pod_ip = pod["podIP"].as_str().expect("a podIP");
        let cidr_prefix = node["podCIDR"]
            .as_str()
            .and_then(|c| c.strip_suffix(".0/24"))
            .expect("a /24 podCIDR");
        assert!(
            pod_ip.starts_with(&format!("{cidr_prefix}.")),
            "{pod} in {node}"
        );
        assert_eq!(pod["podIPs"], json!([pod_ip]), "{pod}");
        assert!(pod["startTime"].is_string(), "{pod}");
        assert!(pod_ips.insert(pod_ip.to_owned()), "{pod_ip} given twice");
        for container in pod["containers"].as_array().expect("containers") {
            assert_eq!(container["ready"], true, "{pod}");
            assert_eq!(container["started"], true, "{pod}");
            assert_eq!(container["restartCount"], 0, "{pod}");
            assert_eq!(container["running"], true, "{pod}");
            let id = container["containerID"].as_str().expect("a containerID");
            assert!(
                id.strip_prefix("containerd://")
                    .is_some_and(|h| h.len() == 64),
                "{pod}"
            );
            assert!(
                container["imageID"]
                    .as_str()
                    .is_some_and(|i| i.contains("@sha256:")),
                "{pod}"
            );
        }
    }
    for pod in &workload {
        assert!(
            karpenter_names.contains(pod["node"].as_str().unwrap_or_default()),
            "{pod}"
        );
        assert_eq!(pod["qosClass"], "Guaranteed", "{pod}");
        assert_eq!(
            pod["containers"][0]["image"], "docker.io/library/nginx:1.27",
            "{pod}"
        );
    }
    served.shutdown().await;
}

/// Runs a script of `tests/python/` with the kubeconfig; returns the JSON it printed.
async fn run_python(script: &str, kubeconfig: &Path) -> Value {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new("python3")
            .arg(script)
            .arg(kubeconfig)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} did not finish within 120 s"))
    .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(PACKAGE_MISSING),
        "the kubernetes package went missing: {stderr}"
    );
    assert!(out.status.success(), "{script} failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
