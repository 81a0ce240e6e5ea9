//! The kubelet and an image reference that does not parse, on the virtual clock: the pod stays
//! Pending, the container with the bad image waits with InvalidImageName naming it (the
//! other waits to be created), the kubelet says so once rather than on every update, and once
//! the image is set right the pod starts.

mod support;

use std::time::Duration;

use edw_twin::store::ObjectKey;
use serde_json::{json, Value};

const NS: &str = "images";
const BAD: &str = "acr.azurecr.io/Team/Consumer:1";

fn container_state(pod: &Value, container: &str) -> Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == container)
        .map(|s| s["state"].clone())
        .unwrap_or(Value::Null)
}

fn kubelet_events(engine: &edw_twin::engine::Engine, reason: &str) -> usize {
    let (events, _) = engine.store.list("events", None, None, None);
    events
        .iter()
        .filter(|e| e["source"]["component"] == "kubelet" && e["reason"] == reason)
        .filter(|e| e["involvedObject"]["name"] == "p")
        .count()
}

#[test]
fn a_bad_image_leaves_the_pod_waiting_until_it_is_set_right() {
    let mut engine = support::engine_with_namespace(NS);
    engine
        .store
        .create(
            "pods",
            NS,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {
                    // The system pool's taint, so the pod binds without Karpenter.
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                    "containers": [
                        {"name": "app", "image": BAD},
                        {"name": "side", "image": "side:1"},
                    ],
                },
                // What the API server's defaults give a new pod (the store takes it as is).
                "status": {"phase": "Pending"},
            }),
        )
        .expect("pod");
    let key = ObjectKey::new("pods", NS, "p");
    engine.run_until(Duration::from_secs(300));
    let pod = engine.store.get(&key).expect("the pod");
    assert!(pod["spec"]["nodeName"].is_string(), "bound: {pod:#}");
    assert_eq!(pod["status"]["phase"], "Pending", "{pod:#}");
    let app = container_state(&pod, "app");
    assert_eq!(app["waiting"]["reason"], "InvalidImageName", "{pod:#}");
    assert_eq!(
        app["waiting"]["message"],
        format!("Failed to apply default image tag \"{BAD}\": couldn't parse image reference \"{BAD}\": invalid reference format")
    );
    assert_eq!(
        container_state(&pod, "side")["waiting"]["reason"],
        "ContainerCreating",
        "{pod:#}"
    );
    assert_eq!(
        pod["status"]["conditions"].as_array().map(|c| c
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "False")),
        Some(true),
        "{pod:#}"
    );
    // Said once in five simulated minutes, not on every update of the pod.
    assert_eq!(kubelet_events(&engine, "Failed"), 1);
    assert_eq!(kubelet_events(&engine, "InspectFailed"), 1);

    // `kubectl set image pod/p app=…`: the kubelet tries again and the pod runs.
    engine
        .store
        .update(&key, |o| {
            o["spec"]["containers"][0]["image"] = json!("acr.azurecr.io/team/consumer:1")
        })
        .expect("update");
    engine.run_until(Duration::from_secs(420));
    let pod = engine.store.get(&key).expect("the pod");
    assert_eq!(pod["status"]["phase"], "Running", "{pod:#}");
    assert!(
        container_state(&pod, "app")["running"].is_object(),
        "{pod:#}"
    );
}
