//! The README's exit codes, command family by command family, through the binary: `0` success,
//! `1` a check failed, `2` bad arguments or configuration, `3` storage, Azurite, a cluster or
//! Azure Resource Manager unavailable or refusing the credentials, `130` interrupted (Ctrl-C or
//! SIGTERM). Each test also checks that the message names the culprit and that no account key
//! is printed.
//!
//! Codes not produced here, and where they are tested instead:
//! - `edw run` 0, 1 (the whole-run deadline) and 130 (SIGINT, SIGTERM): `run_cli.rs`.
//! - the phases 0 one after the other: `kube_target.rs`; their 1 and 130 come from the same
//!   flow runner and exit mapping as `edw run`'s.
//! - `edw check-config` 0: `check_config.rs` (a ScaledObject without a stranded tail).
//! - `edw doctor` 0: `doctor.rs` (scripted tools, a mock ARM and a served twin).
//! - `edw bench` 0/1 (minutes of measurements): `kube_target.rs`; its 3 needs a broken
//!   Azurite install.
//! - `edw roundtrip` and `edw queue stats` 1, `edw consume` 1: roundtrip's 1 needs messages
//!   lost between Azurite's send and receive (the chaos tests' reconciliation covers it);
//!   consume has no check that fails, and queue stats reports.
//! - anything against live Azure (a real subscription, Entra ID tokens): not on this machine;
//!   the mock ARM stands in for it.

use std::path::Path;
use std::time::Duration;

use crate::support::arm_replay::SUB;
use crate::support::cli::{
    edw, edw_on, interrupt_once_started, run, without_suite_azurite, Stream,
};
use crate::support::served::{edw_on_served_twin, serve_twin};
use crate::support::{eventually, Env};
use edw_model::naming::{run_queue_name, run_table_name};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A well-formed account key that is not Azurite's: refused, and never to be printed.
const WRONG_KEY: &str = "d3Jvbmcta2V5LWZvci10aGUtZXhpdC1jb2RlLXRlc3Rz";

/// Checks the exit code, that the output names every one of `culprits`, that no account key
/// leaks, and that nothing panicked.
fn assert_exit(outcome: &(i32, String, String), code: i32, culprits: &[&str]) {
    let (actual, stdout, stderr) = outcome;
    let text = format!("{stdout}\n{stderr}");
    assert_eq!(
        *actual, code,
        "exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for culprit in culprits {
        assert!(text.contains(culprit), "{culprit:?} not named in:\n{text}");
    }
    for secret in [WRONG_KEY, edw_engine::azurite::DEVELOPMENT_KEY] {
        assert!(!text.contains(secret), "a key leaked:\n{text}");
    }
    assert!(!text.contains("panicked"), "{text}");
}

/// Account-key access to the test's Azurite with a key it refuses.
fn with_wrong_key<'a>(
    command: &'a mut std::process::Command,
    env: &Env,
) -> &'a mut std::process::Command {
    without_suite_azurite(command)
        .env(
            "AZURE_STORAGE_ACCOUNT_NAME",
            edw_engine::storage::DEVELOPMENT_ACCOUNT,
        )
        .env("AZURE_STORAGE_KEY", WRONG_KEY)
        .env("EDW_QUEUE_ENDPOINT", env.azurite.queue_endpoint())
        .env("EDW_TABLE_ENDPOINT", env.azurite.table_endpoint())
}

/// A connection string for the test's Azurite with a key it refuses.
fn with_wrong_connection_string<'a>(
    command: &'a mut std::process::Command,
    env: &Env,
) -> &'a mut std::process::Command {
    without_suite_azurite(command).env(
        "AZURE_STORAGE_CONNECTION_STRING",
        format!(
            "DefaultEndpointsProtocol=http;AccountName={};AccountKey={WRONG_KEY};QueueEndpoint={};TableEndpoint={};",
            edw_engine::storage::DEVELOPMENT_ACCOUNT,
            env.azurite.queue_endpoint(),
            env.azurite.table_endpoint()
        ),
    )
}

/// Storage was checked before the flow began: not even the deploy step ran.
fn assert_no_step_ran(outcome: &(i32, String, String)) {
    assert!(
        !outcome.2.contains("step deploy"),
        "a step ran: {}",
        outcome.2
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

/// A kubeconfig whose current context `ctx` points at a port nothing listens on.
fn unreachable_kubeconfig(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("unreachable.kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: nowhere\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: ctx\n  context:\n    cluster: nowhere\n    user: someone\ncurrent-context: ctx\nusers:\n- name: someone\n  user:\n    token: not-a-real-token\n",
    )
    .expect("write kubeconfig");
    path
}

// ---- produce ------------------------------------------------------------------------------

#[tokio::test]
async fn produce_exits_0_when_every_message_is_sent() {
    let env = Env::start().await;
    let outcome = run(edw_on(&env).args(["produce", "--count", "3"]));
    assert_exit(&outcome, 0, &["sent 3 messages", "0 failed"]);
}

#[tokio::test]
async fn produce_exits_1_naming_the_messages_not_sent() {
    // A queue service that creates the queue and refuses every message with a 400 (not
    // retried): the producer goes on and reports each one.
    let service = MockServer::start().await;
    let answer = |status: u16| {
        ResponseTemplate::new(status)
            .insert_header("x-ms-request-id", "00000000-0000-0000-0000-000000000000")
            .insert_header("x-ms-version", "2019-12-12")
            .insert_header("date", "Thu, 01 Jan 2026 00:00:00 GMT")
            .insert_header("server", "Azurite-Queue/3.37.0")
    };
    Mock::given(method("PUT"))
        .respond_with(answer(201))
        .mount(&service)
        .await;
    Mock::given(method("POST"))
        .respond_with(answer(400).insert_header("x-ms-error-code", "InvalidInput"))
        .mount(&service)
        .await;
    let endpoint = format!(
        "{}/{}",
        service.uri(),
        edw_engine::storage::DEVELOPMENT_ACCOUNT
    );
    let outcome = run(edw()
        .args(["produce", "--count", "2"])
        .env("EDW_AZURITE_QUEUE_ENDPOINT", &endpoint)
        .env("EDW_AZURITE_TABLE_ENDPOINT", &endpoint)
        .env("EDW_STORAGE_MAX_RETRIES", "0"));
    assert_exit(
        &outcome,
        1,
        &["sent 0 messages", "2 failed", "not sent", "400"],
    );
}

#[test]
fn produce_exits_2_naming_the_flag() {
    let outcome = run(edw().args(["produce", "--duration", "soon"]));
    assert_exit(&outcome, 2, &["--duration", "\"soon\" is not a duration"]);
}

#[tokio::test]
async fn produce_exits_3_when_the_account_key_is_refused() {
    let env = Env::start().await;
    let outcome = run(with_wrong_key(
        edw().args(["produce", "--count", "1"]),
        &env,
    ));
    assert_exit(&outcome, 3, &["refused (403", "AZURE_STORAGE_KEY"]);
}

/// `edw produce` at its default (1 msg/s until Ctrl-C), stopped by `signal` once it has sent a
/// message: 130, with what it sent reported.
fn produce_until(signal: &str) {
    let rt = runtime();
    let env = rt.block_on(Env::start());
    // A queue of its own: the slot's Azurite outlives the test, and the other signal's
    // messages left in a shared name would count as sent before this edw sent any.
    let queue_name = run_queue_name("interrupted");
    let queue = env.storage.queue(&queue_name);
    let sent_one = || {
        rt.block_on(eventually(
            "a message sent",
            Duration::from_secs(20),
            || async {
                match queue.approximate_count().await {
                    Ok(n) if n > 0 => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        ))
    };
    let outcome = interrupt_once_started(
        edw_on(&env).args(["produce", "--queue", &queue_name]),
        Stream::Stderr,
        "until Ctrl-C",
        sent_one,
        signal,
    );
    assert_exit(&outcome, 130, &["stopping (interrupted)", "0 failed"]);
    assert!(
        outcome.1.starts_with("sent ") && !outcome.1.starts_with("sent 0 "),
        "{}",
        outcome.1
    );
}

#[test]
fn produce_exits_130_on_sigint_after_reporting_what_it_sent() {
    produce_until("-INT");
}

#[test]
fn produce_exits_130_on_sigterm_after_reporting_what_it_sent() {
    produce_until("-TERM");
}

// ---- consume ------------------------------------------------------------------------------

#[tokio::test]
async fn consume_exits_0_when_the_queue_is_drained() {
    let env = Env::start().await;
    let queue = run_queue_name("drained");
    let outcome = run(edw_on(&env).args(["consume", "--until-empty", "--queue", &queue]));
    assert_exit(&outcome, 0, &["processed 0 messages"]);
}

#[test]
fn consume_exits_2_naming_the_flag() {
    let outcome = run(edw().args(["consume", "--batch", "64", "--until-empty"]));
    assert_exit(&outcome, 2, &["--batch"]);
}

#[tokio::test]
async fn consume_exits_3_when_the_connection_string_is_refused() {
    let env = Env::start().await;
    let outcome = run(with_wrong_connection_string(
        edw().args(["consume", "--until-empty"]),
        &env,
    ));
    assert_exit(
        &outcome,
        3,
        &["refused (403", "AZURE_STORAGE_CONNECTION_STRING"],
    );
}

/// `edw consume` (until Ctrl-C) on a queue of five messages, stopped by `signal` once all five
/// are in the table: 130, with the five reported.
fn consume_until(signal: &str) {
    let rt = runtime();
    let env = rt.block_on(Env::start());
    // Names of this test's own: the run's Azurite is shared by every test (ci/suite-azurite.sh).
    let (queue, table) = (
        env.storage.queue(&run_queue_name("backlog")),
        env.storage.table(&run_table_name("processed")),
    );
    let produced = run(edw_on(&env).args(["produce", "--count", "5", "--queue", queue.name()]));
    assert_exit(&produced, 0, &["sent 5 messages"]);
    let all_processed = || {
        rt.block_on(eventually("five rows", Duration::from_secs(30), || async {
            match table.count(None).await {
                Ok(5) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }))
    };
    let outcome = interrupt_once_started(
        edw_on(&env).args(["consume", "--queue", queue.name(), "--table", table.name()]),
        Stream::Stderr,
        "until Ctrl-C",
        all_processed,
        signal,
    );
    assert_exit(
        &outcome,
        130,
        &["processed 5 messages", "stopping (interrupted)"],
    );
    assert_eq!(rt.block_on(queue.approximate_count()).unwrap(), 0);
}

#[test]
fn consume_exits_130_on_sigint_after_reporting_what_it_processed() {
    consume_until("-INT");
}

#[test]
fn consume_exits_130_on_sigterm_after_reporting_what_it_processed() {
    consume_until("-TERM");
}

// ---- queue stats --------------------------------------------------------------------------

#[tokio::test]
async fn queue_stats_exits_0_with_the_counts() {
    let env = Env::start().await;
    env.storage.queue("counted").create().await.unwrap();
    let outcome = run(edw_on(&env).args(["queue", "stats", "--queue", "counted"]));
    assert_exit(&outcome, 0, &["counted: approximate 0"]);
}

#[test]
fn queue_stats_exits_2_naming_the_storage_auth_flag() {
    let outcome = run(edw().args(["queue", "stats", "--storage-auth", "password"]));
    assert_exit(
        &outcome,
        2,
        &["EDW_STORAGE_AUTH", "--storage-auth", "password"],
    );
}

#[tokio::test]
async fn queue_stats_exits_3_when_the_queue_does_not_exist() {
    let env = Env::start().await;
    let outcome = run(edw_on(&env).args(["queue", "stats", "--queue", "nosuchqueue"]));
    assert_exit(&outcome, 3, &["queue nosuchqueue does not exist"]);
}

// ---- roundtrip ----------------------------------------------------------------------------

#[tokio::test]
async fn roundtrip_exits_0_on_exact_delivery() {
    let env = Env::start().await;
    let outcome = run(edw_on(&env).args(["roundtrip", "--count", "20"]));
    assert_exit(&outcome, 0, &[]);
}

#[test]
fn roundtrip_exits_2_naming_the_flag() {
    let outcome = run(edw().args(["roundtrip", "--workers", "0"]));
    assert_exit(&outcome, 2, &["--workers"]);
}

#[test]
fn roundtrip_exits_3_when_azurite_does_not_answer() {
    let outcome = run(edw()
        .args(["roundtrip", "--count", "1"])
        .env(
            "EDW_AZURITE_QUEUE_ENDPOINT",
            "http://127.0.0.1:1/devstoreaccount1",
        )
        .env(
            "EDW_AZURITE_TABLE_ENDPOINT",
            "http://127.0.0.1:1/devstoreaccount1",
        )
        .env("EDW_STORAGE_MAX_RETRIES", "0"));
    assert_exit(&outcome, 3, &["unreachable", "EDW_AZURITE_QUEUE_ENDPOINT"]);
}

#[test]
fn roundtrip_exits_130_on_sigint() {
    let rt = runtime();
    let env = rt.block_on(Env::start());
    let outcome = interrupt_once_started(
        edw_on(&env).args(["roundtrip", "--count", "100000"]),
        Stream::Stderr,
        "round trip of 100000 messages",
        || {},
        "-INT",
    );
    assert_exit(&outcome, 130, &["stopping (interrupted)"]);
}

// ---- azurite ------------------------------------------------------------------------------

#[test]
fn azurite_exits_130_on_sigterm() {
    let outcome = interrupt_once_started(
        edw()
            .arg("azurite")
            .env_remove("EDW_AZURITE_QUEUE_ENDPOINT")
            .env_remove("EDW_AZURITE_TABLE_ENDPOINT"),
        Stream::Stdout,
        "AZURE_STORAGE_CONNECTION_STRING=",
        || {},
        "-TERM",
    );
    // Its own output prints the published development key on purpose; check the code only.
    assert_eq!(outcome.0, 130, "{}\n{}", outcome.1, outcome.2);
}

#[test]
fn azurite_exits_2_naming_the_deploy_state_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("deploy.state");
    std::fs::write(&state, "SUFFIX=ab12cd\nthis is not a setting\n").unwrap();
    let outcome = run(edw().arg("azurite").arg("--state-file").arg(&state));
    assert_exit(&outcome, 2, &[&format!("{}:2", state.display())]);
}

#[test]
fn azurite_exits_3_without_node() {
    let empty = tempfile::tempdir().unwrap();
    let outcome = run(edw()
        .arg("azurite")
        .env_remove("EDW_AZURITE_QUEUE_ENDPOINT")
        .env_remove("EDW_AZURITE_TABLE_ENDPOINT")
        .env("PATH", empty.path())
        .env("EDW_CACHE_DIR", empty.path()));
    assert_exit(&outcome, 3, &["Node.js"]);
}

// ---- config -------------------------------------------------------------------------------

#[test]
fn config_exits_0_hiding_the_key() {
    let outcome = run(edw()
        .arg("config")
        .env("AZURE_STORAGE_ACCOUNT_NAME", "storaksdemoab12cd")
        .env("AZURE_STORAGE_KEY", WRONG_KEY));
    assert_exit(&outcome, 0, &["AZURE_STORAGE_KEY=***"]);
}

#[test]
fn config_exits_2_naming_the_variable() {
    let outcome = run(edw().arg("config").env("AZURE_QUEUE_NAME", "Not_A_Queue"));
    assert_exit(&outcome, 2, &["AZURE_QUEUE_NAME", "environment variable"]);
}

// ---- check-config -------------------------------------------------------------------------

#[test]
fn check_config_exits_1_on_a_risk() {
    // The walkthrough's ScaledObject strands its last 20 messages.
    let outcome = run(edw().arg("check-config"));
    assert_exit(&outcome, 1, &["stranded"]);
}

#[test]
fn check_config_exits_2_naming_the_missing_file() {
    let outcome = run(edw().args(["check-config", "--scaled-object", "no-such-so.yaml"]));
    assert_exit(&outcome, 2, &["no-such-so.yaml"]);
}

// ---- twin simulate and twin serve ---------------------------------------------------------

#[test]
fn twin_simulate_exits_0_labelled_simulated() {
    let outcome = run(edw().args(["twin", "simulate", "--burst", "50@0"]));
    assert_exit(&outcome, 0, &["SIMULATED"]);
}

#[test]
fn twin_simulate_exits_2_naming_the_flag() {
    let outcome = run(edw().args(["twin", "simulate", "--burst", "many"]));
    assert_exit(&outcome, 2, &["--burst \"many\""]);
}

#[test]
fn twin_serve_exits_130_on_sigint() {
    let rt = runtime();
    let env = rt.block_on(Env::start());
    let dir = tempfile::tempdir().unwrap();
    let outcome = interrupt_once_started(
        edw_on(&env)
            .args(["twin", "serve", "--kubeconfig"])
            .arg(dir.path().join("twin.kubeconfig")),
        Stream::Stdout,
        "Ctrl-C stops it",
        || {},
        "-INT",
    );
    assert_exit(
        &outcome,
        130,
        &["SIMULATED cluster", "stopping (interrupted)"],
    );
}

#[test]
fn twin_serve_exits_2_naming_the_flag() {
    let outcome = run(edw().args(["twin", "serve", "--scale", "0"]));
    assert_exit(&outcome, 2, &["--scale"]);
}

#[tokio::test]
async fn twin_serve_exits_3_when_the_account_key_is_refused() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = edw();
    command
        .args(["twin", "serve", "--kubeconfig"])
        .arg(dir.path().join("twin.kubeconfig"));
    let outcome = run(with_wrong_key(&mut command, &env));
    assert_exit(&outcome, 3, &["refused (403", "AZURE_STORAGE_KEY"]);
}

// ---- run ----------------------------------------------------------------------------------

fn edw_run(target: &str, report_dir: &Path) -> std::process::Command {
    let mut command = edw();
    command
        .args([
            "run",
            "--plain",
            "--messages",
            "50",
            "--target",
            target,
            "--report-dir",
        ])
        .arg(report_dir);
    command
}

#[test]
fn run_exits_2_naming_an_unknown_target() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(&mut edw_run("cloud", dir.path()));
    assert_exit(&outcome, 2, &["unknown target \"cloud\""]);
}

#[test]
fn run_on_kube_exits_2_with_a_queue_endpoint_list() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(edw_run("kube", dir.path())
        .env(
            "EDW_AZURITE_QUEUE_ENDPOINT",
            "http://127.0.0.1:1/devstoreaccount1,http://127.0.0.1:2/devstoreaccount1",
        )
        .env(
            "EDW_AZURITE_TABLE_ENDPOINT",
            "http://127.0.0.1:3/devstoreaccount1",
        ));
    assert_exit(
        &outcome,
        2,
        &["EDW_AZURITE_QUEUE_ENDPOINT", "lists 2 queue endpoints"],
    );
}

#[test]
fn run_on_kube_exits_2_without_storage_even_when_the_cluster_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(edw_run("kube", dir.path())
        .env_remove("EDW_AZURITE_QUEUE_ENDPOINT")
        .env_remove("EDW_AZURITE_TABLE_ENDPOINT")
        .env("KUBECONFIG", unreachable_kubeconfig(dir.path())));
    assert_exit(
        &outcome,
        2,
        &["AZURE_STORAGE_ACCOUNT_NAME", "kube target needs storage"],
    );
}

#[tokio::test]
async fn run_on_kube_exits_2_naming_an_unknown_context() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(edw_run("kube", dir.path())
        .env("EDW_AZURITE_QUEUE_ENDPOINT", env.azurite.queue_endpoint())
        .env("EDW_AZURITE_TABLE_ENDPOINT", env.azurite.table_endpoint())
        .env("KUBECONFIG", unreachable_kubeconfig(dir.path()))
        .env("EDW_KUBE_CONTEXT", "no-such-context"));
    assert_exit(&outcome, 2, &["no usable kubeconfig", "no-such-context"]);
}

#[tokio::test]
async fn run_on_kube_exits_3_when_the_cluster_does_not_answer() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(edw_run("kube", dir.path())
        .env("EDW_AZURITE_QUEUE_ENDPOINT", env.azurite.queue_endpoint())
        .env("EDW_AZURITE_TABLE_ENDPOINT", env.azurite.table_endpoint())
        .env("KUBECONFIG", unreachable_kubeconfig(dir.path())));
    assert_exit(&outcome, 3, &["https://127.0.0.1:1", "does not answer"]);
}

#[tokio::test]
async fn run_exits_3_when_the_account_key_is_refused_before_any_step() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(with_wrong_key(&mut edw_run("local", dir.path()), &env));
    assert_exit(
        &outcome,
        3,
        &[
            "refused (403",
            "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_KEY",
        ],
    );
    assert_no_step_ran(&outcome);
}

#[tokio::test]
async fn run_on_a_served_twin_exits_3_when_the_connection_string_is_refused() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let _served = serve_twin(&env, &kubeconfig, &[]);
    let mut command = edw_run("kube", dir.path());
    command.env("KUBECONFIG", &kubeconfig);
    let outcome = run(with_wrong_connection_string(&mut command, &env));
    assert_exit(
        &outcome,
        3,
        &["refused (403", "AZURE_STORAGE_CONNECTION_STRING"],
    );
    assert_no_step_ran(&outcome);
}

// ---- deploy | validate | load | scale | cleanup -------------------------------------------

#[tokio::test]
async fn phases_exit_0_on_a_served_twin() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let state = dir.path().join("edw-run.state");
    let _served = serve_twin(&env, &kubeconfig, &[]);
    for phase in ["deploy", "cleanup"] {
        let outcome = run(
            edw_on_served_twin(&env, &kubeconfig, &[phase, "--target", "kube"])
                .arg("--run-state")
                .arg(&state),
        );
        assert_exit(&outcome, 0, &["run state:"]);
    }
}

#[test]
fn phases_exit_2_on_the_local_target() {
    let outcome = run(edw().args(["validate", "--target", "local"]));
    assert_exit(&outcome, 2, &["edw twin serve"]);
}

#[tokio::test]
async fn phases_exit_2_naming_a_missing_run_state() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let state = dir.path().join("never-written.state");
    let _served = serve_twin(&env, &kubeconfig, &[]);
    let outcome = run(
        edw_on_served_twin(&env, &kubeconfig, &["validate", "--target", "kube"])
            .arg("--run-state")
            .arg(&state),
    );
    assert_exit(&outcome, 2, &["never-written.state"]);
}

#[tokio::test]
async fn phases_exit_3_when_the_cluster_does_not_answer() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(edw_on(&env)
        .args(["deploy", "--target", "kube", "--run-state"])
        .arg(dir.path().join("edw-run.state"))
        .env("KUBECONFIG", unreachable_kubeconfig(dir.path())));
    assert_exit(&outcome, 3, &["https://127.0.0.1:1", "does not answer"]);
}

// ---- azure-check and sweep (a mock Azure Resource Manager) --------------------------------

/// A deploy.state naming every resource azure-check reads.
fn full_deploy_state(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("deploy.state");
    std::fs::write(
        &path,
        "SUFFIX=ab12cd\nRESOURCE_GROUP=rg-aksdemo-ab12cd\nAZURE_STORAGE_ACCOUNT_NAME=storaksdemoab12cd\n\
         AZURE_QUEUE_NAME=aws2azmsgs\nAZURE_TABLE_NAME=aws2aztable\nAZURE_CONTAINER_REGISTRY_NAME=acraksdemoab12cd\n\
         AKS_MANAGED_IDENTITY_NAME=id-aks-ab12cd\nAKS_CLUSTER_NAME=aks-demo-ab12cd\n\
         WORKLOAD_MANAGED_IDENTITY_NAME=id-wl-ab12cd\nSERVICE_ACCOUNT=aqs-sa\n\
         FEDERATED_IDENTITY_CREDENTIAL_NAME=fic-aqs\nKEDA_SERVICE_ACCT_CRED_NAME=fic-keda\n",
    )
    .expect("write deploy.state");
    path
}

/// ARM answering every request with `status` and an ARM error body.
async fn arm_answering(status: u16, code: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(status).set_body_json(serde_json::json!({
                "error": { "code": code, "message": "mock ARM" }
            })),
        )
        .mount(&server)
        .await;
    server
}

const ARM_TOKEN: &str = "bW9jay1hcm0tdG9rZW4tZm9yLWV4aXQtY29kZXM";

fn edw_azure(command: &str, arm: &MockServer, dir: &Path) -> std::process::Command {
    let mut edw = edw();
    edw.args([command, "--subscription", SUB, "--arm-url", &arm.uri()])
        .env("EDW_ARM_TOKEN", ARM_TOKEN)
        .arg("--state-file")
        .arg(full_deploy_state(dir));
    edw
}

fn assert_arm_exit(outcome: &(i32, String, String), code: i32, culprits: &[&str]) {
    assert_exit(outcome, code, culprits);
    assert!(
        !format!("{}{}", outcome.1, outcome.2).contains(ARM_TOKEN),
        "the ARM token leaked"
    );
}

#[tokio::test]
async fn azure_check_exits_1_when_the_resources_are_missing() {
    let arm = arm_answering(404, "ResourceNotFound").await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(&mut edw_azure("azure-check", &arm, dir.path()));
    assert_arm_exit(&outcome, 1, &["FAIL", "rg-aksdemo-ab12cd"]);
}

#[test]
fn azure_check_exits_2_naming_the_missing_subscription() {
    let outcome = run(edw().arg("azure-check"));
    assert_arm_exit(&outcome, 2, &["AZURE_SUBSCRIPTION_ID"]);
}

#[tokio::test]
async fn azure_check_exits_3_when_arm_refuses_the_token() {
    let arm = arm_answering(401, "InvalidAuthenticationToken").await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(&mut edw_azure("azure-check", &arm, dir.path()));
    assert_arm_exit(&outcome, 3, &["HTTP 401", "EDW_ARM_TOKEN"]);
}

#[tokio::test]
async fn sweep_exits_0_when_nothing_expired() {
    let arm = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({ "value": [] })))
        .mount(&arm)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(&mut edw_azure("sweep", &arm, dir.path()));
    assert_arm_exit(&outcome, 0, &["no expired resource groups"]);
}

#[test]
fn sweep_exits_2_naming_the_missing_subscription() {
    let outcome = run(edw().arg("sweep"));
    assert_arm_exit(&outcome, 2, &["--subscription", "AZURE_SUBSCRIPTION_ID"]);
}

#[tokio::test]
async fn sweep_exits_3_when_arm_refuses_the_token() {
    let arm = arm_answering(403, "AuthorizationFailed").await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(&mut edw_azure("sweep", &arm, dir.path()));
    assert_arm_exit(&outcome, 3, &["HTTP 403", "AuthorizationFailed"]);
}

// ---- doctor and bench ---------------------------------------------------------------------

#[test]
fn doctor_exits_2_naming_the_target_flag() {
    let outcome = run(edw().args(["doctor", "--target", "cloud"]));
    assert_exit(&outcome, 2, &["--target", "cloud"]);
}

#[test]
fn doctor_exits_3_on_a_missing_prerequisite() {
    let empty = tempfile::tempdir().unwrap();
    let outcome = run(edw()
        .args(["doctor", "--target", "kube"])
        .env_remove("KUBECONFIG")
        .env("PATH", empty.path())
        .env("HOME", empty.path()));
    assert_exit(&outcome, 3, &["FAIL", "kubectl"]);
}

#[test]
fn bench_exits_2_naming_the_flag() {
    let outcome = run(edw().args(["bench", "--messages", "5"]));
    assert_exit(&outcome, 2, &["--messages"]);
}

/// `edw run --target aks --deploy` without a subscription could neither tag nor delete the
/// group its deploy command creates: refused (2) before the command runs.
#[test]
fn run_deploy_without_a_subscription_exits_2_before_deploying() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("deployed");
    let (code, stdout, stderr) = run(edw()
        .args(["run", "--target", "aks", "--deploy", "--deploy-command"])
        .arg(format!("touch {}", marker.display()))
        .arg("--report-dir")
        .arg(dir.path()));
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("--deploy needs AZURE_SUBSCRIPTION_ID"),
        "{stderr}"
    );
    assert!(!marker.exists(), "the deploy command ran");
}
