//! `edw twin simulate` input through the binary: what a person writes is accepted (typed
//! `--set`, durations as "120s", a multi-document file, an object exported with its status),
//! and the rest is refused with exit 2 naming the flag or field, never a panic.

mod support;

use std::path::Path;

use support::cli::{edw, run};

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
        "/../fixtures/manifests/scaledobject.yaml"
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
