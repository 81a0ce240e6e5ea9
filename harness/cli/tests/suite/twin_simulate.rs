//! `edw twin simulate` input through the binary: what a person writes is accepted (typed
//! `--set`, durations as "120s", a multi-document file, an object exported with its status),
//! and the rest is refused with exit 2 naming the flag or field, never a panic.

use std::path::Path;

use crate::support::cli::{edw, run};

/// The walkthrough's ScaledObject with its numbers, and the TriggerAuthentication after it
/// (the shape of `keda-scaleobject-workload-id.sh`'s here-document).
const WALKTHROUGH: &str = "\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: aws2az-queue-scaleobj
  namespace: aqs-demo
spec:
  scaleTargetRef:
    name: aqs-app
  minReplicaCount: 0
  maxReplicaCount: 15
  pollingInterval: 30
  cooldownPeriod: 10
  triggers:
  - type: azure-queue
    authenticationRef:
      name: keda-az-credentials
    metadata:
      queueName: aws2azmsgs
      accountName: storaksdemo
      queueLength: '5'
      activationQueueLength: '20'
      cloud: AzurePublicCloud
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: keda-az-credentials
  namespace: aqs-demo
spec:
  podIdentity:
    provider: azure-workload
";

/// The server fields `kubectl get scaledobject -o yaml` adds to it.
const SERVER_FIELDS: &str = "  uid: 8af41e13-39a6-4e03-aa87-4c8cb43fdf73
  resourceVersion: '1781606986817375011'
  generation: 1
  creationTimestamp: '2026-06-16T10:32:16Z'
  finalizers:
  - finalizer.keda.sh
";
/// The status `kubectl get -o yaml` showed for it from `edw twin serve --deploy-sample`.
const STATUS: &str = "\
status:
  authenticationsTypes: keda-az-credentials
  conditions:
  - {lastTransitionTime: '2026-12-06T04:58:18Z', message: ScaledObject is defined correctly and is ready for scaling, reason: ScaledObjectReady, status: 'True', type: Ready}
  - {lastTransitionTime: '2026-12-06T04:58:18Z', message: Scaling is not performed because triggers are not active, reason: ScalerNotActive, status: 'False', type: Active}
  - {lastTransitionTime: '2026-12-06T04:58:48Z', message: '', reason: ScalingDisabled, status: 'True', type: HPAActive}
  externalMetricNames:
  - s0-azure-queue-aws2azmsgs
  hpaName: keda-hpa-aws2az-queue-scaleobj
  lastActiveTime: '2026-06-16T10:49:46Z'
  observedGeneration: 1
  originalReplicaCount: 1
  scaleTargetKind: apps/v1.Deployment
  triggersActivity:
    s0-azure-queue-aws2azmsgs:
      isActive: false
  triggersTypes: azure-queue
";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn simulate(args: &[&str]) -> (i32, String, String) {
    run(edw().args(["twin", "simulate"]).args(args))
}

#[test]
fn typed_parameters_and_durations_are_accepted_as_a_person_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let params = write(
        dir.path(),
        "params.json",
        r#"{"initialize_delay": "120s", "max_pods": 110, "hpa_tolerance": 0.2}"#,
    );
    let (code, stdout, stderr) = simulate(&[
        "--burst",
        "300@0",
        "--params",
        &params,
        "--set",
        "daemonset_cpu_millis=300",
        "--set",
        "nap_startup_taint=false",
        "--duration",
        "300",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("DaemonSet CPU 300m per node, node ready 120 s after its NodeClaim"),
        "{stdout}"
    );
}

#[test]
fn what_cannot_be_simulated_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let so =
        |edit: &dyn Fn(&str) -> String, name: &str| write(dir.path(), name, &edit(WALKTHROUGH));
    let min_over_max = so(
        &|t| {
            t.replace("minReplicaCount: 0", "minReplicaCount: 5")
                .replace("maxReplicaCount: 15", "maxReplicaCount: 2")
        },
        "min-over-max.yaml",
    );
    let negative = so(
        &|t| t.replace("queueLength: '5'", "queueLength: '-3'"),
        "negative.yaml",
    );
    let kafka = so(
        &|t| t.replace("type: azure-queue", "type: kafka"),
        "kafka.yaml",
    );
    let template = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/manifests/scaledobject.yaml"
    );
    let params = write(dir.path(), "params.json", r#"{"no_such_parameter": 1}"#);
    for (args, named) in [
        (
            vec!["--burst", "1000@-5"],
            "--burst \"1000@-5\": \"-5\" is not seconds",
        ),
        (
            vec!["--burst", "0@5"],
            "--burst \"0@5\": \"0\" is not a count of 1 or more",
        ),
        (
            vec!["--rate", "5@100..50"],
            "--rate \"5@100..50\": \"50\" is not a time after 100",
        ),
        (
            vec!["--rate", "0@0..60"],
            "is not a rate above 0 per second",
        ),
        (
            vec!["--scaled-object", &min_over_max],
            "spec.minReplicaCount is 5, expected at most maxReplicaCount (2)",
        ),
        (
            vec!["--scaled-object", &negative],
            "queueLength is \"\\\"-3\\\"\"",
        ),
        (vec!["--scaled-object", &kafka], "no azure-queue trigger"),
        (vec!["--scaled-object", template], "unrendered template"),
        (
            vec!["--set", "region=westeurope"],
            "region: \"westeurope\" has no price snapshot",
        ),
        (
            vec!["--set", "keda_version=latest"],
            "keda_version: \"latest\" is not MAJOR.MINOR.PATCH",
        ),
        (
            vec!["--params", &params],
            "the twin has no parameter \"no_such_parameter\"",
        ),
        (
            vec!["--queue", "myqueue"],
            "--queue does nothing for `edw twin simulate`",
        ),
        (vec!["--storage-auth", "key"], "--storage-auth does nothing"),
    ] {
        let (code, stdout, stderr) = simulate(&args);
        assert_eq!(code, 2, "{args:?}\n{stdout}\n{stderr}");
        assert!(
            stderr.contains(named),
            "{args:?}: expected {named:?} in\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A multi-document file is read like check-config reads it (the ScaledObject, not the first
/// document), and the same object exported from a cluster (server fields, `status:`)
/// predicts exactly what its spec alone predicts.
#[test]
fn an_exported_scaled_object_predicts_what_its_spec_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let spec_only = write(dir.path(), "walkthrough.yaml", WALKTHROUGH);
    let (scaled_object, _) = WALKTHROUGH.split_once("---\n").unwrap();
    let exported = scaled_object.replace(
        "  namespace: aqs-demo\nspec:",
        &format!("  namespace: aqs-demo\n{SERVER_FIELDS}spec:"),
    ) + STATUS;
    // The TriggerAuthentication first this time: the ScaledObject is found anyway.
    let (_, trigger_auth) = WALKTHROUGH.split_once("---\n").unwrap();
    let exported = write(
        dir.path(),
        "exported.yaml",
        &format!("{trigger_auth}---\n{exported}"),
    );
    let phases = |file: &str| {
        let (code, stdout, stderr) =
            simulate(&["--burst", "1000@30", "--scaled-object", file, "--json"]);
        assert_eq!(code, 0, "{file}\n{stdout}\n{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert!(report["phases"]["first_node"].is_number(), "{stdout}");
        (report["phases"].clone(), report["samples"].clone())
    };
    assert_eq!(phases(&exported), phases(&spec_only));
}

/// The phases count from the load start, as `edw run`'s do, and say so; every figure names its
/// clock (simulated seconds); the nodes the twin chose are listed by VM size with node-hours and
/// a cost labelled simulated, with the price snapshot's region and date.
#[test]
fn phases_count_from_the_load_start_and_the_nodes_are_sized_and_priced() {
    let (code, stdout, stderr) = simulate(&["--burst", "1000@30"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("t(sim s)"), "{stdout}");
    assert!(
        stdout.contains(
            "phases in simulated seconds from the load start (t = 30.0 s on the timeline above):"
        ),
        "{stdout}"
    );
    // KEDA polls at 30 s: the burst at 30 s is seen at once, 0 s after the load start.
    assert!(stdout.contains("first scale-out 0.0 s,"), "{stdout}");
    assert!(
        stdout.contains(
            "Karpenter nodes by size (node-hours in simulated time, from each NodeClaim's creation to its deletion):\n  Standard_D2als_v6: 3 nodes, "
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("estimated cost (SIMULATED): $")
            && stdout.contains("prices: eastus snapshot of 2026-06-18"),
        "{stdout}"
    );

    let (code, json, stderr) = simulate(&["--burst", "1000@30", "--json"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["load_start"], 30.0);
    assert_eq!(
        report["phase_clock"],
        "simulated seconds (the twin's virtual clock) after the load start"
    );
    assert_eq!(report["phases"]["first_scale_out"], 0.0);
    // The same instant on the samples' clock is the load start plus the phase.
    let first_node = report["phases"]["first_node"].as_f64().unwrap();
    let samples = report["samples"].as_array().unwrap();
    let first_node_sample = samples
        .iter()
        .find(|s| s["nodes"].as_u64() > Some(0))
        .unwrap();
    assert_eq!(first_node_sample["t"].as_f64(), Some(30.0 + first_node));
    let cost = &report["cost"];
    assert_eq!(cost["price_region"], "eastus");
    assert_eq!(cost["price_date"], "2026-06-18");
    assert_eq!(cost["sizes"][0]["size"], "Standard_D2als_v6");
    assert_eq!(cost["sizes"][0]["nodes"], 3);
    assert_eq!(cost["sizes"][0]["usd_per_hour"], 0.0804);
    let node_hours = cost["node_hours"].as_f64().unwrap();
    // Three claims from about 32-67 s to their deletion after consolidation (< 255 s).
    assert!((0.1..0.2).contains(&node_hours), "{cost}");
    let total = cost["total_usd"].as_f64().unwrap();
    assert!((total - node_hours * 0.0804).abs() < 1e-9, "{cost}");
}

/// A steady rate the pods outpace empties the queue while the load still runs, and KEDA scales
/// to zero between bursts of activation: "scaled to zero" is the final one, after the final
/// drain, and the earlier ones are stated (it used to print "drained 618.7 s, scaled to zero
/// 210.0 s", the first interim zero).
#[test]
fn a_rate_profile_is_scaled_to_zero_after_it_drains_and_says_what_happened_between() {
    let (code, json, stderr) = simulate(&["--rate", "5@0..600", "--json"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let phase = |name: &str| report["phases"][name].as_f64().unwrap();
    assert!(phase("drained") >= 600.0, "{}", report["phases"]);
    assert!(
        phase("scaled_to_zero") >= phase("drained"),
        "{}",
        report["phases"]
    );
    assert!(
        phase("nodes_consolidated") >= phase("scaled_to_zero"),
        "{}",
        report["phases"]
    );
    let interim = report["zero_replicas_while_loading"].as_array().unwrap();
    assert!(!interim.is_empty(), "{report}");
    assert!(interim
        .iter()
        .all(|t| t.as_f64().unwrap() < phase("drained")));

    let (code, stdout, stderr) = simulate(&["--rate", "5@0..600"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("drained for good 6"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "the replicas also fell to zero {} time",
            interim.len()
        )) && stdout.contains(
            "KEDA scaled to zero, and scaled out again once the queue passed activationQueueLength"
        ),
        "{stdout}"
    );
}
