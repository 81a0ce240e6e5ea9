//! `edw check-config` through the binary: the walkthrough's findings and exit codes, fixed and
//! deliberately wrong configurations, the deploy script's unset resource group, bad input
//! (exit 2, naming the file) and JSON output.

use std::path::Path;
use std::process::Output;

/// `edw check-config` in `dir` with a clean configuration.
fn check_config(dir: &Path, args: &[&str]) -> Output {
    crate::support::cli::edw()
        .current_dir(dir)
        .arg("check-config")
        .args(args)
        .output()
        .expect("run edw")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn both(out: &Output) -> String {
    format!("--- stdout\n{}--- stderr\n{}", stdout(out), stderr(out))
}

/// The findings of a `--json` run, by id.
fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", both(out)))
}

fn finding<'a>(report: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["id"] == id)
}

/// The walkthrough's ScaledObject with `activation` and `max`.
fn scaled_object(activation: u64, max: u64) -> String {
    format!(
        "apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: aws2az-queue-scaleobj
  namespace: aqs-demo
spec:
  scaleTargetRef:
    name: aqs-app
  minReplicaCount: 0
  maxReplicaCount: {max}
  pollingInterval: 30
  cooldownPeriod: 10
  triggers:
  - type: azure-queue
    metadata:
      queueName: aws2azmsgs
      accountName: storaksdemo
      queueLength: '5'
      activationQueueLength: '{activation}'
"
    )
}

#[test]
fn the_walkthroughs_defaults_strand_twenty_messages_and_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check_config(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("RISK stranded-tail"), "{text}");
    assert!(text.contains("up to 20 messages"), "{text}");
    assert!(
        text.contains("WARNING cooldown-shorter-than-polling"),
        "{text}"
    );
    assert!(
        text.contains(
            "ScaledObject aws2az-queue-scaleobj: spec.triggers[0].metadata.activationQueueLength"
        ),
        "{text}"
    );
    // No deploy script here, and it says so.
    assert!(text.contains("deploy script: none"), "{text}");
    // The burst the checks assume is explained.
    assert!(
        text.contains("burst of 75 messages (no --burst: the smallest that asks for every replica, maxReplicaCount 15 x queueLength 5"),
        "{text}"
    );
    assert!(
        text.contains("deployment/infra/deploy.sh does not exist"),
        "{text}"
    );
    // The cooldown, and the captured pool's karpenter.sh/v1beta1 (AKS NAP serves only v1).
    assert!(text.contains("1 risk, 2 warning"), "{text}");
    assert!(text.contains("WARNING nodepool-v1beta1"), "{text}");
    // Each block has its five lines.
    for label in ["subject:", "message:", "consequence:", "fix:"] {
        assert!(text.matches(label).count() >= 2, "{label}: {text}");
    }

    let out = check_config(dir.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let report = json(&out);
    let stranded = finding(&report, "stranded-tail").expect("stranded-tail");
    assert_eq!(stranded["severity"], "risk");
    assert!(
        stranded["consequence"]
            .as_str()
            .is_some_and(|c| c.contains("20 messages")),
        "{stranded}"
    );
    assert!(finding(&report, "cooldown-shorter-than-polling").is_some());
    assert_eq!(report["passed"], false);
    assert_eq!(report["counts"]["risk"], 1);
    assert_eq!(report["deploy_script"], serde_json::Value::Null);
}

#[test]
fn activation_zero_strands_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("so.yaml");
    std::fs::write(&file, scaled_object(0, 15)).expect("write");
    let out = check_config(dir.path(), &["--scaled-object", "so.yaml", "--json"]);
    let report = json(&out);
    assert!(finding(&report, "stranded-tail").is_none(), "{report:#}");
    // Only the cooldown warning and information are left: no risk, exit 0.
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(report["scaled_object"]["source"], "so.yaml");
}

#[test]
fn two_replicas_miss_a_two_minute_drain_of_a_thousand() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("so.yaml"), scaled_object(0, 2)).expect("write");
    let args = [
        "--scaled-object",
        "so.yaml",
        "--burst",
        "1000",
        "--drain-target",
        "2m",
    ];
    let out = check_config(dir.path(), &args);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("RISK drain-target"), "{text}");
    assert!(
        text.contains("maxReplicaCount 2 drains a burst of 1000"),
        "{text}"
    );
    assert!(text.contains("drain target 120 s"), "{text}");

    let out = check_config(dir.path(), &[&args[..], &["--json"]].concat());
    let report = json(&out);
    let drain = finding(&report, "drain-target").expect("drain-target");
    assert!(
        drain["message"]
            .as_str()
            .is_some_and(|m| m.contains("maxReplicaCount 2")),
        "{drain}"
    );
    assert_eq!(report["burst"], 1000);
    assert_eq!(report["drain_target_seconds"], 120.0);

    // A target the walkthrough meets: no drain finding.
    std::fs::write(dir.path().join("so15.yaml"), scaled_object(0, 15)).expect("write");
    let out = check_config(
        dir.path(),
        &[
            "--scaled-object",
            "so15.yaml",
            "--burst",
            "1000",
            "--drain-target",
            "1h",
            "--json",
        ],
    );
    assert!(
        finding(&json(&out), "drain-target").is_none(),
        "{}",
        both(&out)
    );
}

#[test]
fn a_one_cpu_nodepool_cannot_hold_the_replicas() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("pool.yaml"),
        "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: small\nspec:\n  limits: {cpu: \"1\"}\n  disruption:\n    budgets:\n    - nodes: 100%\n",
    )
    .expect("write");
    let out = check_config(dir.path(), &["--nodepool", "pool.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("RISK nodepool-limit"), "{text}");
    assert!(text.contains("NodePool small: spec.limits.cpu"), "{text}");
    assert!(text.contains("holds 3 of maxReplicaCount 15"), "{text}");
}

#[test]
fn the_samples_deploy_script_leaves_the_role_assignments_unscoped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = "#!/bin/bash
source ./environmentVariables.sh
RESOURCE_GROUP=\"rg-$LOCAL_NAME-$SUFFIX\"
az storage account create --name $AZURE_STORAGE_ACCOUNT_NAME --resource-group $RESOURCE_GROUP
STORAGE_ACCOUNT_ID=$(az storage account show --name $AZURE_STORAGE_ACCOUNT_NAME --resource-group $STORAGE_RG_NAME --query id -o tsv)
az role assignment create --role \"Storage Queue Data Contributor\" --assignee $PRINCIPAL --scope $STORAGE_ACCOUNT_ID
az role assignment create --role \"Storage Table Data Contributor\" --assignee $PRINCIPAL --scope $STORAGE_ACCOUNT_ID
";
    // At the default path, found without the flag.
    let infra = dir.path().join("deployment/infra");
    std::fs::create_dir_all(&infra).expect("mkdir");
    std::fs::write(infra.join("deploy.sh"), script).expect("write");
    let out = check_config(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("RISK role-assignment-scope"), "{text}");
    assert!(text.contains("deployment/infra/deploy.sh:5"), "{text}");
    assert!(text.contains("Storage Queue Data Contributor"), "{text}");

    // Given explicitly; fixed, it is gone.
    let fixed = script.replace(
        "STORAGE_ACCOUNT_ID=",
        "export STORAGE_RG_NAME=$RESOURCE_GROUP\nSTORAGE_ACCOUNT_ID=",
    );
    std::fs::write(dir.path().join("fixed.sh"), fixed).expect("write");
    let out = check_config(dir.path(), &["--deploy-script", "fixed.sh", "--json"]);
    let report = json(&out);
    assert!(
        finding(&report, "role-assignment-scope").is_none(),
        "{report:#}"
    );
    assert_eq!(report["deploy_script"], "fixed.sh");
}

/// The sample's deploy.sh passes `--kubernetes-version "$K8sversion"` and takes the value
/// from the environmentVariables.sh it sources (1.30 in the sample): past AKS support. Written
/// here in the sample's shape (its text is not copied).
#[test]
fn the_samples_pinned_kubernetes_version_is_past_aks_support() {
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = dir.path().join("deployment/infra");
    std::fs::create_dir_all(&infra).expect("mkdir");
    std::fs::write(
        infra.join("deploy.sh"),
        "#!/bin/bash\nsource ./deployment/environmentVariables.sh\naz aks create \\\n--name \"$AKS_CLUSTER_NAME\" \\\n--resource-group \"$RESOURCE_GROUP\" \\\n--enable-keda \\\n--kubernetes-version \"$K8sversion\" \\\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("deployment/environmentVariables.sh"),
        "#!/bin/bash\n#K8s Variables\nexport K8sversion=\"1.30\"\nexport LOCATION=\"westus3\"\n",
    )
    .expect("write");
    let out = check_config(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = stdout(&out);
    assert!(
        text.contains("RISK kubernetes-version-unsupported"),
        "{text}"
    );
    assert!(text.contains("deployment/infra/deploy.sh:7"), "{text}");
    assert!(
        text.contains("--kubernetes-version $K8sversion, which is 1.30 (K8sversion=1.30 at ./deployment/environmentVariables.sh:3)"),
        "{text}"
    );
    assert!(
        text.contains("AKS standard support for 1.30 ended 2025-08-22"),
        "{text}"
    );
    assert!(
        text.contains("`az aks get-versions --location westus3 --output table`"),
        "{text}"
    );

    // Without the sourced file, the value comes from the configuration: the sample's default.
    std::fs::remove_file(dir.path().join("deployment/environmentVariables.sh")).expect("rm");
    let report = json(&check_config(dir.path(), &["--json"]));
    let f = finding(&report, "kubernetes-version-unsupported").expect("finding");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("K8sversion=1.30 from the sample's default"),
        "{f:#}"
    );
    assert!(
        report["notes"].to_string().contains("sources ./deployment/environmentVariables.sh, which is neither in the working directory nor beside the script"),
        "{report:#}"
    );
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check_config(dir.path(), &["--scaled-object", "missing-so.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("missing-so.yaml"), "{}", both(&out));

    let out = check_config(dir.path(), &["--deploy-script", "missing-deploy.sh"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("missing-deploy.sh"), "{}", both(&out));

    std::fs::write(
        dir.path().join("deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: aqs-app}\n",
    )
    .expect("write");
    let out = check_config(dir.path(), &["--scaled-object", "deployment.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let err = stderr(&out);
    assert!(
        err.contains("deployment.yaml") && err.contains("not a ScaledObject (kinds: Deployment)"),
        "{err}"
    );

    std::fs::write(dir.path().join("broken.yaml"), "kind: [ScaledObject\n").expect("write");
    let out = check_config(dir.path(), &["--scaled-object", "broken.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("broken.yaml"), "{}", both(&out));

    std::fs::write(
        dir.path().join("odd.yaml"),
        scaled_object(20, 15).replace("maxReplicaCount: 15", "maxReplicaCount: lots"),
    )
    .expect("write");
    let out = check_config(dir.path(), &["--scaled-object", "odd.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let err = stderr(&out);
    assert!(
        err.contains("odd.yaml") && err.contains("spec.maxReplicaCount"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
