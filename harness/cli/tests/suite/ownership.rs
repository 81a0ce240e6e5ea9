//! A run deletes only what it created: a team's namespace `aqs-demo` with a ConfigMap, its
//! service account, consumer Deployment, ScaledObject and the NodePool `default` are there
//! before the run and survive it however it ends (success, a failed step, a panic, a step
//! timeout, the whole-run timeout, SIGINT, SIGTERM, SIGKILL followed by `edw cleanup`), on the
//! local target and on the kube target against a served twin; and the run's own objects (its
//! namespace, NodePool, queue and table) are gone afterwards.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::support::served::{edw_on_served_twin, kube_client, kube_run, serve_twin, KillOnDrop};
use crate::support::Env;
use edw_engine::manifests::{render, Applied, RUN_ID_LABEL};
use edw_engine::runner::{
    run, Context, FlowSettings, RunOptions, Scenario, Step, StepFuture, StepResult,
};
use edw_engine::target::{Target, TargetKind};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The team's objects, as a cluster running the sample holds them (its NodePool in
/// karpenter.sh/v1, the only version NAP, and the twin, serve).
fn team_objects() -> Vec<Value> {
    let mut pool = render("default-pool.yaml", &BTreeMap::new()).expect("the captured NodePool");
    edw_engine::manifests::nodepool_as_v1(&mut pool[0]);
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "aqs-demo"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "team-keepme", "namespace": "aqs-demo"},
               "data": {"owner": "the team"}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "aqs-app-service-account", "namespace": "aqs-demo"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "aqs-app", "namespace": "aqs-demo"},
               "spec": {"replicas": 0,
                        "selector": {"matchLabels": {"app": "aqs-reader"}},
                        "template": {"metadata": {"labels": {"app": "aqs-reader"}},
                                     "spec": {"serviceAccountName": "aqs-app-service-account",
                                              "containers": [{"name": "keda-queue-reader", "image": "team/consumer:1"}]}}}}),
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
               "metadata": {"name": "aws2az-queue-scaleobj", "namespace": "aqs-demo"},
               "spec": {"scaleTargetRef": {"name": "aqs-app"}, "minReplicaCount": 0, "maxReplicaCount": 2,
                        "triggers": [{"type": "azure-queue",
                                      "metadata": {"queueName": "team-queue", "queueLength": "5", "connectionFromEnv": "TEAM_CONNECTION"}}]}}),
        pool.remove(0),
    ]
}

fn api(client: &kube::Client, reference: &Applied) -> Api<DynamicObject> {
    let plural = match reference.kind.as_str() {
        "NodePool" => "nodepools".to_owned(),
        other => format!("{}s", other.to_lowercase()),
    };
    let (group, version) = reference
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", &reference.api_version));
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, &reference.kind),
        &plural,
    );
    match &reference.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Creates the team's objects and returns each with its uid.
async fn plant(client: &kube::Client) -> Vec<(Applied, String)> {
    let objects = team_objects();
    let created = edw_engine::manifests::create(client, &objects)
        .await
        .expect("the team's objects are created");
    let mut planted = Vec::new();
    for reference in created {
        let found = api(client, &reference).get(&reference.name).await.unwrap();
        planted.push((reference, found.metadata.uid.expect("a uid")));
    }
    planted
}

/// Every planted object is still there, the same object (same uid), with its own labels only
/// and, for the ConfigMap, its data.
async fn assert_intact(client: &kube::Client, planted: &[(Applied, String)], after: &str) {
    for (reference, uid) in planted {
        let found = api(client, reference)
            .get_opt(&reference.name)
            .await
            .unwrap()
            .unwrap_or_else(|| {
                panic!(
                    "after {after}: {} {} was deleted",
                    reference.kind, reference.name
                )
            });
        assert_eq!(
            found.metadata.uid.as_deref(),
            Some(uid.as_str()),
            "after {after}: {} {} was replaced",
            reference.kind,
            reference.name
        );
        assert!(
            !found
                .metadata
                .labels
                .unwrap_or_default()
                .contains_key(RUN_ID_LABEL),
            "after {after}: {} {} was changed by a run",
            reference.kind,
            reference.name
        );
        if reference.kind == "ConfigMap" {
            assert_eq!(found.data["data"]["owner"], "the team", "after {after}");
        }
    }
}

/// Nothing labelled with a run id is left: no namespace, NodePool or NodeClaim of a run.
async fn assert_no_run_objects(client: &kube::Client, after: &str) {
    let selector = ListParams::default().labels(RUN_ID_LABEL);
    for (api_version, kind) in [("v1", "Namespace"), ("karpenter.sh/v1", "NodePool")] {
        let reference = Applied {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: None,
            name: String::new(),
        };
        let left: Vec<String> = api(client, &reference)
            .list(&selector)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
            .filter_map(|o| o.metadata.name)
            .collect();
        assert!(
            left.is_empty(),
            "after {after}: the run left {kind} {left:?}"
        );
    }
}

fn fail_step(_: &mut Context) -> StepFuture<'_> {
    Box::pin(async { StepResult::failed("a failing check", []) })
}

fn panic_step(_: &mut Context) -> StepFuture<'_> {
    Box::pin(async { panic!("a step that panics") })
}

fn hang_step(_: &mut Context) -> StepFuture<'_> {
    Box::pin(std::future::pending())
}

/// The burst flow up to its ScaledObject (everything the run creates), then `extra`.
fn deploy_then(name: &str, extra: Step) -> Scenario {
    let mut scenario = edw_scenarios::burst();
    let last = scenario
        .steps
        .iter()
        .position(|s| s.name == "deploy: ScaledObject and TriggerAuthentication")
        .expect("the flow installs its ScaledObject");
    scenario.steps.truncate(last + 1);
    scenario.steps.push(extra);
    scenario.name = format!("ownership::{name}");
    scenario
}

/// Runs `scenario` on `target` the library's way (as `edw run` and the trials do) and
/// returns whether it passed and the cleanup steps' outcomes.
async fn run_on(
    target: &Arc<Target>,
    config: &edw_engine::config::Config,
    scenario: &Scenario,
    options: &RunOptions,
    cancel: &CancellationToken,
) -> (bool, Vec<String>) {
    let settings = FlowSettings {
        messages: 200,
        ..scenario.settings.clone()
    };
    let mut context = Context::new(target.clone(), config.clone(), settings);
    let report = run(scenario, &mut context, options, cancel).await;
    let cleanup = report
        .steps
        .iter()
        .filter(|s| s.outcome.is_failed())
        .chain(&report.cleanup)
        .map(|s| format!("{}: {:?}", s.name, s.outcome))
        .collect::<Vec<_>>();
    for step in &report.cleanup {
        assert!(
            !step.outcome.is_failed(),
            "{}: cleanup failed: {cleanup:?}",
            scenario.name
        );
    }
    (report.passed(), cleanup)
}

/// Every in-process way a run ends, on `target`: success, a failed step, a panic, a step
/// timeout, the whole-run timeout and an interruption (what SIGINT and SIGTERM do in `edw run`).
async fn every_in_process_ending(
    target: &Arc<Target>,
    config: &edw_engine::config::Config,
    planted: &[(Applied, String)],
    with_success: bool,
) {
    let client = target.client();
    let none = RunOptions::default();
    let endings: Vec<(&str, Scenario, RunOptions, bool)> = vec![
        (
            "a failed step",
            deploy_then(
                "failed",
                Step::new("fails", Duration::from_secs(60), fail_step),
            ),
            none.clone(),
            false,
        ),
        (
            "a panic",
            deploy_then(
                "panic",
                Step::new("panics", Duration::from_secs(60), panic_step),
            ),
            none.clone(),
            false,
        ),
        (
            "a step timeout",
            deploy_then(
                "timeout",
                Step::new("hangs", Duration::from_secs(20), hang_step),
            ),
            none.clone(),
            false,
        ),
        (
            "the whole-run timeout",
            deploy_then(
                "deadline",
                Step::new("hangs", Duration::from_secs(86_400), hang_step),
            ),
            RunOptions {
                deadline: Some(Duration::from_secs(8)),
                ..RunOptions::default()
            },
            false,
        ),
    ];
    for (how, scenario, options, expect_pass) in endings {
        let (passed, cleanup) = run_on(
            target,
            config,
            &scenario,
            &options,
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(passed, expect_pass, "{how}: {cleanup:?}");
        assert_intact(&client, planted, how).await;
        assert_no_run_objects(&client, how).await;
        println!("{how}: the team's 6 objects intact, the run's own gone ({cleanup:?})");
    }
    // An interruption: what Ctrl-C and SIGTERM do to `edw run` (its token is cancelled), once
    // the run has created its namespace.
    let cancel = CancellationToken::new();
    let interrupt = cancel.clone();
    let watcher = client.clone();
    tokio::spawn(async move {
        let namespaces = Applied {
            api_version: "v1".to_owned(),
            kind: "Namespace".to_owned(),
            namespace: None,
            name: String::new(),
        };
        crate::support::eventually(
            "the run creates its namespace",
            Duration::from_secs(120),
            || {
                let api = api(&watcher, &namespaces);
                async move {
                    let list = api
                        .list(&ListParams::default().labels(RUN_ID_LABEL))
                        .await
                        .map_err(|e| e.to_string())?;
                    if list.items.is_empty() {
                        Err("no namespace with a run id yet".to_owned())
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await;
        interrupt.cancel();
    });
    let scenario = deploy_then(
        "interrupted",
        Step::new("hangs", Duration::from_secs(86_400), hang_step),
    );
    let (passed, cleanup) = run_on(target, config, &scenario, &none, &cancel).await;
    assert!(!passed);
    assert_intact(&client, planted, "an interruption").await;
    assert_no_run_objects(&client, "an interruption").await;
    println!("an interruption: the team's objects intact, the run's own gone ({cleanup:?})");
    if with_success {
        let (passed, cleanup) = run_on(
            target,
            config,
            &edw_scenarios::burst(),
            &none,
            &CancellationToken::new(),
        )
        .await;
        assert!(
            passed,
            "the burst flow passes next to the team's objects: {cleanup:?}"
        );
        assert_intact(&client, planted, "a successful run").await;
        assert_no_run_objects(&client, "a successful run").await;
        println!("a successful run: the team's objects intact, the run's own gone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_teams_objects_survive_every_way_a_local_run_ends() {
    let (target, config) = crate::support::served::local_target().await;
    let planted = plant(&target.client()).await;
    every_in_process_ending(&target, &config, &planted, true).await;
}

/// A run creates, it never applies over: an object of the same name is refused, named, and
/// left exactly as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_over_an_existing_object_is_refused_and_changes_nothing() {
    let (target, _) = crate::support::served::local_target().await;
    let client = target.client();
    let planted = plant(&client).await;
    let mut again = team_objects();
    let owner = edw_engine::manifests::Ownership {
        run_id: "k3x9q2".to_owned(),
        nodepool: None,
    };
    edw_engine::manifests::stamp_ownership(&mut again, &owner);
    for object in again {
        let error = edw_engine::manifests::create(&client, std::slice::from_ref(&object))
            .await
            .expect_err("an existing name is refused");
        let text = error.to_string();
        assert!(
            text.contains("already exists and this run did not create it: it is left untouched"),
            "{text}"
        );
        assert!(
            text.contains(object["metadata"]["name"].as_str().unwrap()),
            "{text}"
        );
    }
    assert_intact(&client, &planted, "creating over them").await;
}

/// `edw run --target kube` in another process, stopped by `stop` once the run has created its
/// objects (at its first scale step); returns its exit code.
fn binary_run_stopped(env: &Env, kubeconfig: &Path, dir: &Path, stop: &str) -> Option<i32> {
    let mut command = edw_on_served_twin(
        env,
        kubeconfig,
        &["run", "--target", "kube", "--plain", "--messages", "500"],
    );
    command
        .arg("--report-dir")
        .arg(dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = KillOnDrop(command.spawn().unwrap());
    let mut stopped = false;
    for line in BufReader::new(child.0.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if !stopped && line.starts_with("step scale: replicas reach the modelled peak") {
            assert!(Command::new("kill")
                .args([stop, &child.0.id().to_string()])
                .status()
                .unwrap()
                .success());
            stopped = true;
        }
    }
    assert!(stopped, "the run reached its scale step");
    child.0.wait().unwrap().code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_teams_objects_survive_every_way_a_kube_run_ends() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let _served = serve_twin(&env, &kubeconfig, &[]);
    let client = kube_client(&kubeconfig).await;
    let planted = plant(&client).await;

    // Through the binary: success, the whole-run timeout, SIGINT, SIGTERM.
    let success = kube_run(&env, &kubeconfig, dir.path(), &["--messages", "200"])
        .output()
        .unwrap();
    assert_eq!(
        success.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&success.stdout),
        String::from_utf8_lossy(&success.stderr)
    );
    assert_intact(&client, &planted, "a successful run").await;
    assert_no_run_objects(&client, "a successful run").await;

    let deadline = kube_run(
        &env,
        &kubeconfig,
        dir.path(),
        &["--messages", "500", "--timeout", "6s"],
    )
    .output()
    .unwrap();
    assert_eq!(deadline.status.code(), Some(1));
    assert_intact(&client, &planted, "the whole-run timeout").await;
    assert_no_run_objects(&client, "the whole-run timeout").await;

    for signal in ["-INT", "-TERM"] {
        let code = binary_run_stopped(&env, &kubeconfig, dir.path(), signal);
        assert_eq!(code, Some(130), "{signal}");
        assert_intact(&client, &planted, signal).await;
        assert_no_run_objects(&client, signal).await;
    }

    // SIGKILL: nothing cleans up in the process; `edw cleanup` from the ledger does.
    let code = binary_run_stopped(&env, &kubeconfig, dir.path(), "-KILL");
    assert_eq!(code, None, "killed by a signal");
    let ledger = std::fs::read_to_string(dir.path().join("edw-run.state")).unwrap();
    assert!(ledger.contains("EDW_RUN_ID="), "{ledger}");
    let cleanup = edw_on_served_twin(
        &env,
        &kubeconfig,
        &["cleanup", "--target", "kube", "--run-state"],
    )
    .arg(dir.path().join("edw-run.state"))
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&cleanup.stdout);
    assert_eq!(cleanup.status.code(), Some(0), "{stdout}");
    assert_intact(&client, &planted, "SIGKILL and edw cleanup").await;
    assert_no_run_objects(&client, "SIGKILL and edw cleanup").await;

    // A ledger that names the team's objects (hand-edited, or from an older edw) deletes none
    // of them: they do not carry its run id.
    let forged = dir.path().join("forged.state");
    std::fs::write(
        &forged,
        "EDW_RUN_TARGET=kube\nEDW_RUN_ID=abcdef\nEDW_RUN_NAMESPACE=aqs-demo\nEDW_RUN_APPLIED=v1|Namespace||aqs-demo;karpenter.sh/v1beta1|NodePool||default;apps/v1|Deployment|aqs-demo|aqs-app\n",
    )
    .unwrap();
    let cleanup = edw_on_served_twin(
        &env,
        &kubeconfig,
        &["cleanup", "--target", "kube", "--run-state"],
    )
    .arg(&forged)
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&cleanup.stdout);
    assert_eq!(cleanup.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("left alone"), "{stdout}");
    assert_intact(&client, &planted, "a ledger naming the team's objects").await;

    // In process, through the kube target: a failed step, a panic, a step timeout, the
    // whole-run timeout and an interruption.
    std::env::set_var("KUBECONFIG", &kubeconfig);
    std::env::remove_var("EDW_KUBE_CONTEXT");
    std::env::set_var("EDW_AZURITE_QUEUE_ENDPOINT", env.azurite.queue_endpoint());
    std::env::set_var("EDW_AZURITE_TABLE_ENDPOINT", env.azurite.table_endpoint());
    let config = crate::support::served::azurite_config();
    let target = Arc::new(Target::open(TargetKind::Kube, &config).await.unwrap());
    every_in_process_ending(&target, &config, &planted, false).await;
}

/// `--use-deployed`: the team's consumer (the sample deployed by `edw twin serve
/// --deploy-sample`) is loaded and observed; no Kubernetes object, queue or table is created or
/// deleted, and verify counts only this run's messages although the team's table already holds
/// rows of earlier traffic with the same message texts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_deployed_creates_and_deletes_nothing_and_counts_only_its_messages() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_served, kubeconfig, client) = served_sample(&env, dir.path()).await;
    // Earlier traffic in the team's table: the same texts a run sends, stamped long ago.
    let table = env.storage.table("aws2azpmts");
    for i in 1..=5u64 {
        let row = edw_engine::workload::ProcessedEntity {
            partition_key: format!("earlier-{i}"),
            row_key: "2020-01-01T00:00:00Z".to_owned(),
            data: edw_engine::workload::label(i),
            src_stamp: "2020-01-01 00:00:00.000000".to_owned(),
            date_stamp: "2020-01-01 00:00:01.000000".to_owned(),
        };
        table.insert(&row).await.unwrap();
    }
    let before = cluster_names(&client).await;
    let (stdout, stderr) =
        passing_use_deployed_run(&env, &kubeconfig, dir.path(), &["--messages", "200"]);
    assert!(
        stderr.contains("the deployed consumer (load and observe only)"),
        "{stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("skip delete Kubernetes objects")
                && l.contains("--use-deployed: the run created no Kubernetes object")),
        "{stdout}"
    );
    let junit = std::fs::read_to_string(dir.path().join("flow-burst-kube/junit.xml")).unwrap();
    // Only this run's rows are counted: the earlier rows would show as duplicates. The served
    // sample runs with activationQueueLength 0 (`served_sample`): nothing can be stranded.
    crate::support::assert_every_message_accounted(&junit, 200, 0);
    // The run's expectations follow the team's ScaledObject, not the walkthrough's 20.
    let junit = junit.replace("&apos;", "'").replace("&gt;", ">");
    assert!(
        junit.contains("the team's ScaledObject")
            && junit.contains("activationQueueLength 0, minReplicaCount 0, maxReplicaCount 15")
            && junit.contains("instead of the run's settings: activationQueueLength 20 -> 0"),
        "{junit}"
    );
    assert_eq!(
        cluster_names(&client).await,
        before,
        "the run created or deleted a Kubernetes object"
    );
    assert!(env.storage.queue("aws2azmsgs").exists().await.unwrap());
    assert_eq!(
        table
            .count(Some(
                "PartitionKey ge 'earlier-' and PartitionKey lt 'earlier.'"
            ))
            .await
            .unwrap(),
        5,
        "the team's earlier rows are untouched"
    );

    // On the local target there is nothing deployed: refused, naming the flag.
    let mut local = crate::support::cli::edw_binary();
    local.args(["run", "--target", "local", "--use-deployed"]);
    crate::support::served::use_azurite(&mut local, &env);
    let output = local.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--use-deployed"));
}

/// `--use-deployed` with an in-cluster load: the load Job is the one object the run creates
/// (it copies the team's consumer, is deleted when the load ends) and the team's objects are as
/// they were. (Node growth is then skipped with why: `steps::scale::growth_not_the_consumers`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_deployed_with_an_in_cluster_load_leaves_only_what_it_found() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_served, kubeconfig, client) = served_sample(&env, dir.path()).await;
    let before = cluster_names(&client).await;
    // tail_fixed (load, drain, scale in to 0 with nothing left, verify): none of its checks
    // depends on how the in-cluster producers' pace compares with the drain. A busy CI machine
    // slowed a burst's producers until its peak step failed, and consumer_restart's second
    // round of kills found the queue drained, its pods gone (ci/flake-check.sh, issue 19).
    passing_use_deployed_run(
        &env,
        &kubeconfig,
        dir.path(),
        &[
            "--scenario",
            "flow::tail_fixed",
            "--messages",
            "300",
            "--in-cluster-load",
            "3",
        ],
    );
    let junit = std::fs::read_to_string(dir.path().join("flow-tail_fixed-kube/junit.xml")).unwrap();
    assert!(junit.contains("deleted the load Job"), "{junit}");
    crate::support::assert_every_message_accounted(&junit, 300, 0);
    // The cleanup says the Job was the run's and is gone, not that it created nothing.
    assert!(
        junit.contains("--use-deployed: nothing left to delete: the run")
            && junit.contains("only Kubernetes objects (Job edw-load-"),
        "{junit}"
    );
    assert_eq!(
        cluster_names(&client).await,
        before,
        "the run left or removed a Kubernetes object"
    );
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::all(client.clone());
    assert_eq!(
        crate::in_cluster_load::listed(&jobs, &ListParams::default()).await,
        0,
        "a load Job is left"
    );
}

/// `edw run --target kube --use-deployed --plain <extra>` on the served sample, reports in
/// `dir`, which must pass: its stdout and stderr.
fn passing_use_deployed_run(
    env: &Env,
    kubeconfig: &Path,
    dir: &Path,
    extra: &[&str],
) -> (String, String) {
    let mut args = vec!["run", "--target", "kube", "--use-deployed", "--plain"];
    args.extend_from_slice(extra);
    let output = edw_on_served_twin(env, kubeconfig, &args)
        .arg("--report-dir")
        .arg(dir)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// `edw twin serve --deploy-sample` (activationQueueLength 0: every message is read) on the
/// test's Azurite: the team's deployed sample. Returns the server, its kubeconfig and a client.
async fn served_sample(env: &Env, dir: &Path) -> (KillOnDrop, std::path::PathBuf, kube::Client) {
    let kubeconfig = dir.join("twin.kubeconfig");
    let served = serve_twin(
        env,
        &kubeconfig,
        &["--deploy-sample", "--activation-queue-length", "0"],
    );
    let client = kube_client(&kubeconfig).await;
    (served, kubeconfig, client)
}

/// Namespaces, NodePools, Deployments, ScaledObjects and ServiceAccounts by name.
async fn cluster_names(client: &kube::Client) -> Vec<String> {
    let mut names = Vec::new();
    for (api_version, kind) in [
        ("v1", "Namespace"),
        ("karpenter.sh/v1", "NodePool"),
        ("apps/v1", "Deployment"),
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("v1", "ServiceAccount"),
    ] {
        let reference = Applied {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: None,
            name: String::new(),
        };
        for object in api(client, &reference)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
        {
            names.push(format!(
                "{kind} {}/{}",
                object.metadata.namespace.unwrap_or_default(),
                object.metadata.name.unwrap_or_default()
            ));
        }
    }
    names.sort();
    names
}

/// Where pods reach storage through workload identity (an account and its key: no connection
/// string for pods), a run shares the federated namespace and service account of the deployed
/// sample: it uses them untouched, takes the workload identity's client id from the service
/// account's annotation, counts only its own consumer pods next to the team's, and leaves
/// nothing of its own; without that namespace it refuses before creating anything, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_federated_namespace_and_service_account_are_used_untouched() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_served, kubeconfig, client) = served_sample(&env, dir.path()).await;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), "aqs-demo");
    let account_before = accounts.get("aqs-app-service-account").await.unwrap();
    let names_before = cluster_names(&client).await;
    let run = |namespace: &str| {
        let mut command = edw_on_served_twin(
            &env,
            &kubeconfig,
            &["run", "--target", "kube", "--plain", "--messages", "200"],
        );
        command
            .arg("--report-dir")
            .arg(dir.path())
            .env_remove("EDW_AZURITE_QUEUE_ENDPOINT")
            .env_remove("EDW_AZURITE_TABLE_ENDPOINT")
            .env(
                "AZURE_STORAGE_ACCOUNT_NAME",
                edw_engine::storage::DEVELOPMENT_ACCOUNT,
            )
            .env("AZURE_STORAGE_KEY", edw_engine::azurite::DEVELOPMENT_KEY)
            .env("EDW_QUEUE_ENDPOINT", env.azurite.queue_endpoint())
            .env("EDW_TABLE_ENDPOINT", env.azurite.table_endpoint())
            .env("AQS_TARGET_NAMESPACE", namespace);
        command.output().unwrap()
    };
    let output = run("aqs-demo");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("the existing namespace and service account, objects of its own"),
        "{stderr}"
    );
    let junit = std::fs::read_to_string(dir.path().join("flow-burst-kube/junit.xml")).unwrap();
    assert!(
        junit.contains("uses the existing namespace aqs-demo and service account aqs-app-service-account (not created, not changed, not deleted); workload identity client id 11111111-2222-3333-4444-555555555555 (from the service account&apos;s annotation")
            || junit.contains("uses the existing namespace aqs-demo and service account aqs-app-service-account (not created, not changed, not deleted); workload identity client id 11111111-2222-3333-4444-555555555555 (from the service account's annotation"),
        "{junit}"
    );
    let account_after = accounts.get("aqs-app-service-account").await.unwrap();
    assert_eq!(account_after.metadata.uid, account_before.metadata.uid);
    assert_eq!(
        account_after.metadata.annotations,
        account_before.metadata.annotations
    );
    assert_eq!(
        cluster_names(&client).await,
        names_before,
        "the run's own objects are gone and the team's are all there"
    );

    let output = run("absent");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL deploy")
            && stdout.contains("namespace absent does not exist: the consumer's workload identity is federated to system:serviceaccount:absent:aqs-app-service-account"),
        "{stdout}"
    );
    assert_eq!(cluster_names(&client).await, names_before);
}
