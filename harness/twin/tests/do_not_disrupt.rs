//! Karpenter honours the pod annotation `karpenter.sh/do-not-disrupt: "true"` on the virtual
//! clock: a node running such a pod is never a disruption candidate, so single-node
//! ("Underutilized") consolidation leaves it alone, while the same arrangement without the
//! annotation (or with another value) is consolidated to one node.
//!
//! The arrangement: a pool of 2-vCPU nodes (`Standard_D2als_v6`, 1900m allocatable, 100m of it
//! for the DaemonSet pod). `x` (300m) and `z` (1300m) share node 1; `y` (300m) no longer fits
//! there and gets node 2. Once `z` is scaled to 0 each node holds one 300m pod that would fit
//! on the other, so one node can go.

mod support;

use std::sync::Arc;
use std::time::Duration;

use edw_twin::engine::Engine;
use edw_twin::store::{LabelSelector, ObjectKey};
use serde_json::{json, Value};

const NS: &str = "dnd";
const POOL: &str = "small";
const SKU: &str = "Standard_D2als_v6";
const DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";

fn engine() -> Engine {
    let engine = support::engine_with_namespace(NS);
    engine
        .store
        .create(
            "nodepools.karpenter.sh",
            "",
            json!({
                "apiVersion": "karpenter.sh/v1",
                "kind": "NodePool",
                "metadata": {"name": POOL},
                "spec": {
                    "template": {
                        "spec": {
                            "nodeClassRef": {"group": "karpenter.azure.com", "kind": "AKSNodeClass", "name": "default"},
                            "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [SKU]}],
                        },
                    },
                    "disruption": {
                        "consolidationPolicy": "WhenEmptyOrUnderutilized",
                        "consolidateAfter": "0s",
                        "budgets": [{"nodes": "1"}],
                    },
                },
            }),
        )
        .expect("nodepool");
    engine
}

/// A one-replica Deployment `app` whose pod requests `cpu` and carries `annotation` (the
/// do-not-disrupt value) when given.
fn create_deployment(engine: &Engine, app: &str, cpu: &str, annotation: Option<&str>) {
    let mut template = json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "nodeSelector": {"karpenter.sh/nodepool": POOL},
            "containers": [{"name": "app", "image": "app:1", "resources": {"requests": {"cpu": cpu, "memory": "256Mi"}}}],
        },
    });
    if let Some(value) = annotation {
        template["metadata"]["annotations"] = json!({DO_NOT_DISRUPT: value});
    }
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": app}},
            "template": template,
        },
    });
    engine
        .store
        .create("deployments.apps", NS, deployment)
        .expect("deployment");
}

fn scale(engine: &Engine, app: &str, replicas: i64) {
    engine
        .store
        .update(&ObjectKey::new("deployments.apps", NS, app), |d| {
            d["spec"]["replicas"] = json!(replicas);
        })
        .expect("scale")
        .expect("the deployment exists");
}

fn str_of<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

fn pods_of(engine: &Engine, app: &str) -> Vec<Arc<Value>> {
    let selector = LabelSelector::parse(&format!("app={app}")).expect("selector");
    engine.store.list("pods", Some(NS), Some(&selector), None).0
}

/// The one pod of `app`, Running and bound: (pod name, node name).
fn running_pod(engine: &Engine, app: &str) -> (String, String) {
    let pods = pods_of(engine, app);
    let summary = describe(engine);
    assert_eq!(pods.len(), 1, "one {app} pod; {summary}");
    let pod = &pods[0];
    assert_eq!(
        str_of(pod, "/status/phase"),
        Some("Running"),
        "{app} pod Running; {summary}"
    );
    assert!(
        pod.pointer("/metadata/deletionTimestamp").is_none(),
        "{app} pod not deleting; {summary}"
    );
    let node = str_of(pod, "/spec/nodeName")
        .unwrap_or_else(|| panic!("{app} pod bound; {summary}"))
        .to_owned();
    (str_of(pod, "/metadata/name").unwrap().to_owned(), node)
}

/// The pool's nodes, by name.
fn pool_nodes(engine: &Engine) -> Vec<String> {
    let selector =
        LabelSelector::parse(&format!("karpenter.sh/nodepool={POOL}")).expect("selector");
    let (nodes, _) = engine.store.list("nodes", None, Some(&selector), None);
    let mut names: Vec<String> = nodes
        .iter()
        .filter_map(|n| str_of(n, "/metadata/name").map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn nodeclaims(engine: &Engine) -> usize {
    engine
        .store
        .list("nodeclaims.karpenter.sh", None, None, None)
        .0
        .len()
}

/// Karpenter's events of `reason`, as `kind/name: message`.
fn karpenter_events(engine: &Engine, reason: &str) -> Vec<String> {
    let (events, _) = engine.store.list("events", None, None, None);
    events
        .iter()
        .filter(|e| str_of(e, "/source/component") == Some("karpenter"))
        .filter(|e| str_of(e, "/reason") == Some(reason))
        .map(|e| {
            format!(
                "{}/{}: {}",
                str_of(e, "/involvedObject/kind").unwrap_or_default(),
                str_of(e, "/involvedObject/name").unwrap_or_default(),
                str_of(e, "/message").unwrap_or_default()
            )
        })
        .collect()
}

/// What a failure message should show: time, pool nodes, where every app's pods are.
fn describe(engine: &Engine) -> String {
    let pods: Vec<String> = ["x", "y", "z"]
        .iter()
        .flat_map(|app| pods_of(engine, app))
        .map(|p| {
            format!(
                "{} {} on {} {}",
                str_of(&p, "/metadata/name").unwrap_or_default(),
                str_of(&p, "/status/phase").unwrap_or_default(),
                str_of(&p, "/spec/nodeName").unwrap_or("-"),
                if p.pointer("/metadata/deletionTimestamp").is_some() {
                    "(deleting)"
                } else {
                    ""
                }
            )
        })
        .collect();
    format!(
        "at {:?}: nodes {:?}, nodeclaims {}, pods {:?}, disruptions {:?}",
        engine.now(),
        pool_nodes(engine),
        nodeclaims(engine),
        pods,
        karpenter_events(engine, "DisruptionTerminating")
    )
}

/// Where the arrangement left the pods before the decisive phase.
struct Arrangement {
    x: (String, String),
    y: (String, String),
}

/// Builds the arrangement (x and z on node 1, y on node 2), asserting each step, then scales
/// z to 0 so each node holds one small pod. `x_annotation` / `y_annotation` are the
/// do-not-disrupt values on x's and y's pods.
fn arrange(
    engine: &mut Engine,
    x_annotation: Option<&str>,
    y_annotation: Option<&str>,
) -> Arrangement {
    create_deployment(engine, "x", "300m", x_annotation);
    create_deployment(engine, "z", "1300m", None);
    engine.run_until(Duration::from_secs(240));
    let x = running_pod(engine, "x");
    let z = running_pod(engine, "z");
    assert_eq!(
        str_of(
            &pods_of(engine, "x")[0],
            "/metadata/annotations/karpenter.sh~1do-not-disrupt"
        ),
        x_annotation,
        "the template's annotation on x's pod"
    );
    assert_eq!(x.1, z.1, "x and z share node 1; {}", describe(engine));
    assert_eq!(
        pool_nodes(engine),
        vec![x.1.clone()],
        "{}",
        describe(engine)
    );

    // 100m DaemonSet + 300m + 1300m leave 200m on node 1: y needs a second node.
    create_deployment(engine, "y", "300m", y_annotation);
    engine.run_until(Duration::from_secs(480));
    let y = running_pod(engine, "y");
    assert_eq!(
        str_of(
            &pods_of(engine, "y")[0],
            "/metadata/annotations/karpenter.sh~1do-not-disrupt"
        ),
        y_annotation,
        "the template's annotation on y's pod"
    );
    assert_ne!(y.1, x.1, "y on node 2; {}", describe(engine));
    assert_eq!(pool_nodes(engine).len(), 2, "{}", describe(engine));
    assert_eq!(nodeclaims(engine), 2, "{}", describe(engine));
    // Neither node's pods fit on the other while z runs: nothing was disrupted yet.
    assert_eq!(running_pod(engine, "x"), x, "{}", describe(engine));
    assert!(
        karpenter_events(engine, "DisruptionTerminating").is_empty(),
        "{}",
        describe(engine)
    );

    scale(engine, "z", 0);
    engine.run_until(Duration::from_secs(520));
    assert!(
        pods_of(engine, "z").is_empty(),
        "z gone; {}",
        describe(engine)
    );
    Arrangement { x, y }
}

/// Runs until `until`, asserting at every minute that both pool nodes remain and that x and y
/// are the same pods on the same nodes.
fn assert_kept_until(engine: &mut Engine, arrangement: &Arrangement, until: Duration) {
    let mut nodes = vec![arrangement.x.1.clone(), arrangement.y.1.clone()];
    nodes.sort();
    while engine.now() < until {
        let next = (engine.now() + Duration::from_secs(60)).min(until);
        engine.run_until(next);
        assert_eq!(pool_nodes(engine), nodes, "{}", describe(engine));
        assert_eq!(nodeclaims(engine), 2, "{}", describe(engine));
        assert_eq!(
            running_pod(engine, "x"),
            arrangement.x,
            "{}",
            describe(engine)
        );
        assert_eq!(
            running_pod(engine, "y"),
            arrangement.y,
            "{}",
            describe(engine)
        );
    }
    let disruptions = karpenter_events(engine, "DisruptionTerminating");
    assert!(disruptions.is_empty(), "{}", describe(engine));
    assert!(
        karpenter_events(engine, "Evicted").is_empty(),
        "{}",
        describe(engine)
    );
}

/// Runs until the pool is down to one node (at most `until`), then asserts x and y run there.
/// Returns the surviving node.
fn assert_consolidated_by(engine: &mut Engine, until: Duration) -> String {
    while engine.now() < until && pool_nodes(engine).len() > 1 {
        let next = (engine.now() + Duration::from_secs(10)).min(until);
        engine.run_until(next);
    }
    // Let the evicted pod's replacement start on the remaining node.
    let settle = engine.now() + Duration::from_secs(60);
    engine.run_until(settle);
    let nodes = pool_nodes(engine);
    assert_eq!(
        nodes.len(),
        1,
        "consolidated to one node; {}",
        describe(engine)
    );
    assert_eq!(nodeclaims(engine), 1, "{}", describe(engine));
    let x = running_pod(engine, "x");
    let y = running_pod(engine, "y");
    assert_eq!(x.1, nodes[0], "{}", describe(engine));
    assert_eq!(y.1, nodes[0], "{}", describe(engine));
    let disruptions = karpenter_events(engine, "DisruptionTerminating");
    assert!(
        disruptions
            .iter()
            .any(|e| e.ends_with("Disrupting Node: Underutilized")),
        "{}",
        describe(engine)
    );
    nodes[0].clone()
}

const HALF_HOUR_AFTER: Duration = Duration::from_secs(520 + 30 * 60);

#[test]
fn without_the_annotation_one_of_the_two_nodes_is_consolidated() {
    let mut engine = engine();
    let arrangement = arrange(&mut engine, None, None);
    let survivor = assert_consolidated_by(&mut engine, HALF_HOUR_AFTER);
    // Whichever node went, its pod was evicted and recreated under a new name.
    let (x, y) = (running_pod(&engine, "x"), running_pod(&engine, "y"));
    let moved = if survivor == arrangement.x.1 {
        (&arrangement.y, &y)
    } else {
        (&arrangement.x, &x)
    };
    assert_ne!(moved.0 .0, moved.1 .0, "{}", describe(&engine));
}

#[test]
fn do_not_disrupt_on_both_pods_keeps_both_nodes_for_half_an_hour() {
    let mut engine = engine();
    let arrangement = arrange(&mut engine, Some("true"), Some("true"));
    assert_kept_until(&mut engine, &arrangement, HALF_HOUR_AFTER);
}

/// Only y is annotated. Between candidates with as many pods Karpenter takes the first
/// NodeClaim by name, which (with the twin's seeded names) is y's: without the check y's node
/// would be the one to go, so this also fails if the annotation were ignored.
#[test]
fn do_not_disrupt_on_one_pod_keeps_its_node_and_the_other_node_goes() {
    let mut engine = engine();
    let arrangement = arrange(&mut engine, None, Some("true"));
    let survivor = assert_consolidated_by(&mut engine, HALF_HOUR_AFTER);
    assert_eq!(
        survivor,
        arrangement.y.1,
        "y's node stays; {}",
        describe(&engine)
    );
    assert_eq!(
        running_pod(&engine, "y"),
        arrangement.y,
        "y never moved; {}",
        describe(&engine)
    );
    assert_ne!(
        running_pod(&engine, "x").0,
        arrangement.x.0,
        "x was evicted and recreated; {}",
        describe(&engine)
    );
}

#[test]
fn an_annotation_value_other_than_true_does_not_block_consolidation() {
    let mut engine = engine();
    arrange(&mut engine, Some("false"), Some("false"));
    assert_consolidated_by(&mut engine, HALF_HOUR_AFTER);
}
