//! `edw gate` on the kube target of a served twin: a complete verdict (verdict.json checked
//! against fixtures/schemas/gate-verdict.schema.json with the Python `jsonschema` package,
//! verdict.md) marked SIMULATED, with the cluster's versions, the configuration's digests and
//! each check's reports; a required check that fails is named, and the exit code is the
//! checks' own; its runs go into `edw history`; a bad profile is refused naming its file and
//! culprit.

use crate::support::served::{edw_on_served_twin, serve_twin};
use crate::support::Env;

/// The verdict checked against the schema by a validator nobody here wrote; `None` (with the
/// reason printed) when Python's `jsonschema` is not installed.
fn schema_errors(verdict: &std::path::Path) -> Option<String> {
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/schemas/gate-verdict.schema.json"
    );
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1])); verdict = json.load(open(sys.argv[2]))\n\
        v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())\n\
        errors = [f'{list(e.path)}: {e.message}' for e in v.iter_errors(verdict)]\n\
        print('\\n'.join(errors)); sys.exit(1 if errors else 0)\n";
    let output = std::process::Command::new("python3")
        .args(["-c", script, schema])
        .arg(verdict)
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'jsonschema'") {
        println!("SKIPPED: Python's jsonschema is not installed (.ci/run installs it): the verdict's schema check");
        return None;
    }
    Some(if output.status.success() {
        String::new()
    } else {
        format!("{}{stderr}", String::from_utf8_lossy(&output.stdout))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_on_a_served_twin_writes_a_complete_simulated_verdict() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let _served = serve_twin(&env, &kubeconfig, &[]);
    // One required scenario that passes, one that cannot within its timeout, one optional.
    let profile = dir.path().join("profile.yaml");
    std::fs::write(
        &profile,
        "profile: test-gate\nversion: 3\nparallel: 3\nrequired:\n  - scenario: flow::activation\n    timeout: 30m\n  - scenario: flow::burst\n    timeout: 2s\noptional:\n  - scenario: flow::poison\n    timeout: 30m\n    prediction: fail\n",
    )
    .unwrap();
    let reports = dir.path().join("gate");
    let output = edw_on_served_twin(&env, &kubeconfig, &["gate", "--target", "kube"])
        .arg("--profile")
        .arg(&profile)
        .arg("--report-dir")
        .arg(&reports)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    // Simulated: the checks' own code, 1 here (a required check failed).
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("# edw gate: SIMULATED — not a verdict"),
        "{stdout}"
    );
    let path = reports.join("verdict.json");
    let verdict: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    if let Some(errors) = schema_errors(&path) {
        assert!(errors.is_empty(), "schema: {errors}\n{verdict:#}");
    }
    assert_eq!(verdict["outcome"], "simulated");
    assert_eq!(verdict["simulated"], true);
    assert_eq!(verdict["target"], "kube");
    assert_eq!(verdict["profile"], "test-gate");
    assert_eq!(verdict["profile_version"], 3);
    assert!(
        verdict["summary"]
            .as_str()
            .unwrap()
            .starts_with("SIMULATED — not a verdict: 1 of 2 required checks passed"),
        "{verdict:#}"
    );
    assert!(verdict["cluster"]["kubernetes"]
        .as_str()
        .unwrap()
        .starts_with("v1."));
    assert!(verdict["cluster"]["keda"]
        .as_str()
        .unwrap()
        .contains("keda-operator"));
    let checks = verdict["checks"].as_array().unwrap();
    let check = |name: &str| {
        checks
            .iter()
            .find(|c| c["scenario"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {verdict:#}"))
    };
    assert_eq!(check("flow::activation")["status"], "passed");
    assert_eq!(check("flow::burst")["status"], "failed");
    assert!(
        check("flow::burst")["reason"]
            .as_str()
            .unwrap()
            .starts_with("failed steps: "),
        "{verdict:#}"
    );
    assert_eq!(check("flow::poison")["required"], false);
    for c in checks {
        let dir = std::path::PathBuf::from(c["report_dir"].as_str().unwrap());
        assert!(dir.join("junit.xml").exists(), "{}", dir.display());
    }
    // The runs go into the history and its report (the kube target, end to end).
    let store = dir.path().join("history/runs.jsonl");
    let mut add = crate::support::cli::edw();
    add.args(["history", "add", "--store"]).arg(&store);
    for c in checks {
        add.arg(c["report_dir"].as_str().unwrap());
    }
    let added = add.output().unwrap();
    let added_out = String::from_utf8_lossy(&added.stdout);
    assert!(
        added.status.success(),
        "{added_out}{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert_eq!(
        added_out.matches(" on kube [SIMULATED] (").count(),
        3,
        "{added_out}"
    );
    let report = crate::support::cli::edw()
        .args(["history", "report", "--store"])
        .arg(&store)
        .arg("--out")
        .arg(dir.path().join("history"))
        .output()
        .unwrap();
    assert!(report.status.success());
    let history = std::fs::read_to_string(dir.path().join("history/history.md")).unwrap();
    assert!(
        history.contains("## flow::activation on kube [SIMULATED] — phase.first_scale_out"),
        "{history}"
    );
    let markdown = std::fs::read_to_string(reports.join("verdict.md")).unwrap();
    for expected in [
        "# edw gate: SIMULATED — not a verdict",
        "| profile | test-gate (version 3, sha256 ",
        "| flow::burst | yes | ❌ failed |",
        "| flow::poison | optional |",
        "## Findings",
    ] {
        assert!(markdown.contains(expected), "{expected} not in\n{markdown}");
    }
}

#[test]
fn a_bad_profile_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("bad.yaml");
    std::fs::write(
        &profile,
        "profile: x\nversion: 1\nrequired:\n  - scenario: flow::nope\n    timeout: 1m\n",
    )
    .unwrap();
    let output = crate::support::cli::edw()
        .args(["gate", "--profile"])
        .arg(&profile)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "profile {}: scenario \"flow::nope\"",
            profile.display()
        )),
        "{stderr}"
    );
}

/// The local target (the twin in this process): a simulated verdict, exit 0 when every
/// required check passed (the checks' own code, never a release verdict).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_on_the_local_target_is_simulated_with_its_checks_code() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.yaml");
    std::fs::write(
        &profile,
        "profile: local-gate\nversion: 1\nrequired:\n  - {scenario: flow::activation, timeout: 30m}\n",
    )
    .unwrap();
    let reports = dir.path().join("gate");
    let mut command = crate::support::cli::edw_binary();
    command
        .args(["gate", "--target", "local", "--profile"])
        .arg(&profile)
        .arg("--report-dir")
        .arg(&reports);
    crate::support::served::use_azurite(&mut command, &env);
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdict: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("verdict.json")).unwrap())
            .unwrap();
    if let Some(errors) = schema_errors(&reports.join("verdict.json")) {
        assert!(errors.is_empty(), "schema: {errors}\n{verdict:#}");
    }
    assert_eq!(verdict["outcome"], "simulated");
    assert_eq!(verdict["target"], "local");
    assert_eq!(verdict["checks"][0]["status"], "passed");
    assert!(
        stdout.starts_with("# edw gate: SIMULATED — not a verdict"),
        "{stdout}"
    );
}
