//! `edw` through the binary: a command with a clean configuration, its exit code and output,
//! and an interruption sent once the command has shown that it started.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};

/// The `edw` binary cargo built for these tests, with this process's environment: the one
/// place that names it (most tests want [`edw`]).
pub fn edw_binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edw"))
}

/// `edw` with only what each test sets: no ambient account, target, cluster or subscription.
pub fn edw() -> Command {
    let mut command = edw_binary();
    for key in [
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_KEY",
        "AZURE_QUEUE_NAME",
        "AZURE_TABLE_NAME",
        "AZURE_SUBSCRIPTION_ID",
        "EDW_STORAGE_AUTH",
        "EDW_DEPLOY_STATE",
        "EDW_TARGET",
        "EDW_KUBE_CONTEXT",
        "EDW_QUEUE_ENDPOINT",
        "EDW_TABLE_ENDPOINT",
        "EDW_ARM_URL",
        "EDW_ARM_TOKEN",
        "EDW_RUNNER_IP",
        "EDW_PUBLIC_IP_URL",
        "EDW_STORAGE_FIREWALL",
        "K8sversion",
        "LOCATION",
        "RESOURCE_GROUP",
        "AKS_CLUSTER_NAME",
        "RUST_LOG",
    ] {
        command.env_remove(key);
    }
    command.current_dir(std::env::temp_dir());
    command
}

/// The variables through which the Azurite of the test's nextest slot (`ci/suite-azurite.sh`
/// and its wrapper) reaches the test and every `edw` it starts.
pub const SUITE_AZURITE: [&str; 2] = ["EDW_AZURITE_QUEUE_ENDPOINT", "EDW_AZURITE_TABLE_ENDPOINT"];

/// `command` without the slot's Azurite: for a test whose storage is an account (a key, a
/// connection string), which `EDW_AZURITE_*` endpoints would otherwise win over.
pub fn without_suite_azurite(command: &mut Command) -> &mut Command {
    for key in SUITE_AZURITE {
        command.env_remove(key);
    }
    command
}

/// [`edw`] pointed at the test's Azurite.
pub fn edw_on(env: &super::Env) -> Command {
    let mut command = edw();
    command
        .env("EDW_AZURITE_QUEUE_ENDPOINT", env.azurite.queue_endpoint())
        .env("EDW_AZURITE_TABLE_ENDPOINT", env.azurite.table_endpoint());
    command
}

/// Runs `command` to its end: exit code (-1 for a signal), stdout, stderr.
pub fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run edw");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Which output stream shows that a command started.
#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Starts `command`; once `stream` shows a line containing `started` and `ready` has returned,
/// sends `signal` (`-INT`, `-TERM`) through `kill`. Returns the exit code and the whole output,
/// as [`run`] does. Fails when the command ends without printing `started`.
pub fn interrupt_once_started(
    command: &mut Command,
    stream: Stream,
    started: &str,
    ready: impl FnOnce(),
    signal: &str,
) -> (i32, String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start edw");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (watched, other): (Box<dyn Read + Send>, Box<dyn Read + Send>) = match stream {
        Stream::Stdout => (Box::new(stdout), Box::new(stderr)),
        Stream::Stderr => (Box::new(stderr), Box::new(stdout)),
    };
    let other = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(other).read_to_string(&mut text);
        text
    });
    let mut watched_text = String::new();
    let mut ready = Some(ready);
    for line in BufReader::new(watched).lines() {
        let line = line.expect("read edw's output");
        if line.contains(started) {
            if let Some(ready) = ready.take() {
                ready();
                let sent = Command::new("kill")
                    .args([signal, &child.id().to_string()])
                    .status()
                    .expect("kill");
                assert!(sent.success(), "kill {signal}");
            }
        }
        watched_text.push_str(&line);
        watched_text.push('\n');
    }
    let code = child.wait().expect("wait for edw").code().unwrap_or(-1);
    let other_text = other.join().expect("reader");
    assert!(
        ready.is_none(),
        "edw ended without printing {started:?}:\n{watched_text}\n{other_text}"
    );
    match stream {
        Stream::Stdout => (code, watched_text, other_text),
        Stream::Stderr => (code, other_text, watched_text),
    }
}

/// A kubeconfig in `dir` whose cluster does not answer: the aks target cannot open.
pub fn unreachable_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: kube-token-never-printed\n",
    )
    .unwrap();
    kubeconfig
}
