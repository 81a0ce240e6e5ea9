//! The `kube` target end to end, against a served twin (no real cluster is reachable here):
//! `edw twin serve` in one process, `edw run --target kube` with its kubeconfig in another.
//! The run goes through the kubeconfig, capability detection and kube-rs over HTTP, and its
//! report stays labelled simulated because the twin says so in /version.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::support::served::{
    edw_on_served_twin, kube_client, kube_phase, kube_run, serve_twin, use_azurite, KillOnDrop,
};
use crate::support::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_runs_through_the_kube_target_against_a_served_twin() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let _served = serve_twin(&env, &kubeconfig, &[]);
    let output = kube_run(&env, &kubeconfig, dir.path(), &["--messages", "200"])
        .output()
        .unwrap();
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
        stdout.contains("flow::burst on kube: SIMULATED cluster (an edw twin, clock x20)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[SIMULATED: not a cluster result]"),
        "{stdout}"
    );
    // The served twin states its clock over its API: the harness measures the phases in its
    // simulated seconds, as on the local target, and says so.
    assert!(
        stdout.contains(
            "phases, in simulated seconds (the served twin's governed clock, read over its API), after the load started:"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("simulated s after the load started")
            && !stdout.contains("real s after the load started"),
        "{stdout}"
    );
    assert!(stdout.contains("estimated cost (SIMULATED): $"), "{stdout}");
    let junit = std::fs::read_to_string(dir.path().join("flow-burst-kube/junit.xml")).unwrap();
    assert!(
        junit.contains("[simulated]") && junit.contains("[kube]"),
        "{junit}"
    );
    assert!(
        junit.contains(
            r#"<property name="clock.phases" value="simulated seconds (the served twin&apos;s governed clock"#
        ),
        "{junit}"
    );
    let summary = std::fs::read_to_string(dir.path().join("flow-burst-kube/summary.md")).unwrap();
    assert!(
        summary.contains(
            "| Phase | After load start, in simulated seconds (the served twin's governed clock"
        ) && summary.contains("| Node-hours (simulated s) |"),
        "{summary}"
    );
    // Storage by connection string (as on kind with Azurite): a Secret for pods and KEDA, whose
    // value never reaches a report.
    assert!(
        junit.contains("created Secret edw-storage-connection-"),
        "{junit}"
    );
    assert!(
        !junit.contains("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1"),
        "the key leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phases_run_one_at_a_time_sharing_the_run_state() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let state = dir.path().join("edw-run.state");
    // x10: slow enough that `edw scale`, a new process after `edw load`, sees the scale-out.
    let _served = serve_twin(&env, &kubeconfig, &["--scale", "10"]);
    for (phase, expect) in [
        (
            "deploy",
            "ok   deploy: ScaledObject and TriggerAuthentication",
        ),
        ("validate", "ok   validate: ScaledObject Ready with its HPA"),
        ("load", "ok   load: producer burst"),
        // `ok`, or `WARN` with the counts when the walkthrough's stranded tail happened.
        (
            "scale",
            " verify: sent = processed once + stranded + poisoned, none lost or duplicated",
        ),
        ("cleanup", "ok   delete queue, poison queue and table"),
    ] {
        let (code, stdout, stderr) =
            kube_phase(&env, &kubeconfig, &state, &[phase, "--messages", "1000"]);
        assert_eq!(code, Some(0), "edw {phase}:\n{stdout}\n{stderr}");
        assert!(stdout.contains(expect), "edw {phase}:\n{stdout}");
        assert!(!stdout.contains("  FAIL "), "edw {phase}:\n{stdout}");
    }
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(
        text.contains("EDW_RUN_TARGET=kube") && text.contains("EDW_RUN_SENT=1000"),
        "{text}"
    );

    // The local twin cannot be split into phases, and says what to do instead.
    let mut local = crate::support::cli::edw_binary();
    local.args(["deploy", "--target", "local"]);
    use_azurite(&mut local, &env);
    let output = local.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("edw twin serve"));
}

/// `edw scale` started after the queue drained cannot watch the scale-out any more: it answers
/// from the HPA's SuccessfulRescale events at once instead of waiting out the step's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_after_the_drain_answers_from_the_autoscalers_events() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let state = dir.path().join("edw-run.state");
    let _served = serve_twin(&env, &kubeconfig, &[]);
    let phase = |phase: &str| {
        let (code, stdout, stderr) =
            kube_phase(&env, &kubeconfig, &state, &[phase, "--messages", "1000"]);
        (code, format!("edw {phase}:\n{stdout}\n{stderr}"))
    };
    for step in ["deploy", "validate", "load"] {
        let (code, text) = phase(step);
        assert_eq!(code, Some(0), "{text}");
    }
    let ledger = std::fs::read_to_string(&state).unwrap();
    let queue = ledger
        .lines()
        .find_map(|l| l.strip_prefix("EDW_RUN_QUEUE="))
        .expect("the run's queue in the ledger")
        .to_owned();
    let value = |key: &str| {
        ledger
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} in the ledger:\n{ledger}"))
            .to_owned()
    };
    // `edw load` recorded which autoscaler events were older than its load (e.g. the node of
    // the Deployment's first pod), for the look-back to leave out.
    let before = value("EDW_RUN_EVENTS_BEFORE_LOAD");
    assert!(
        before.split(',').filter(|e| !e.is_empty()).all(|e| e
            .rsplit_once('=')
            .is_some_and(|(_, n)| n.parse::<i32>().is_ok())),
        "{ledger}"
    );
    let queue = env.storage.queue(&queue);
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(kube_client(&kubeconfig).await, &value("EDW_RUN_NAMESPACE"));
    let deployment = value("EDW_RUN_DEPLOYMENT");
    // Drained and scaled back in before `edw scale` starts: nothing is left to watch. The
    // walkthrough's configuration can leave a stranded tail (at most activationQueueLength 20
    // messages at 0 replicas, seen once in CI: 1 left); KEDA never scales out for it either.
    // The step's first sample then sees no consumer pod running or pending either (a pod that
    // is terminating does not count).
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(kube_client(&kubeconfig).await, &value("EDW_RUN_NAMESPACE"));
    let left = crate::support::eventually(
        "the queue drained (or left a stranded tail) and the consumers scaled to 0, their pods gone",
        std::time::Duration::from_secs(240),
        || async {
            let depth = queue.approximate_count().await.map_err(|e| e.to_string())?;
            let spec = deployments
                .get(&deployment)
                .await
                .map_err(|e| e.to_string())?
                .spec
                .ok_or("a Deployment without spec")?;
            let selector = spec
                .selector
                .match_labels
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let working = pods
                .list(&kube::api::ListParams::default().labels(&selector))
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| {
                    matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Running" | "Pending") | None
                    )
                })
                .count();
            match (depth, spec.replicas, working) {
                (depth @ 0..=20, Some(0), 0) => Ok(depth),
                other => Err(format!("queue, replicas and pods not terminating {other:?}")),
            }
        },
    )
    .await;
    let (code, text) = phase("scale");
    let (cleanup, cleanup_text) = phase("cleanup");
    // A tail can still shrink (a terminating pod finishing its last message), never grow.
    let empty = text.contains("the queue was already empty (0) when this step began");
    let tail = text.contains("only a stranded tail of");
    assert!(
        (empty || (left > 0 && tail)) && text.contains("SuccessfulRescale events since the load"),
        "queue {left} before the step:\n{text}"
    );
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(cleanup, Some(0), "{cleanup_text}");
}

/// KEDA installed by its Helm chart (as `ci/kind-up.sh` does) runs in namespace `keda`, not in
/// kube-system like the AKS add-on: validate finds the operator there without being told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_finds_keda_where_its_helm_chart_puts_it() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let state = dir.path().join("edw-run.state");
    let _served = serve_twin(&env, &kubeconfig, &["--set", "keda_namespace=keda"]);
    let phase = |phase: &str| kube_phase(&env, &kubeconfig, &state, &[phase]);
    let (code, stdout, stderr) = phase("deploy");
    assert_eq!(code, Some(0), "edw deploy:\n{stdout}\n{stderr}");
    let (code, stdout, stderr) = phase("validate");
    let (cleanup, cleanup_out, _) = phase("cleanup");
    assert_eq!(code, Some(0), "edw validate:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("ok   validate: KEDA operator running (kube-system or keda)"),
        "edw validate:\n{stdout}"
    );
    assert_eq!(cleanup, Some(0), "edw cleanup:\n{cleanup_out}");
    // The operator it found is the one in `keda`: kube-system has none.
    let client = kube_client(&kubeconfig).await;
    let operators = |namespace: &str| {
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(client.clone(), namespace);
        async move {
            pods.list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .filter(|n| n.starts_with("keda-operator-"))
                .count()
        }
    };
    assert!(operators("keda").await > 0);
    assert_eq!(operators("kube-system").await, 0);
    // One Kubernetes version: the API server's /version and every node's kubelet.
    let server = client.apiserver_version().await.unwrap().git_version;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    for node in nodes.list(&Default::default()).await.unwrap().items {
        let kubelet = node
            .status
            .and_then(|s| s.node_info)
            .map(|i| i.kubelet_version);
        assert_eq!(kubelet.as_deref(), Some(server.as_str()));
    }
}

#[tokio::test]
async fn capabilities_are_detected_from_the_served_api_groups() {
    use edw_engine::target::Capabilities;
    use edw_twin::api::ApiServer;
    use edw_twin::resources::Registry;
    let clock = std::sync::Arc::new(edw_twin::clock::VirtualClock::new(
        time::OffsetDateTime::UNIX_EPOCH,
    ));
    let store = edw_twin::store::Store::new(clock, 1);
    let full = Registry::standard().unwrap();
    let client = ApiServer::new(store.clone(), std::sync::Arc::new(full.clone())).kube_client();
    assert_eq!(
        Capabilities::detect(&client).await.unwrap(),
        Capabilities {
            karpenter: true,
            keda: true
        }
    );
    // A cluster with KEDA but no Karpenter (kind with KEDA): the node steps will be skipped.
    let mut no_karpenter = full;
    no_karpenter.types.retain(|t| t.group != "karpenter.sh");
    let client = ApiServer::new(store, std::sync::Arc::new(no_karpenter)).kube_client();
    assert_eq!(
        Capabilities::detect(&client).await.unwrap(),
        Capabilities {
            karpenter: false,
            keda: true
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_run_is_cleaned_from_its_ledger() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let _served = serve_twin(&env, &kubeconfig, &[]);
    let mut run = edw_on_served_twin(
        &env,
        &kubeconfig,
        &["run", "--target", "kube", "--plain", "--messages", "500"],
    );
    run.arg("--report-dir")
        .arg(dir.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = KillOnDrop(run.spawn().unwrap());
    let mut queue = None;
    for line in BufReader::new(child.0.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("run resources: ") {
            queue = rest.split_whitespace().nth(3).map(str::to_owned);
        }
        if line.starts_with("step scale: replicas reach the modelled peak") {
            // A crash: no cleanup runs.
            child.0.kill().unwrap();
            break;
        }
    }
    let _ = child.0.wait();
    let queue = queue.expect("the run printed its queue");
    assert!(
        env.storage.queue(&queue).exists().await.unwrap(),
        "the crashed run left its queue"
    );

    let output = edw_on_served_twin(
        &env,
        &kubeconfig,
        &["cleanup", "--target", "kube", "--run-state"],
    )
    .arg(dir.path().join("edw-run.state"))
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("ok   delete Kubernetes objects")
            && stdout.contains("ok   delete queue, poison queue and table"),
        "{stdout}"
    );
    assert!(
        !env.storage.queue(&queue).exists().await.unwrap(),
        "queue {queue} left behind"
    );
}

/// `edw bench` with its idle figure taken on a served twin in another process (the harness
/// alone): every figure is there with its reference, including the transport's before/after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_prints_every_figure_and_measures_idle_on_another_process() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let _served = serve_twin(&env, &kubeconfig, &[]);
    let output = edw_on_served_twin(
        &env,
        &kubeconfig,
        &[
            "bench",
            "--messages",
            "50",
            "--idle",
            "2s",
            "--idle-on",
            "kube",
        ],
    )
    .arg("--report-dir")
    .arg(dir.path())
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report = std::fs::read_to_string(dir.path().join("bench.md")).unwrap();
    for figure in [
        "producer into Azurite",
        "SDK's default transport (before) vs ours (after)",
        "consumer drain",
        "observation latency",
        "full local flow",
        "twin: worked example",
        "on the kube target (a served twin in another process",
        "% of a core",
        "memory (peak during the wait)",
    ] {
        assert!(report.contains(figure), "{figure} missing:\n{report}");
    }
    // Each goal is judged, not left to the reader.
    assert!(
        report.contains("of the ceiling (goal ≥ 90%): met")
            || report.contains("of the ceiling (goal ≥ 90%): MISSED"),
        "{report}"
    );
    // A ratio near 1 is "about the same", never "1x faster".
    assert!(!report.contains(" 1x faster"), "{report}");
}

/// `edw twin serve` prints what another shell needs (an absolute KUBECONFIG, the target and the
/// storage endpoints its pods and KEDA read): with those lines alone, `edw run --target kube`
/// runs against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_lines_twin_serve_prints_are_all_a_kube_run_needs() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut serve = crate::support::cli::edw_binary();
    serve
        .args(["twin", "serve", "--kubeconfig", "twin.kubeconfig"])
        .current_dir(dir.path())
        .stdout(Stdio::piped());
    use_azurite(&mut serve, &env);
    serve.current_dir(dir.path());
    let mut served = KillOnDrop(serve.spawn().unwrap());
    let mut exports = Vec::new();
    let mut clock_explained = false;
    for line in BufReader::new(served.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // Why `kubectl describe` shows ages as <invalid> against a x20 twin.
        clock_explained |= line.contains("kubectl shows their ages as <invalid>");
        if let Some(export) = line.trim().strip_prefix("export ") {
            let (key, value) = export.split_once('=').unwrap();
            exports.push((key.to_owned(), value.to_owned()));
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    assert!(
        clock_explained,
        "twin serve does not say why ages show <invalid>"
    );
    let keys: Vec<&str> = exports.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "KUBECONFIG",
            "EDW_TARGET",
            "EDW_AZURITE_QUEUE_ENDPOINT",
            "EDW_AZURITE_TABLE_ENDPOINT"
        ]
    );
    assert!(
        std::path::Path::new(&exports[0].1).is_absolute(),
        "{exports:?}"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let output = crate::support::cli::edw_binary()
        .args(["run", "--plain", "--messages", "200", "--report-dir"])
        .arg(elsewhere.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs(exports.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("flow::burst on kube: SIMULATED"),
        "{stdout}"
    );
    drop(served);
}

/// A served twin whose pods and KEDA read another Azurite than the harness: the run fails as
/// soon as KEDA reports that it cannot read the queue, naming both sides, instead of waiting
/// out the ScaledObject step's 300 s (or the scale-out's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_reading_other_storage_is_named_at_once() {
    let cluster_storage = Env::start().await;
    // Not the run's shared Azurite: storage the cluster does not read.
    let harness_storage = Env::start_own().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let _served = serve_twin(&cluster_storage, &kubeconfig, &[]);
    let output = kube_run(
        &harness_storage,
        &kubeconfig,
        dir.path(),
        &["--messages", "500"],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    // KEDA cannot read the run's queue as soon as the ScaledObject exists: the step that
    // installs it names both sides instead of waiting out its 300 s for Ready=True. KEDA marks
    // a new ScaledObject Ready before its first poll (as on a cluster), so a harness that reads
    // it in between passes that step and the scale step's guard names the same mismatch.
    let line = stdout
        .lines()
        .find(|l| {
            l.contains("FAIL deploy: ScaledObject and TriggerAuthentication")
                || l.contains("FAIL scale: replicas reach the modelled peak")
        })
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("the cluster's KEDA cannot read the queue")
            && line.contains("KEDAScalerFailed")
            && line.contains("the harness reads queue aws2azmsgs-"),
        "{line}"
    );
    assert!(
        !line.contains("did not finish within its timeout"),
        "{line}"
    );
}
