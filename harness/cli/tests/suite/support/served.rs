//! `edw twin serve` in another process, for tests of the `kube` target and of commands that
//! talk to a cluster: the served twin uses the test's Azurite and is killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::Env;

/// A child process killed (and reaped) when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Points an `edw` command at the test's Azurite, away from any ambient target or account.
pub fn use_azurite(command: &mut Command, env: &Env) {
    command
        .env("EDW_AZURITE_QUEUE_ENDPOINT", env.azurite.queue_endpoint())
        .env("EDW_AZURITE_TABLE_ENDPOINT", env.azurite.table_endpoint())
        .env_remove("EDW_TARGET")
        .env_remove("AZURE_STORAGE_ACCOUNT_NAME")
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .current_dir(std::env::temp_dir());
}

/// `edw <args>` on the `kube` target of a served twin: its `kubeconfig` (current context) and
/// the test's Azurite.
pub fn edw_on_served_twin(env: &Env, kubeconfig: &Path, args: &[&str]) -> Command {
    let mut command = crate::support::cli::edw_binary();
    command
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("EDW_KUBE_CONTEXT");
    use_azurite(&mut command, env);
    command
}

/// `edw run --target kube --plain <extra> --report-dir <report_dir>` on a served twin's
/// `kubeconfig` with the test's Azurite.
pub fn kube_run(env: &Env, kubeconfig: &Path, report_dir: &Path, extra: &[&str]) -> Command {
    let mut args = vec!["run", "--target", "kube", "--plain"];
    args.extend_from_slice(extra);
    let mut command = edw_on_served_twin(env, kubeconfig, &args);
    command.arg("--report-dir").arg(report_dir);
    command
}

/// One phase command (`edw deploy|validate|load|scale|cleanup` with `args`) on the `kube`
/// target of a served twin, sharing the run's ledger `state`: its exit code, stdout and stderr.
pub fn kube_phase(
    env: &Env,
    kubeconfig: &Path,
    state: &Path,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let mut all = args.to_vec();
    all.extend(["--target", "kube"]);
    let output = edw_on_served_twin(env, kubeconfig, &all)
        .env_remove("EDW_KEDA_NAMESPACE")
        .arg("--run-state")
        .arg(state)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `edw twin serve` (with `extra` arguments) writing `kubeconfig`; returns once it serves.
pub fn serve_twin(env: &Env, kubeconfig: &Path, extra: &[&str]) -> KillOnDrop {
    let mut serve = crate::support::cli::edw_binary();
    serve
        .args(["twin", "serve"])
        .args(extra)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .stdout(Stdio::piped());
    use_azurite(&mut serve, env);
    let mut served = KillOnDrop(serve.spawn().unwrap());
    for line in BufReader::new(served.0.stdout.take().unwrap()).lines() {
        if line.unwrap().starts_with("Ctrl-C") {
            break;
        }
    }
    served
}

/// A kube-rs client of the served twin at `kubeconfig` (its current context).
pub async fn kube_client(kubeconfig: &Path) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The local target (the twin in this process) on the test's Azurite if `EDW_AZURITE_*` name
/// one, else an embedded Azurite.
pub async fn local_target() -> (
    std::sync::Arc<edw_engine::target::Target>,
    edw_engine::config::Config,
) {
    let config = azurite_config();
    let target = edw_engine::target::Target::open(edw_engine::target::TargetKind::Local, &config)
        .await
        .expect("local target");
    (std::sync::Arc::new(target), config)
}

/// The configuration of this process's `EDW_AZURITE_*` variables alone (no deploy.state, no
/// ambient account), read in the temporary directory.
pub fn azurite_config() -> edw_engine::config::Config {
    let inputs = edw_engine::config::ConfigInputs {
        env: std::env::vars()
            .filter(|(k, _)| k.starts_with("EDW_AZURITE"))
            .collect(),
        working_dir: Some(std::env::temp_dir()),
        ..edw_engine::config::ConfigInputs::default()
    };
    edw_engine::config::Config::load(&inputs).expect("config")
}
