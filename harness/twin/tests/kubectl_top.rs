//! `kubectl top` (the real kubectl v1.32, /usr/bin/kubectl) against the twin's
//! `metrics.k8s.io`: the twin on its virtual clock runs a consumer Deployment and an nginx on a
//! Karpenter node, then serves; `kubectl top nodes` and `kubectl top pods -A [--containers]`
//! print the usage model's values: a consumer that processed messages above an idle one, the
//! queue model's rate once messages wait, a node's usage its pods' plus its system's.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use edw_twin::api::ApiServer;
use edw_twin::engine::Engine;
use edw_twin::metrics::{
    CONSUMER_IDLE_MILLICORES, CONSUMER_MILLICORES_PER_MESSAGE_PER_SECOND, OTHER_MILLICORES,
    SYSTEM_CPU_FRACTION,
};
use edw_twin::objects::cpu_millis;
use edw_twin::params::TwinParams;
use edw_twin::queue::LoadProfile;
use edw_twin::sample;
use edw_twin::store::{LabelSelector, ObjectKey};
use serde_json::{json, Value};
use tokio::process::Command;

const KUBECTL: &str = "/usr/bin/kubectl";
const NS: &str = "aqs-demo";
const CONSUMERS: usize = 2;

fn deployment(name: &str, replicas: usize, container: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}})
}

/// The twin with a `default` NodePool, two consumer pods and an nginx (none tolerates the
/// system pool's taint, so they run on a Karpenter node), run until the three are Running.
fn twin_with_consumers() -> Engine {
    let mut engine =
        Engine::new_virtual(TwinParams::default(), &LoadProfile::default()).expect("twin");
    let store = &engine.store;
    store
        .create("namespaces", "", sample::namespace(NS))
        .expect("namespace");
    store
        .create(
            "nodepools.karpenter.sh",
            "",
            sample::default_nodepool().expect("the sample's pool"),
        )
        .expect("nodepool");
    let resources = json!({"requests": {"cpu": "250m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "128Mi"}});
    store
        .create(
            "deployments.apps",
            NS,
            deployment(
                "aqs-app",
                CONSUMERS,
                json!({"name": "keda-queue-reader", "image": "acraksdemo.azurecr.io/aws2azure/aqs-consumer",
                    "env": [{"name": "AZURE_QUEUE_NAME", "value": "aqs"}], "resources": resources}),
            ),
        )
        .expect("consumer deployment");
    store
        .create(
            "deployments.apps",
            NS,
            deployment(
                "web",
                1,
                json!({"name": "nginx", "image": "nginx:1.27", "resources": resources}),
            ),
        )
        .expect("nginx deployment");
    sample::run_until_running(&mut engine, NS, CONSUMERS + 1, Duration::from_secs(600))
        .unwrap_or_else(|why| panic!("{why}"));
    engine
}

async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(kubeconfig.with_file_name("cache"))
            .args(args)
            .env("HOME", kubeconfig.parent().unwrap())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
    .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A kubectl table's rows by their first `key_columns` cells (joined by `/`), after checking
/// its header.
fn table(text: &str, header: &[&str], key_columns: usize) -> BTreeMap<String, Vec<String>> {
    let mut lines = text.lines();
    let head: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(head, header, "{text}");
    lines
        .map(|line| {
            let cells: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            assert_eq!(cells.len(), header.len(), "{line}");
            (cells[..key_columns].join("/"), cells)
        })
        .collect()
}

/// `123m` → 123.
fn millicores(cell: &str) -> u64 {
    cell.strip_suffix('m')
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{cell:?} is not millicores"))
}

/// `61Mi` → 61.
fn mebibytes(cell: &str) -> u64 {
    cell.strip_suffix("Mi")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{cell:?} is not MiB"))
}

fn pod_names(engine: &Engine, app: &str) -> Vec<String> {
    let selector = LabelSelector::parse(&format!("app={app}")).unwrap();
    let (pods, _) = engine.store.list("pods", Some(NS), Some(&selector), None);
    pods.iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_top_prints_the_usage_model() {
    assert!(
        Path::new(KUBECTL).exists(),
        "kubectl is expected at {KUBECTL}"
    );
    let mut engine = twin_with_consumers();
    let api = ApiServer::new(engine.store.clone(), engine.registry.clone());
    let served = api.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, served.kubeconfig()).unwrap();

    // The queue is empty: the model has every consumer idle. One consumer counts 2 messages a
    // second for 20 simulated seconds, as its program would through its journal.
    let consumers = pod_names(&engine, "aqs-app");
    let (busy, idle) = (&consumers[0], &consumers[1]);
    let busy_key = ObjectKey::new("pods", NS, busy);
    let start = engine.now();
    for second in 1..=20 {
        engine.run_until(start + Duration::from_secs(second));
        engine.store.activity().processed(&busy_key);
        engine.store.activity().processed(&busy_key);
    }

    let pods = table(
        &kubectl(&kubeconfig, &["top", "pods", "-A"]).await,
        &["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"],
        2,
    );
    let cpu = |pod: &str| millicores(&pods[&format!("{NS}/{pod}")][2]);
    let floor = &CONSUMER_IDLE_MILLICORES;
    assert!(floor.contains(&cpu(idle)), "idle: {pods:#?}");
    let busy_extra = (2.0 * CONSUMER_MILLICORES_PER_MESSAGE_PER_SECOND) as u64;
    // kubectl rounds nanocores up to the next millicore.
    assert!(
        (floor.start() + busy_extra..=floor.end() + 1 + busy_extra).contains(&cpu(busy)),
        "busy at 2 msg/s: {pods:#?}"
    );
    assert!(cpu(busy) > cpu(idle));
    for consumer in [busy, idle] {
        let memory = mebibytes(&pods[&format!("{NS}/{consumer}")][3]);
        assert!((60..=65).contains(&memory), "{consumer}: {pods:#?}");
    }
    let web = &pod_names(&engine, "web")[0];
    let web_cpu = cpu(web);
    assert!(
        (*OTHER_MILLICORES.start()..=OTHER_MILLICORES.end() + 1).contains(&web_cpu),
        "nginx's floor: {pods:#?}"
    );
    assert!(
        pods.keys()
            .any(|k| k.starts_with("kube-system/keda-operator")),
        "the KEDA add-on's pods: {pods:#?}"
    );

    let nodes = table(
        &kubectl(&kubeconfig, &["top", "nodes"]).await,
        &["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"],
        1,
    );
    let (all_nodes, _) = engine.store.list("nodes", None, None, None);
    assert_eq!(nodes.len(), all_nodes.len(), "every Ready node: {nodes:#?}");
    let node_of = |pod: &str| {
        engine
            .store
            .get(&ObjectKey::new("pods", NS, pod))
            .and_then(|p| p["spec"]["nodeName"].as_str().map(str::to_owned))
            .expect("a scheduled pod")
    };
    let karpenter_node = node_of(busy);
    let node = engine
        .store
        .get(&ObjectKey::new("nodes", "", &karpenter_node))
        .unwrap();
    let system = (SYSTEM_CPU_FRACTION * cpu_millis(&node["status"]["allocatable"]["cpu"]) as f64)
        .round() as u64;
    let (on_node, _) = engine.store.list("pods", None, None, None);
    let on_node: Vec<String> = on_node
        .iter()
        .filter(|p| p["spec"]["nodeName"].as_str() == Some(karpenter_node.as_str()))
        .filter(|p| p["status"]["phase"] == "Running")
        .map(|p| {
            format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap(),
                p["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    let pods_cpu: u64 = on_node.iter().map(|k| millicores(&pods[k][2])).sum();
    let node_cpu = millicores(&nodes[&karpenter_node][1]);
    // Each pod's cell and the node's are rounded up on their own.
    assert!(
        node_cpu <= system + pods_cpu && node_cpu + on_node.len() as u64 >= system + pods_cpu,
        "{karpenter_node}: {node_cpu}m = {system}m system + {pods_cpu}m of {on_node:?}\n{nodes:#?}"
    );
    assert!(
        nodes[&karpenter_node][2].ends_with('%') && nodes[&karpenter_node][4].ends_with('%'),
        "{nodes:#?}"
    );
    assert!(mebibytes(&nodes[&karpenter_node][3]) >= 600, "{nodes:#?}");

    // Messages wait: the queue model has each consumer at 1 msg/s; the one that counted its
    // own messages keeps its counted rate.
    engine.queue.enqueue(1_000);
    let later = engine.now() + Duration::from_secs(5);
    engine.run_until(later);
    let containers = table(
        &kubectl(&kubeconfig, &["top", "pod", idle, "-n", NS, "--containers"]).await,
        &["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
        2,
    );
    let row = &containers[&format!("{idle}/keda-queue-reader")];
    let modelled = CONSUMER_MILLICORES_PER_MESSAGE_PER_SECOND as u64;
    assert!(
        (floor.start() + modelled..=floor.end() + 1 + modelled).contains(&millicores(&row[2])),
        "1 msg/s in the model: {containers:#?}"
    );
    served.shutdown().await;
}
