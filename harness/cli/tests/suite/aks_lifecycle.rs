//! The `aks` target's life cycle against a mock Azure Resource Manager replaying real payloads
//! (tests/support/arm_replay.rs): the team's deploy command (its log in install.log, secrets
//! redacted, a failed or interrupted deploy read back for cleanup), and the deletion of the
//! resource group a run deployed, awaited, however the run ends: success, a failed step, a
//! panic, a step timeout, an interruption, and `edw run --deploy` whose target cannot open;
//! through the binary, SIGINT/SIGTERM during the deploy, and SIGKILL mid-deploy cleaned from the
//! ledger by `edw cleanup`.

use std::path::Path;
use std::process::Command;

use std::time::Duration;

use edw_engine::deploy_script::{DeployCommand, DeployError};
use edw_engine::runner::{
    Context, DeployedGroup, FlowSettings, RunOptions, Scenario, Step, StepFn,
};
use edw_model::report::StepStatus;

use crate::support::arm_replay::{calls, mount_resource_group, SUB};
use crate::support::cli::unreachable_kubeconfig;
use crate::support::served::local_target;
use crate::support::steps::{fails, hangs, panics, passes, run_interrupting};
use tokio_util::sync::CancellationToken;
use wiremock::MockServer;

const GROUP: &str = "rg-aksdemo-k3x9q2";

/// A fake deploy script: writes deploy.state as the sample's does (SUFFIX, then
/// RESOURCE_GROUP, …), prints a line with a secret, then `ending`.
fn fake_deploy(dir: &Path, ending: &str) -> String {
    let script = dir.join("deploy.sh");
    std::fs::create_dir_all(dir.join("deployment")).unwrap();
    std::fs::write(
        &script,
        format!(
            "#!/usr/bin/env bash\nset -e\necho \"$$\" > \"{pid}\"\necho 'Creating resource group {GROUP}'\n\
             echo SUFFIX=k3x9q2 >> deployment/deploy.state\necho RESOURCE_GROUP={GROUP} >> deployment/deploy.state\n\
             echo 'connection: DefaultEndpointsProtocol=https;AccountName=storaksdemok3x9q2;AccountKey=c2VjcmV0LWtleS1mb3ItdGhlLWRlcGxveS10ZXN0;EndpointSuffix=core.windows.net' >&2\n\
             {ending}\n",
            pid = dir.join("deploy.pid").display()
        ),
    )
    .unwrap();
    format!("bash {}", script.display())
}

fn command(dir: &Path, line: String) -> DeployCommand {
    DeployCommand {
        command: line,
        working_dir: dir.to_owned(),
        log: dir.join("reports/install.log"),
        state_file: dir.join("deployment/deploy.state"),
    }
}

#[tokio::test]
async fn a_deploy_streams_to_install_log_redacted_and_reads_deploy_state_back() {
    let dir = tempfile::tempdir().unwrap();
    let line = fake_deploy(
        dir.path(),
        "echo AZURE_STORAGE_ACCOUNT_NAME=storaksdemok3x9q2 >> deployment/deploy.state\necho done",
    );
    let seen = std::sync::Mutex::new(Vec::new());
    let deployed = command(dir.path(), line)
        .run(
            &|l: &str| seen.lock().unwrap().push(l.to_owned()),
            &CancellationToken::new(),
        )
        .await;
    let state = deployed.result.expect("deployed");
    assert_eq!(state.get("RESOURCE_GROUP").unwrap().value, GROUP);
    let log = std::fs::read_to_string(dir.path().join("reports/install.log")).unwrap();
    assert!(
        log.contains("Creating resource group") && log.contains("done"),
        "{log}"
    );
    assert!(
        !log.contains("c2VjcmV0LWtleS1mb3ItdGhlLWRlcGxveS10ZXN0"),
        "{log}"
    );
    assert_eq!(seen.lock().unwrap().len(), log.lines().count());
}

#[tokio::test]
async fn a_failed_deploy_names_command_and_status_and_leaves_the_partial_state() {
    let dir = tempfile::tempdir().unwrap();
    let line = fake_deploy(dir.path(), "echo 'ERROR: quota exceeded' >&2\nexit 3");
    let deployed = command(dir.path(), line.clone())
        .run(&|_: &str| {}, &CancellationToken::new())
        .await;
    let error = deployed.result.expect_err("failed");
    let text = error.to_string();
    assert!(matches!(error, DeployError::Failed { .. }), "{error:?}");
    assert!(
        text.contains(&line) && text.contains("exit status: 3"),
        "{text}"
    );
    assert!(
        text.contains("ERROR: quota exceeded"),
        "the log's tail: {text}"
    );
    let partial = deployed.partial.expect("a partial deploy.state");
    assert_eq!(partial.get("RESOURCE_GROUP").unwrap().value, GROUP);
}

#[tokio::test]
async fn an_interrupted_deploy_stops_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    // The script waits on a child: both must go.
    let line = fake_deploy(dir.path(), "sleep 60 &\nwait");
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    // Interrupted once the script has written its part of deploy.state (its pid file comes
    // first; an interrupt between the two left no partial state to read back).
    let state_file = dir.path().join("deployment/deploy.state");
    let watcher = tokio::spawn(async move {
        for _ in 0..200 {
            let state = std::fs::read_to_string(&state_file).unwrap_or_default();
            if state.contains(&format!("RESOURCE_GROUP={GROUP}\n")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
    });
    let started = std::time::Instant::now();
    let deployed = command(dir.path(), line).run(&|_: &str| {}, &cancel).await;
    watcher.await.unwrap();
    assert!(
        matches!(deployed.result, Err(DeployError::Interrupted { .. })),
        "{:?}",
        deployed.result
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let partial = deployed
        .partial
        .expect("the partial deploy.state read back");
    assert_eq!(partial.get("RESOURCE_GROUP").unwrap().value, GROUP);
    let pid = std::fs::read_to_string(dir.path().join("deploy.pid")).unwrap();
    let group_alive = || {
        Command::new("kill")
            .args(["-0", "--", &format!("-{}", pid.trim())])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    // Eventually gone (a killed process lingers until its parent, or init, reaps it).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while group_alive() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !group_alive(),
        "the deploy's process group is still running after 10 s"
    );
}

/// Runs `command`: its exit code, stdout and stderr.
fn outcome(command: &mut Command) -> (Option<i32>, String, String) {
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_group_is_deleted_and_awaited_however_the_run_ends() {
    std::env::set_var("EDW_ARM_TOKEN", "test-token-0123456789");
    std::env::set_var("EDW_ARM_POLL_INTERVAL", "50ms");
    let (target, config) = local_target().await;
    // (how it ends, the step, interrupted, a whole-run deadline)
    let endings: [(&str, StepFn, bool, Option<Duration>); 6] = [
        ("success", passes, false, None),
        ("a failed step", fails, false, None),
        ("a panic", panics, false, None),
        ("a step timeout", hangs, false, None),
        ("an interruption (Ctrl-C, SIGTERM)", hangs, true, None),
        (
            "the whole-run timeout",
            hangs,
            false,
            Some(Duration::from_millis(500)),
        ),
    ];
    for (ending, step, interrupt, deadline) in endings {
        let server = MockServer::start().await;
        let id = mount_resource_group(&server, GROUP).await;
        let scenario = Scenario {
            name: "aks::lifecycle".to_owned(),
            settings: FlowSettings::default(),
            steps: vec![Step::new("the run's work", Duration::from_secs(60), step)],
            cleanup: vec![edw_engine::steps::cleanup_resource_group_step()],
        };
        let mut context = Context::new(target.clone(), config.clone(), scenario.settings.clone());
        context.deployed_group = Some(DeployedGroup {
            subscription: SUB.to_owned(),
            resource_group: GROUP.to_owned(),
            arm_url: server.uri(),
        });
        let options = RunOptions {
            deadline,
            ..RunOptions::default()
        };
        let report = run_interrupting(&scenario, &mut context, &options, interrupt).await;
        assert_eq!(
            report.passed(),
            ending == "success",
            "{ending}: {:?}",
            report.steps
        );
        let cleanup = &report.cleanup[0];
        assert_eq!(cleanup.outcome, StepStatus::Passed, "{ending}: {cleanup:?}");
        assert!(
            cleanup.details[0].contains("waited until Azure Resource Manager answered 404"),
            "{ending}: {:?}",
            cleanup.details
        );
        // GET (found), DELETE (202), GET (still there), GET (404).
        assert_eq!(
            calls(&server, &id).await,
            ["GET", "DELETE", "GET", "GET"],
            "{ending}"
        );
    }
    println!("aks cleanup: the resource group was deleted and awaited after 6 endings (success, failed step, panic, step timeout, interruption, whole-run timeout)");
}

#[tokio::test]
async fn edw_run_deploy_tags_the_group_and_deletes_it_when_the_target_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    let id = mount_resource_group(&server, GROUP).await;
    let line = fake_deploy(dir.path(), "echo deployed");
    let mut command = edw_run_deploy(dir.path(), &line, &server.uri());
    command
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .env_remove("AZURE_STORAGE_KEY");
    let (code, stdout, stderr) = outcome(&mut command);
    assert_ne!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "tagged resource group {GROUP} with edw-run-id edw-k3x9q2-"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("deleted resource group {GROUP} and waited")),
        "{stderr}"
    );
    // Tag (GET, PUT), then delete (GET, DELETE, GET, GET).
    assert_eq!(
        calls(&server, &id).await,
        ["GET", "PUT", "GET", "DELETE", "GET", "GET"]
    );
    assert!(dir.path().join("reports/install.log").exists());
    for secret in [
        "arm-token-never-printed",
        "kube-token-never-printed",
        "c2VjcmV0LWtleS1mb3ItdGhlLWRlcGxveS10ZXN0",
    ] {
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "{secret} leaked"
        );
    }
}

/// `edw run --target aks --deploy` in `dir` with the deploy command `line`, against the mock
/// ARM at `arm_url`, a cluster that does not answer, and reports in `dir/reports`.
fn edw_run_deploy(dir: &Path, line: &str, arm_url: &str) -> Command {
    let mut command = edw_with_unreachable_cluster(dir);
    command
        .args([
            "run",
            "--plain",
            "--target",
            "aks",
            "--deploy",
            "--deploy-command",
            line,
            "--report-dir",
        ])
        .arg(dir.join("reports"))
        .env("AZURE_SUBSCRIPTION_ID", SUB)
        .env("EDW_ARM_URL", arm_url);
    command
}

/// `edw` in `dir` with the mock ARM's token and a fast poll, and a kubeconfig whose cluster
/// does not answer (no EDW_TARGET or EDW_DEPLOY_STATE from the environment).
fn edw_with_unreachable_cluster(dir: &std::path::Path) -> Command {
    let mut command = crate::support::cli::edw_binary();
    command
        .env("EDW_ARM_TOKEN", "arm-token-never-printed")
        .env("EDW_ARM_POLL_INTERVAL", "50ms")
        .env("KUBECONFIG", unreachable_kubeconfig(dir))
        .env_remove("EDW_TARGET")
        .env_remove("EDW_DEPLOY_STATE")
        .current_dir(dir);
    command
}

/// A crashed `--deploy` run's ledger is cleaned by `edw cleanup` even when its cluster (inside
/// the deployed group) can no longer be reached: the group is deleted and awaited.
#[tokio::test]
async fn edw_cleanup_deletes_a_crashed_runs_group_when_its_cluster_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    let id = mount_resource_group(&server, GROUP).await;
    let ledger = dir.path().join("edw-run.state");
    std::fs::write(
        &ledger,
        format!(
            "EDW_RUN_TARGET=aks\nEDW_RUN_NAMESPACE=aqs-demo\nEDW_RUN_DEPLOYED_GROUP={SUB}|{GROUP}|{}\n",
            server.uri()
        ),
    )
    .unwrap();
    let mut command = edw_with_unreachable_cluster(dir.path());
    command
        .args(["cleanup", "--target", "aks", "--run-state"])
        .arg(&ledger)
        .env("AZURE_STORAGE_ACCOUNT_NAME", "storaksdemok3x9q2");
    let (code, stdout, stderr) = outcome(&mut command);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("deleted resource group {GROUP} and waited")),
        "{stdout}{stderr}"
    );
    assert_eq!(calls(&server, &id).await, ["GET", "DELETE", "GET", "GET"]);
    assert!(!stderr.contains("arm-token-never-printed"));
}

/// `edw run --target aks --deploy` with a deploy command that hangs after writing the resource
/// group to deploy.state: the ledger records the group while the command runs, and `signal`
/// (INT or KILL) is sent to edw once it says so. Returns edw's exit code and its stderr.
fn deploy_until_recorded_then(dir: &Path, server_uri: &str, signal: &str) -> (Option<i32>, String) {
    let line = fake_deploy(dir, "sleep 60 &\nwait");
    let mut child = edw_run_deploy(dir, &line, server_uri)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    let mut signalled = false;
    for line in std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap())) {
        let line = line.unwrap();
        stderr.push_str(&line);
        stderr.push('\n');
        if !signalled && line.contains(&format!("records resource group {GROUP}")) {
            signalled = true;
            assert!(Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .unwrap()
                .success());
        }
    }
    let code = child.wait().unwrap().code();
    assert!(signalled, "edw never said it recorded the group:\n{stderr}");
    (code, stderr)
}

/// The fake deploy's process group (its script wrote its pid, which leads the group).
fn kill_deploy_group(dir: &Path) {
    if let Ok(pid) = std::fs::read_to_string(dir.join("deploy.pid")) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", pid.trim())])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Ctrl-C and SIGTERM during the deploy: the deploy command is stopped, and the group it had
/// begun to create is tagged, deleted and awaited before edw exits with 130.
#[tokio::test]
async fn sigint_or_sigterm_during_the_deploy_deletes_the_group_it_was_creating() {
    for signal in ["-INT", "-TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let server = MockServer::start().await;
        let id = mount_resource_group(&server, GROUP).await;
        let (code, stderr) = deploy_until_recorded_then(dir.path(), &server.uri(), signal);
        kill_deploy_group(dir.path());
        assert_eq!(code, Some(130), "{signal}:\n{stderr}");
        assert!(
            stderr.contains("was interrupted and stopped")
                && stderr.contains(&format!("deleted resource group {GROUP} and waited")),
            "{signal}:\n{stderr}"
        );
        // Tag (GET, PUT), then delete (GET, DELETE, GET, GET).
        assert_eq!(
            calls(&server, &id).await,
            ["GET", "PUT", "GET", "DELETE", "GET", "GET"],
            "{signal}"
        );
        assert!(!stderr.contains("arm-token-never-printed"));
    }
    println!("aks deploy interrupted by SIGINT and by SIGTERM: the group was deleted and awaited both times");
}

/// edw killed (SIGKILL: no handler runs) in the middle of the deploy: its ledger already names
/// the group, and `edw cleanup --run-state` deletes it.
#[tokio::test]
async fn a_run_killed_mid_deploy_is_cleaned_from_its_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    let id = mount_resource_group(&server, GROUP).await;
    let (code, stderr) = deploy_until_recorded_then(dir.path(), &server.uri(), "-KILL");
    // A killed edw cannot stop the deploy it started: the test does.
    kill_deploy_group(dir.path());
    assert_eq!(code, None, "killed by a signal:\n{stderr}");
    assert!(
        calls(&server, &id).await.is_empty(),
        "the killed run reached ARM"
    );
    let ledger = dir.path().join("reports/edw-run.state");
    let text = std::fs::read_to_string(&ledger).expect("the ledger");
    assert!(
        text.contains(&format!("EDW_RUN_DEPLOYED_GROUP={SUB}|{GROUP}|")),
        "{text}"
    );
    let mut command = edw_with_unreachable_cluster(dir.path());
    command
        .args(["cleanup", "--target", "aks", "--run-state"])
        .arg(&ledger)
        .env("EDW_ARM_URL", server.uri());
    let (code, stdout, stderr) = outcome(&mut command);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("deleted resource group {GROUP} and waited")),
        "{stdout}{stderr}"
    );
    assert_eq!(calls(&server, &id).await, ["GET", "DELETE", "GET", "GET"]);
}

/// A directory deployed before holds that deployment's deploy.state (the sample appends to
/// it): a deploy that fails before writing anything must not hand the earlier group to the
/// cleanup, and one that appends names only its own group; a line still being written is not
/// read.
#[tokio::test]
async fn only_what_this_deploy_wrote_is_cleaned_up() {
    let kept = "SUFFIX=old111\nRESOURCE_GROUP=rg-aksdemo-old111\n";
    let cases: [(&str, Option<&str>); 3] = [
        ("exit 1", None),
        (
            "echo SUFFIX=k3x9q2 >> deployment/deploy.state\necho RESOURCE_GROUP=rg-aksdemo-k3x9q2 >> deployment/deploy.state\nexit 1",
            Some("rg-aksdemo-k3x9q2"),
        ),
        (
            "printf 'RESOURCE_GROUP=rg-aks' >> deployment/deploy.state\nexit 1",
            None,
        ),
    ];
    for (script, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("deployment")).unwrap();
        std::fs::write(dir.path().join("deployment/deploy.state"), kept).unwrap();
        let deployed = command(dir.path(), script.to_owned())
            .run(&|_: &str| {}, &CancellationToken::new())
            .await;
        assert!(deployed.result.is_err(), "{script}");
        let group = deployed
            .partial
            .as_ref()
            .and_then(|s| s.get("RESOURCE_GROUP"))
            .map(|e| e.value.as_str());
        assert_eq!(group, expected, "{script}");
    }
}
