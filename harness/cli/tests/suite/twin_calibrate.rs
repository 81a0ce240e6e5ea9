//! `edw twin calibrate` through the binary: jittered twin runs with known delays are fitted
//! back within 10 %, the params file it writes is what `twin simulate --params` reads, and bad
//! run directories exit 2 naming the file and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edw_twin::calibrate::LIFECYCLE_FILE;
use edw_twin::lifecycle::run_recorded;
use edw_twin::params::TwinParams;
use edw_twin::queue::LoadProfile;

use crate::support::cli::{edw, run};

/// A twin run with known delays and 20 % jitter, written as a run directory.
fn run_dir(root: &Path, seed: u64) -> PathBuf {
    let s = Duration::from_secs;
    let params = TwinParams {
        seed,
        jitter: 0.2,
        pod_start_delay: s(9),
        register_delay: s(120),
        initialize_delay: s(150),
        vm_delete_delay: s(45),
        ..TwinParams::default()
    };
    let engine = run_recorded(params, &LoadProfile::burst(30.0, 1000), 1500.0).expect("twin");
    let lifecycle = engine.lifecycle(Some(30.0)).expect("recorded");
    let dir = root.join(format!("run-{seed}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(LIFECYCLE_FILE),
        serde_json::to_string(&lifecycle).unwrap(),
    )
    .unwrap();
    dir
}

#[test]
fn twin_calibrate_recovers_known_delays_and_writes_a_params_file_simulate_reads() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("fitted/params.json");
    let mut command = edw();
    command.args(["twin", "calibrate"]);
    for seed in 1..=8 {
        command.arg(run_dir(root.path(), seed));
    }
    command.arg("--out").arg(&out);
    let (code, stdout, stderr) = run(&mut command);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("confidence high") && stdout.contains("observation(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("consolidation_delay") && stdout.contains("reported only"));
    let params = edw_twin::params::load(Some(&out), &[]).expect("the file it wrote reads");
    for (what, fitted, truth) in [
        ("pod_start_delay", params.pod_start_delay, 9.0),
        ("register_delay", params.register_delay, 120.0),
        ("initialize_delay", params.initialize_delay, 150.0),
        ("vm_delete_delay", params.vm_delete_delay, 45.0),
    ] {
        let fitted = fitted.as_secs_f64();
        assert!(
            (fitted - truth).abs() <= 0.10 * truth,
            "{what}: fitted {fitted} s, true {truth} s (±10 %)"
        );
    }
    let (code, stdout, stderr) = run(edw()
        .args(["twin", "simulate", "--json", "--params"])
        .arg(&out));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report["params"]["initialize_delay"],
        serde_json::to_value(params.initialize_delay).unwrap()
    );
}

#[test]
fn twin_calibrate_refuses_bad_runs_with_exit_2_naming_the_file_and_field() {
    let root = tempfile::tempdir().unwrap();
    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let truncated = root.path().join("truncated");
    std::fs::create_dir_all(&truncated).unwrap();
    std::fs::write(truncated.join(LIFECYCLE_FILE), r#"{"format": 1, "pods": ["#).unwrap();
    let backwards = root.path().join("backwards");
    std::fs::create_dir_all(&backwards).unwrap();
    std::fs::write(
        backwards.join(LIFECYCLE_FILE),
        r#"{"format":1,"unit":"real s","ended_at":9,"nodeclaims":[],"scale_events":[],
        "pods":[{"name":"a","created":20,"scheduled":21,"running":12}]}"#,
    )
    .unwrap();
    let missing = root.path().join("no-such-run");
    for (dir, named) in [
        (
            missing.clone(),
            format!("{}: no such run directory", missing.display()),
        ),
        (
            empty.clone(),
            format!("{}: no lifecycle.json", empty.display()),
        ),
        (
            truncated.clone(),
            format!(
                "{}: line 1, column 23",
                truncated.join(LIFECYCLE_FILE).display()
            ),
        ),
        (
            backwards.clone(),
            format!(
                "{}: pods[0].running (12) is before pods[0].scheduled (21)",
                backwards.join(LIFECYCLE_FILE).display()
            ),
        ),
    ] {
        let out = root.path().join("out.json");
        let (code, stdout, stderr) = run(edw()
            .args(["twin", "calibrate"])
            .arg(&dir)
            .arg("--out")
            .arg(&out));
        assert_eq!(code, 2, "{}: {stdout}{stderr}", dir.display());
        assert!(stderr.contains(&named), "{named}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out.exists(), "nothing is written for a bad run");
    }
}

/// A params file the local target cannot use stops `edw run` before anything starts, naming
/// the variable, the file and what is wrong with it (exit 2, a configuration error).
#[test]
fn a_bad_edw_twin_params_file_stops_a_local_run_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("no-such-params.json");
    let malformed = root.path().join("malformed.json");
    std::fs::write(&malformed, r#"{"pod_start_delay": "#).unwrap();
    let wrong_jitter = root.path().join("jitter.json");
    std::fs::write(&wrong_jitter, r#"{"jitter": 1.5}"#).unwrap();
    for (file, why) in [
        (&missing, "no-such-params.json"),
        (&malformed, "malformed.json"),
        (&wrong_jitter, "jitter"),
    ] {
        let (code, stdout, stderr) = run(edw()
            .args(["run", "--target", "local", "--plain", "--report-dir"])
            .arg(root.path().join("reports"))
            .env("EDW_TWIN_PARAMS", file));
        assert_eq!(code, 2, "{}: {stdout}{stderr}", file.display());
        assert!(stderr.contains("EDW_TWIN_PARAMS"), "{stderr}");
        assert!(stderr.contains(why), "{why}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `edw twin serve --params FILE` builds its twin from the file: two system nodes, not three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_serve_takes_a_params_file() {
    let env = crate::support::Env::start().await;
    let root = tempfile::tempdir().unwrap();
    let params = root.path().join("params.json");
    std::fs::write(&params, r#"{"system_nodes": 2}"#).unwrap();
    let kubeconfig = root.path().join("twin.kubeconfig");
    let _served = crate::support::served::serve_twin(
        &env,
        &kubeconfig,
        &["--params", params.to_str().unwrap()],
    );
    let client = crate::support::served::kube_client(&kubeconfig).await;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
    let names: Vec<String> = nodes
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("aks-systempool-"))
            .count(),
        2,
        "{names:?}"
    );
}

/// The loop the issue asks for, on the kube target: a served twin started with non-default
/// delays (nodes far slower than the defaults), a flow run against it (`edw run --target
/// kube`) that passes and reports its first new node as slower than the twin's prediction on
/// the default params, then `edw twin calibrate` on that run's report directory recovers the
/// delays. The lifecycle's times are when the harness's
/// recorder saw each stage over the API (late by its sampling delay, about a second of the
/// twin's x20 clock), so the tolerance is stated per parameter: 10 % for the NodeClaim stages
/// (150-240 s), 15 % for the pod start (12 s). Parameters with fewer than 3 observations keep
/// their default and are not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kube_run_against_a_served_twin_calibrates_back_to_its_params() {
    let env = crate::support::Env::start().await;
    let root = tempfile::tempdir().unwrap();
    let s = Duration::from_secs;
    // Nodes much slower than the defaults (85 s / 90 s): the run's prediction, on the
    // default params, must say so.
    let truth = TwinParams {
        pod_start_delay: s(12),
        register_delay: s(150),
        initialize_delay: s(160),
        ..TwinParams::default()
    };
    let params = root.path().join("truth.json");
    std::fs::write(&params, serde_json::to_string(&truth).unwrap()).unwrap();
    let kubeconfig = root.path().join("twin.kubeconfig");
    let _served = crate::support::served::serve_twin(
        &env,
        &kubeconfig,
        &["--params", params.to_str().unwrap()],
    );
    let reports = root.path().join("reports");
    let output =
        crate::support::served::kube_run(&env, &kubeconfig, &reports, &["--messages", "200"])
            .output()
            .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let run_dir = reports.join("flow-burst-kube");
    assert!(
        run_dir.join(LIFECYCLE_FILE).exists(),
        "{} in {stdout}",
        run_dir.display()
    );
    println!("{stdout}");
    // The run passed, and says its nodes came later than the twin on its default params
    // predicts: a finding in every report, never silent.
    assert!(stdout.contains("SLOWER than predicted"), "{stdout}");
    let junit = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"name="finding.first-new-node-slower-than-predicted" value="warning: first new node: SLOWER than predicted: first new node took "#),
        "{junit}"
    );
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("| first new node |") && summary.contains("**SLOWER than predicted**"),
        "{summary}"
    );
    let fitted = root.path().join("fitted.json");
    let (code, out, err) = run(edw()
        .args(["twin", "calibrate"])
        .arg(&run_dir)
        .arg("--out")
        .arg(&fitted));
    assert_eq!(code, 0, "{out}{err}");
    println!("{out}");
    let fitted: TwinParams =
        serde_json::from_str(&std::fs::read_to_string(&fitted).unwrap()).unwrap();
    let mut asserted = Vec::new();
    for (name, want, got, tolerance) in [
        (
            "pod_start_delay",
            truth.pod_start_delay,
            fitted.pod_start_delay,
            0.15,
        ),
        (
            "register_delay",
            truth.register_delay,
            fitted.register_delay,
            0.10,
        ),
        (
            "initialize_delay",
            truth.initialize_delay,
            fitted.initialize_delay,
            0.10,
        ),
    ] {
        // A parameter the run gave too few observations of keeps its default, and says so.
        let kept_default = out
            .lines()
            .any(|l| l.contains(name) && l.contains("default"));
        if kept_default {
            continue;
        }
        let (want, got) = (want.as_secs_f64(), got.as_secs_f64());
        assert!(
            (got - want).abs() <= tolerance * want,
            "{name}: fitted {got} s, started with {want} s (±{} %)\n{out}",
            tolerance * 100.0
        );
        asserted.push(name);
    }
    assert!(
        asserted.contains(&"pod_start_delay") && asserted.contains(&"initialize_delay"),
        "the run observed pods and nodes enough to fit them: {asserted:?}\n{out}"
    );
    // The consumer rate is the run's own drain measurement (its 200 messages over the
    // running-pod-seconds until the queue first read 0), as lifecycle.json states it. The
    // walkthrough's configuration (minReplicaCount 0, activationQueueLength 20) may leave a
    // tail of up to 20 on the queue at 0 replicas (the `stranded-tail` warning; seen once in
    // nine flake-check runs): then the queue never read 0, no drain was measured, and the rate
    // keeps its default, saying why.
    let lifecycle: edw_model::lifecycle::Lifecycle =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join(LIFECYCLE_FILE)).unwrap())
            .unwrap();
    match lifecycle.drain {
        Some(drain) => {
            assert_eq!(drain.messages, 200, "{drain:?}");
            assert!(
                (fitted.messages_per_pod_second - drain.per_pod_second()).abs() < 1e-9,
                "fitted {} msg/s, the run's drain {drain:?}\n{out}",
                fitted.messages_per_pod_second
            );
            assert!(
                out.contains("200 message(s) over"),
                "the rate says what it rests on:\n{out}"
            );
        }
        None => {
            assert!(
                stdout.contains("WARN verify") && stdout.contains("stranded tail"),
                "no drain measured, and not the configuration's stranded tail:\n{stdout}"
            );
            assert_eq!(
                fitted.messages_per_pod_second,
                TwinParams::default().messages_per_pod_second,
                "without a drain the rate keeps its default"
            );
            assert!(
                out.contains("no run measured its drain"),
                "the rate says why it kept its default:\n{out}"
            );
        }
    }
}
