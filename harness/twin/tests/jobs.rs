//! batch/v1 Jobs on the twin: created through its API (defaults, the generated selector),
//! run by its Job controller and kubelet. On the scaled clock with a fake pod runtime whose
//! programs end by themselves: an Indexed Job keeps `parallelism` pods at most, each index
//! gets `JOB_COMPLETION_INDEX`, and the Job completes; a failing index exhausts
//! `backoffLimit`; pods that fit no node stay Pending, marked Unschedulable. On the virtual
//! clock: a Job of an image the twin does not run (`kubectl create job --image=busybox`)
//! completes at once.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edw_twin::api::ApiServer;
use edw_twin::driver::{
    drive, scaled_engine, BoxFuture, PodExit, PodProgram, PodRuntime, QueueProbe,
};
use edw_twin::engine::Engine;
use edw_twin::params::TwinParams;
use edw_twin::queue::LoadProfile;
use edw_twin::store::{ObjectKey, Store};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const NS: &str = "load";
const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";

/// No queue is scaled in these tests.
struct NoQueues;

impl QueueProbe for NoQueues {
    fn approximate_count<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move { Err(format!("unexpected queue {queue}")) })
    }
}

/// A runtime whose programs run for `hold` (real time) and then exit: 1 for the index in
/// `failing_index`, 0 otherwise. It remembers every program it started and the most that
/// ran at once.
struct ExitingRuntime {
    hold: Duration,
    failing_index: Option<String>,
    state: Mutex<RuntimeState>,
}

#[derive(Default)]
struct RuntimeState {
    running: BTreeMap<ObjectKey, (Instant, i32)>,
    started: Vec<(ObjectKey, PodProgram)>,
    most_at_once: usize,
}

impl ExitingRuntime {
    fn new(hold: Duration, failing_index: Option<&str>) -> ExitingRuntime {
        ExitingRuntime {
            hold,
            failing_index: failing_index.map(str::to_owned),
            state: Mutex::default(),
        }
    }

    fn started(&self) -> Vec<(ObjectKey, PodProgram)> {
        self.state.lock().unwrap().started.clone()
    }

    fn most_at_once(&self) -> usize {
        self.state.lock().unwrap().most_at_once
    }
}

impl PodRuntime for ExitingRuntime {
    fn start(&self, pod: &ObjectKey, program: &PodProgram) {
        let code = match (&self.failing_index, program.env.get("JOB_COMPLETION_INDEX")) {
            (Some(failing), Some(index)) if failing == index => 1,
            _ => 0,
        };
        let mut state = self.state.lock().unwrap();
        state.running.insert(pod.clone(), (Instant::now(), code));
        state.most_at_once = state.most_at_once.max(state.running.len());
        state.started.push((pod.clone(), program.clone()));
    }

    fn stop(&self, pod: &ObjectKey) {
        self.state.lock().unwrap().running.remove(pod);
    }

    fn exited(&self) -> Vec<PodExit> {
        let mut state = self.state.lock().unwrap();
        let ended: Vec<(ObjectKey, i32)> = state
            .running
            .iter()
            .filter(|(_, (since, _))| since.elapsed() >= self.hold)
            .map(|(pod, (_, code))| (pod.clone(), *code))
            .collect();
        ended
            .into_iter()
            .map(|(pod, exit_code)| {
                state.running.remove(&pod);
                PodExit {
                    pod,
                    exit_code,
                    message: if exit_code == 0 {
                        String::new()
                    } else {
                        "sent nothing".into()
                    },
                }
            })
            .collect()
    }
}

/// An Indexed producer Job: the harness's program (`AZURE_QUEUE_NAME` in its environment).
fn producer_job(name: &str, completions: i64, parallelism: i64, backoff_limit: i64) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completions": completions,
            "parallelism": parallelism,
            "completionMode": "Indexed",
            "backoffLimit": backoff_limit,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "producer",
                    "image": "edw:1",
                    "command": ["edw", "produce"],
                    "args": ["--count", "100"],
                    "env": [
                        {"name": "AZURE_QUEUE_NAME", "value": "aws2azmsgs"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                    ],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }],
            }},
        },
    })
}

/// Creates the namespace, the default NodePool and `job` through the twin's API (as kubectl would), returning the
/// stored Job.
async fn create_job(
    store: &Store,
    registry: Arc<edw_twin::resources::Registry>,
    job: Value,
) -> Job {
    let api = ApiServer::new(store.clone(), registry);
    let client = api.kube_client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    let _already_there = namespaces.create(&PostParams::default(), &ns).await;
    // Karpenter's pool, for nodes the pods can run on (the system nodes are tainted).
    let _already_there = store.create(
        "nodepools.karpenter.sh",
        "",
        edw_twin::sample::default_nodepool().expect("the sample's pool"),
    );
    let jobs: Api<Job> = Api::namespaced(client, NS);
    let job: Job = serde_json::from_value(job).unwrap();
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("job")
}

fn job(store: &Store, name: &str) -> Value {
    store
        .get(&ObjectKey::new("jobs.batch", NS, name))
        .map(|j| (*j).clone())
        .unwrap_or(Value::Null)
}

fn condition(object: &Value, type_: &str) -> Option<(String, String, String)> {
    let c = object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    let text = |f: &str| c[f].as_str().unwrap_or_default().to_owned();
    Some((text("status"), text("reason"), text("message")))
}

fn pods_of(store: &Store, job_name: &str) -> Vec<Value> {
    let (pods, _) = store.list("pods", Some(NS), None, None);
    pods.iter()
        .filter(|p| {
            p.pointer("/metadata/labels/batch.kubernetes.io~1job-name")
                .and_then(Value::as_str)
                == Some(job_name)
        })
        .map(|p| (**p).clone())
        .collect()
}

fn events_about(store: &Store, name: &str) -> Vec<(String, String)> {
    let (events, _) = store.list("events", Some(NS), None, None);
    events
        .iter()
        .filter(|e| e.pointer("/involvedObject/name").and_then(Value::as_str) == Some(name))
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Polls `check` until it holds, failing with `what` and the last state after 60 s.
async fn eventually(what: &str, check: impl Fn() -> Result<(), String>) {
    support::eventually_within(what, Duration::from_secs(60), check).await
}

struct Running {
    store: Store,
    runtime: Arc<ExitingRuntime>,
    cancel: CancellationToken,
    driver: tokio::task::JoinHandle<()>,
    registry: Arc<edw_twin::resources::Registry>,
}

fn start(runtime: ExitingRuntime) -> Running {
    let (engine, clock) = scaled_engine(TwinParams::default(), 50.0).expect("twin");
    let store = engine.store.clone();
    let registry = engine.registry.clone();
    let runtime = Arc::new(runtime);
    let cancel = CancellationToken::new();
    let driver = tokio::spawn(drive(
        Arc::new(Mutex::new(engine)),
        clock,
        Arc::new(NoQueues),
        runtime.clone(),
        cancel.clone(),
    ));
    Running {
        store,
        runtime,
        cancel,
        driver,
        registry,
    }
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        self.driver.await.expect("driver");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_job_runs_each_index_once_at_most_parallelism_at_a_time() {
    let twin = start(ExitingRuntime::new(Duration::from_millis(300), None));
    let created = create_job(
        &twin.store,
        twin.registry.clone(),
        producer_job("load", 4, 2, 6),
    )
    .await;
    // The API server's defaults and the selector it generates from the Job's uid.
    let uid = created.metadata.uid.clone().expect("uid");
    let stored = job(&twin.store, "load");
    assert_eq!(
        stored["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    let labels = &stored["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["batch.kubernetes.io/job-name"], "load");
    assert_eq!(labels["job-name"], "load");
    assert_eq!(labels["controller-uid"], uid.as_str());
    assert_eq!(stored["spec"]["suspend"], false);
    assert!(stored["spec"].get("manualSelector").is_none());

    eventually("the Job completes", || {
        let j = job(&twin.store, "load");
        match condition(&j, "Complete") {
            Some((status, _, _)) if status == "True" => Ok(()),
            _ => Err(format!("{}", j["status"])),
        }
    })
    .await;
    let done = job(&twin.store, "load");
    let status = &done["status"];
    assert_eq!(status["completedIndexes"], "0-3", "{status}");
    assert_eq!(status["succeeded"], 4);
    assert!(status.get("failed").is_none(), "{status}");
    assert!(status.get("active").is_none(), "{status}");
    assert_eq!(status["ready"], 0);
    assert_eq!(status["terminating"], 0);
    assert_eq!(status["uncountedTerminatedPods"], json!({}));
    assert!(status["startTime"].is_string() && status["completionTime"].is_string());
    assert_eq!(
        condition(&done, "SuccessCriteriaMet"),
        Some((
            "True".into(),
            "CompletionsReached".into(),
            "Reached expected number of succeeded pods".into()
        ))
    );
    assert_eq!(
        condition(&done, "Complete").map(|c| c.1),
        Some("CompletionsReached".into())
    );
    assert!(
        twin.runtime.most_at_once() <= 2,
        "{} programs at once",
        twin.runtime.most_at_once()
    );
    assert_eq!(twin.runtime.most_at_once(), 2, "both slots used");

    // Every pod Succeeded; each index once, with its index where upstream puts it.
    let pods = pods_of(&twin.store, "load");
    assert_eq!(pods.len(), 4);
    let mut indexes = BTreeSet::new();
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let index = pod["metadata"]["annotations"][INDEX_ANNOTATION]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(pod["metadata"]["labels"][INDEX_ANNOTATION], index.as_str());
        assert!(name.starts_with(&format!("load-{index}-")), "{name}");
        assert_eq!(name.len(), format!("load-{index}-").len() + 5, "{name}");
        assert_eq!(pod["spec"]["hostname"], format!("load-{index}"));
        assert_eq!(pod["status"]["phase"], "Succeeded", "{name}");
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "Job");
        assert_eq!(owner["uid"], uid.as_str());
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["blockOwnerDeletion"], true);
        let terminated = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(terminated["exitCode"], 0, "{name}");
        assert_eq!(terminated["reason"], "Completed");
        assert!(terminated["startedAt"].is_string() && terminated["finishedAt"].is_string());
        let ready = pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "PodCompleted");
        indexes.insert(index);
    }
    assert_eq!(
        indexes,
        BTreeSet::from(["0", "1", "2", "3"].map(String::from))
    );

    // The programs got the index (and the pod's name) from their fieldRefs; no secret.
    let started = twin.runtime.started();
    assert_eq!(started.len(), 4);
    for (pod, program) in &started {
        let stored_pod = twin.store.get(pod).expect("pod kept");
        assert_eq!(
            program.env.get("JOB_COMPLETION_INDEX").map(String::as_str),
            stored_pod["metadata"]["annotations"][INDEX_ANNOTATION].as_str()
        );
        assert_eq!(program.env.get("POD_NAME"), Some(&pod.name));
        assert_eq!(
            program.env.get("AZURE_QUEUE_NAME").map(String::as_str),
            Some("aws2azmsgs")
        );
        assert!(!program.env.contains_key("SECRET"));
        assert_eq!(program.command, ["edw", "produce", "--count", "100"]);
    }
    let events = events_about(&twin.store, "load");
    assert_eq!(
        events
            .iter()
            .filter(|(r, _)| r == "SuccessfulCreate")
            .count(),
        4,
        "{events:?}"
    );
    assert!(events.contains(&("Completed".into(), "Job completed".into())));
    twin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_that_keeps_failing_exhausts_the_backoff_limit() {
    let twin = start(ExitingRuntime::new(Duration::from_millis(100), Some("2")));
    create_job(
        &twin.store,
        twin.registry.clone(),
        producer_job("flaky", 4, 2, 1),
    )
    .await;
    eventually("the Job fails", || {
        let j = job(&twin.store, "flaky");
        match condition(&j, "Failed") {
            Some((status, _, _)) if status == "True" => Ok(()),
            _ => Err(format!("{}", j["status"])),
        }
    })
    .await;
    let failed = job(&twin.store, "flaky");
    let message = "Job has reached the specified backoff limit".to_owned();
    assert_eq!(
        condition(&failed, "Failed"),
        Some((
            "True".into(),
            "BackoffLimitExceeded".into(),
            message.clone()
        ))
    );
    assert_eq!(
        condition(&failed, "FailureTarget"),
        Some((
            "True".into(),
            "BackoffLimitExceeded".into(),
            message.clone()
        ))
    );
    assert!(condition(&failed, "Complete").is_none());
    let status = &failed["status"];
    assert_eq!(status["failed"], 2, "{status}");
    assert_eq!(status["succeeded"], 3, "{status}");
    assert_eq!(status["completedIndexes"], "0-1,3", "{status}");
    assert!(status.get("active").is_none(), "{status}");
    assert!(status.get("completionTime").is_none(), "{status}");

    // Index 2 ran twice and failed twice; the others succeeded once.
    let pods = pods_of(&twin.store, "flaky");
    let by_index = |index: &str, phase: &str| {
        pods.iter()
            .filter(|p| p["metadata"]["annotations"][INDEX_ANNOTATION] == index)
            .filter(|p| p["status"]["phase"] == phase)
            .count()
    };
    assert_eq!(by_index("2", "Failed"), 2, "{pods:#?}");
    for index in ["0", "1", "3"] {
        assert_eq!(by_index(index, "Succeeded"), 1, "index {index}");
    }
    assert_eq!(pods.len(), 5);
    let failed_pod = pods
        .iter()
        .find(|p| p["status"]["phase"] == "Failed")
        .unwrap();
    let terminated = &failed_pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["exitCode"], 1);
    assert_eq!(terminated["reason"], "Error");
    assert_eq!(terminated["message"], "sent nothing");
    let events = events_about(&twin.store, "flaky");
    assert!(
        events.contains(&("BackoffLimitExceeded".into(), message)),
        "{events:?}"
    );
    twin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_fit_no_node_stay_pending_and_unschedulable() {
    let twin = start(ExitingRuntime::new(Duration::from_millis(100), None));
    let mut stuck = producer_job("stuck", 3, 2, 6);
    stuck["spec"]["template"]["spec"]["nodeSelector"] = json!({"example.com/no-such-pool": "true"});
    create_job(&twin.store, twin.registry.clone(), stuck).await;
    // The condition and the FailedScheduling event are two writes (on a cluster too, the
    // scheduler's events are recorded on their own): wait for both.
    eventually(
        "both pods are marked Unschedulable, each with a FailedScheduling event",
        || {
            let pods = pods_of(&twin.store, "stuck");
            let unschedulable = pods
                .iter()
                .filter(|p| {
                    condition(p, "PodScheduled")
                        .is_some_and(|(s, r, _)| s == "False" && r == "Unschedulable")
                })
                .count();
            let with_event = pods
                .iter()
                .filter(|p| {
                    let name = p["metadata"]["name"].as_str().unwrap_or_default();
                    events_about(&twin.store, name)
                        .iter()
                        .any(|(reason, _)| reason == "FailedScheduling")
                })
                .count();
            if pods.len() == 2 && unschedulable == 2 && with_event == 2 {
                Ok(())
            } else {
                Err(format!(
                    "{} pods, {unschedulable} unschedulable, {with_event} with a FailedScheduling event",
                    pods.len()
                ))
            }
        },
    )
    .await;
    let pods = pods_of(&twin.store, "stuck");
    for pod in &pods {
        assert_eq!(pod["status"]["phase"], "Pending");
    }
    let stuck = job(&twin.store, "stuck");
    assert_eq!(stuck["status"]["active"], 2, "{}", stuck["status"]);
    assert_eq!(stuck["status"]["ready"], 0);
    assert!(twin.runtime.started().is_empty());
    twin.stop().await;
}

/// `kubectl create job hello --image=busybox -- echo hi`, on the virtual clock: the twin runs
/// no image, so the pod succeeds once started and the Job completes.
#[tokio::test]
async fn a_job_of_an_image_the_twin_does_not_run_completes_at_once() {
    let mut engine =
        Engine::new_virtual(TwinParams::default(), &LoadProfile::default()).expect("twin");
    let hello = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "hello"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "hello", "image": "busybox", "command": ["echo", "hi"]}],
        }}},
    });
    let created = create_job(&engine.store, engine.registry.clone(), hello).await;
    let spec = created.spec.expect("spec");
    assert_eq!(spec.completions, Some(1));
    assert_eq!(spec.parallelism, Some(1));
    assert_eq!(spec.backoff_limit, Some(6));
    assert_eq!(spec.completion_mode.as_deref(), Some("NonIndexed"));
    let until = engine.now() + Duration::from_secs(600);
    engine.run_until(until);
    let done = job(&engine.store, "hello");
    assert_eq!(
        condition(&done, "Complete").map(|c| c.0),
        Some("True".into()),
        "{}",
        done["status"]
    );
    assert_eq!(done["status"]["succeeded"], 1);
    assert!(done["status"].get("completedIndexes").is_none());
    let pods = pods_of(&engine.store, "hello");
    assert_eq!(pods.len(), 1);
    let name = pods[0]["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("hello-") && name.len() == "hello-".len() + 5,
        "{name}"
    );
    assert_eq!(pods[0]["status"]["phase"], "Succeeded");
    assert!(pods[0]["metadata"]["annotations"]
        .get(INDEX_ANNOTATION)
        .is_none());

    // Deleting the Job takes its pods with it (garbage collection).
    engine
        .store
        .delete(&ObjectKey::new("jobs.batch", NS, "hello"), None)
        .expect("delete");
    let until = engine.now() + Duration::from_secs(30);
    engine.run_until(until);
    assert!(pods_of(&engine.store, "hello").is_empty());
}

/// Validation as kube-apiserver words it.
#[tokio::test]
async fn invalid_jobs_are_refused_with_the_api_servers_words() {
    let engine = Engine::new_virtual(TwinParams::default(), &LoadProfile::default()).expect("twin");
    let api = ApiServer::new(engine.store.clone(), engine.registry.clone());
    let client = api.kube_client();
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let refused = |job: Value| {
        let jobs = jobs.clone();
        async move {
            let job: Job = serde_json::from_value(job).unwrap();
            match jobs.create(&PostParams::default(), &job).await {
                Err(kube::Error::Api(status)) => status.message,
                other => panic!("not refused: {other:?}"),
            }
        }
    };
    let template = |policy: &str| json!({"spec": {"restartPolicy": policy, "containers": [{"name": "c", "image": "i"}]}});
    let message =
        refused(json!({"metadata": {"name": "always"}, "spec": {"template": template("Always")}}))
            .await;
    assert!(
        message.contains(
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        ),
        "{message}"
    );
    let message = refused(json!({"metadata": {"name": "indexed"}, "spec": {
        "completionMode": "Indexed", "parallelism": 2, "template": template("Never")}}))
    .await;
    assert!(
        message.contains("spec.completions: Required value: when completion mode is Indexed"),
        "{message}"
    );
    let message = refused(json!({"metadata": {"name": "negative"}, "spec": {
        "parallelism": -1, "backoffLimit": -2, "template": template("Never")}}))
    .await;
    assert!(
        message.contains("spec.parallelism: Invalid value: -1: must be greater than or equal to 0")
            && message.contains(
                "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0"
            ),
        "{message}"
    );
}

/// `activeDeadlineSeconds` far off: the Job completes as one without it (a deadline once kept
/// finished pods counted as active and the Job never completed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_a_distant_deadline_completes() {
    let twin = start(ExitingRuntime::new(Duration::from_millis(300), None));
    let mut spec = producer_job("deadline", 2, 2, 0);
    spec["spec"]["activeDeadlineSeconds"] = json!(3600);
    create_job(&twin.store, twin.registry.clone(), spec).await;
    eventually("the Job with a deadline completes", || {
        let j = job(&twin.store, "deadline");
        match condition(&j, "Complete") {
            Some((status, _, _)) if status == "True" => Ok(()),
            _ => Err(format!("{}", j["status"])),
        }
    })
    .await;
    let status = job(&twin.store, "deadline")["status"].clone();
    assert_eq!(status["succeeded"], 2, "{status}");
    assert!(status.get("active").is_none(), "{status}");
    twin.stop().await;
}

/// A deadline that passes while the pods still run: the Job fails with DeadlineExceeded and its
/// pods are stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_deadline_fails_and_its_pods_stop() {
    // Programs that would run 20 real s (1,000 simulated s at x50); the deadline is 120 s.
    let twin = start(ExitingRuntime::new(Duration::from_secs(20), None));
    let mut spec = producer_job("late", 2, 2, 0);
    spec["spec"]["activeDeadlineSeconds"] = json!(120);
    create_job(&twin.store, twin.registry.clone(), spec).await;
    eventually("the Job fails at its deadline", || {
        let j = job(&twin.store, "late");
        match condition(&j, "Failed") {
            Some((status, reason, _)) if status == "True" && reason == "DeadlineExceeded" => Ok(()),
            _ => Err(format!("{}", j["status"])),
        }
    })
    .await;
    eventually("its pods are gone or ending", || {
        let running: Vec<String> = pods_of(&twin.store, "late")
            .iter()
            .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
            .filter(|p| p["status"]["phase"] == "Running")
            .map(|p| p["metadata"]["name"].to_string())
            .collect();
        if running.is_empty() {
            Ok(())
        } else {
            Err(format!("still running: {running:?}"))
        }
    })
    .await;
    twin.stop().await;
}
