//! The `kube` target end to end, against a served twin (no real cluster is reachable here):
//! `edw twin serve` in one process, `edw run --target kube` with its kubeconfig in another.
//! The run goes through the kubeconfig, capability detection and kube-rs over HTTP, and its
//! report stays labelled simulated because the twin says so in /version.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::Env;

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_runs_through_the_kube_target_against_a_served_twin() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let azurite = |c: &mut Command| {
        c.env("EDW_AZURITE_QUEUE_ENDPOINT", env.azurite.queue_endpoint())
            .env("EDW_AZURITE_TABLE_ENDPOINT", env.azurite.table_endpoint())
            .env_remove("EDW_TARGET")
            .env_remove("AZURE_STORAGE_ACCOUNT_NAME")
            .env_remove("AZURE_STORAGE_CONNECTION_STRING")
            .current_dir(std::env::temp_dir());
    };
    let mut serve = Command::new(env!("CARGO_BIN_EXE_edw"));
    serve
        .args(["twin", "serve", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped());
    azurite(&mut serve);
    let mut served = KillOnDrop(serve.spawn().unwrap());
    for line in BufReader::new(served.0.stdout.take().unwrap()).lines() {
        if line.unwrap().starts_with("Ctrl-C") {
            break;
        }
    }
    let mut run = Command::new(env!("CARGO_BIN_EXE_edw"));
    run.args([
        "run",
        "--target",
        "kube",
        "--plain",
        "--messages",
        "200",
        "--report-dir",
    ])
    .arg(dir.path())
    .env("KUBECONFIG", &kubeconfig)
    .env_remove("EDW_KUBE_CONTEXT");
    azurite(&mut run);
    let output = run.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("flow::burst on kube: SIMULATED cluster (an edw twin)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[SIMULATED: not a cluster result]"),
        "{stdout}"
    );
    let junit = std::fs::read_to_string(dir.path().join("flow-burst-kube/junit.xml")).unwrap();
    assert!(
        junit.contains("[simulated]") && junit.contains("[kube]"),
        "{junit}"
    );
}
