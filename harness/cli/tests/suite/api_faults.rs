//! The harness against a misbehaving cluster API: a kube-rs client whose requests sometimes get
//! 500s, 429s with Retry-After, slow answers, and whose watches are refused. The recorder keeps
//! observing (falling back to polling), waits keep their deadlines and say what they saw.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edw_engine::observe::{eventually, Expect, Recorder, Subject};
use edw_model::report::Read;
use edw_twin::api::{ApiBody, ApiServer};
use edw_twin::clock::VirtualClock;
use edw_twin::resources::Registry;
use edw_twin::store::Store;
use http::{Request, Response};
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// A client over the twin's API that misbehaves by request number.
fn faulty_client(api: ApiServer, counter: Arc<AtomicU64>) -> kube::Client {
    let service = tower::service_fn(move |request: Request<kube::client::Body>| {
        let (api, counter) = (api.clone(), counter.clone());
        async move {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let watch = request.uri().query().is_some_and(|q| q.contains("watch="));
            let status = |code: u16, reason: &str| Ok::<_, kube::Error>(status(code, reason));
            if watch {
                return status(500, "InternalError");
            }
            if n % 5 == 0 {
                return status(500, "InternalError");
            }
            if n % 7 == 0 {
                return status(429, "TooManyRequests");
            }
            if n % 4 == 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            forward(&api, request).await
        }
    });
    kube::Client::new(service, "default")
}

/// A Kubernetes `Status` answer with `code` (a 429 with Retry-After 1 s), as an API server
/// sends it.
fn status(code: u16, reason: &str) -> Response<ApiBody> {
    let body = format!(
        r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"{reason}","code":{code},"message":"injected"}}"#
    );
    let mut response = Response::new(ApiBody::full(body));
    *response.status_mut() = http::StatusCode::from_u16(code).unwrap();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    if code == 429 {
        response
            .headers_mut()
            .insert("retry-after", "1".parse().unwrap());
    }
    response
}

/// `request`, answered by the twin's API.
async fn forward(
    api: &ApiServer,
    request: Request<kube::client::Body>,
) -> Result<Response<ApiBody>, kube::Error> {
    let (parts, body) = request.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| kube::Error::Service(Box::new(e)))?
        .to_bytes();
    Ok(api.handle(Request::from_parts(parts, bytes)).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorder_and_waits_survive_errors_slowness_and_refused_watches() {
    let clock = Arc::new(VirtualClock::new(time::OffsetDateTime::UNIX_EPOCH));
    let store = Store::new(clock, 1);
    let api = ApiServer::new(store, Arc::new(Registry::standard().unwrap()));
    api.ensure_system_namespaces();
    let good = api.kube_client();
    let deployments: Api<Deployment> = Api::namespaced(good.clone(), "default");
    let deployment: Deployment =
        serde_json::from_value(edw_twin::sample::consumer_deployment("q", "t")).unwrap();
    let mut deployment = deployment;
    deployment.metadata.namespace = Some("default".into());
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let requests = Arc::new(AtomicU64::new(0));
    let subject = Subject {
        namespace: "default".into(),
        deployment: "aqs-app".into(),
        pod_selector: "app=aqs-reader".into(),
        hpa: "none".into(),
        queue: None,
        karpenter: false,
    };
    let recorder = Recorder::start(
        faulty_client(api.clone(), requests.clone()),
        subject,
        Duration::from_millis(100),
        edw_engine::target::TargetClock::Real,
    );
    let one = Expect::new("desired replicas = 1", |o| o.desired == 1);
    eventually(&recorder, &one, Duration::from_secs(20))
        .await
        .expect("observed despite faults");

    deployments
        .patch(
            "aqs-app",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    let four = Expect::new("desired replicas = 4", |o| o.desired == 4);
    eventually(&recorder, &four, Duration::from_secs(20))
        .await
        .expect("a change is still seen");

    let started = Instant::now();
    let never = Expect::new("desired replicas = 99", |o| o.desired == 99);
    let failure = eventually(&recorder, &never, Duration::from_secs(1))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "the wait kept its deadline: {waited:?}"
    );
    let text = failure.to_string();
    assert!(
        text.contains("expected desired replicas = 99 within 1s") && text.contains("desired=4"),
        "{text}"
    );
    assert!(
        requests.load(Ordering::SeqCst) > 10,
        "the faulty API was exercised"
    );
}

/// A client over the twin's API on which every read of the consumer Deployment and of its pods
/// fails (500), and watches are refused: what a cluster API that keeps failing those reads
/// looks like to the recorder.
fn blind_to_the_workload(api: ApiServer) -> kube::Client {
    let service = tower::service_fn(move |request: Request<kube::client::Body>| {
        let api = api.clone();
        async move {
            let path = request.uri().path().to_owned();
            let watch = request.uri().query().is_some_and(|q| q.contains("watch="));
            if watch || path.contains("/deployments") || path.ends_with("/pods") {
                return Ok(status(500, "InternalError"));
            }
            forward(&api, request).await
        }
    });
    kube::Client::new(service, "default")
}

/// A Deployment and pods the recorder could not read are not "0 replicas": a few messages on
/// the queue with the workload unread are not a stranded tail at 0 replicas, a scale-in to 0
/// is not seen, and a window with no sample that read the Deployment proves no ceiling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_that_fail_are_not_observations_of_zero_replicas() {
    let clock = Arc::new(VirtualClock::new(time::OffsetDateTime::UNIX_EPOCH));
    let store = Store::new(clock, 1);
    let api = ApiServer::new(store, Arc::new(Registry::standard().unwrap()));
    api.ensure_system_namespaces();
    let env = crate::support::Env::start().await;
    let (queue, poison, table) = env.fresh().await;
    for i in 1..=3 {
        queue.send(&format!("message {i}")).await.unwrap();
    }
    let subject = Subject {
        namespace: "default".into(),
        deployment: "aqs-app".into(),
        pod_selector: "app=aqs-reader".into(),
        hpa: "none".into(),
        queue: Some(queue.clone()),
        karpenter: false,
    };
    let recorder = Recorder::start(
        blind_to_the_workload(api),
        subject,
        Duration::from_millis(50),
        edw_engine::target::TargetClock::Real,
    );
    let blind = Expect::new("a sample with the queue read", |o| o.queue == Some(3));
    let seen = eventually(&recorder, &blind, Duration::from_secs(20))
        .await
        .expect("the queue is read");
    assert_eq!(seen.unread, [Read::Deployment, Read::Pods], "{seen:?}");
    // Its zeros are defaults: without the reads, "0 replicas, no pod" would pass.
    assert_eq!((seen.desired, seen.running, seen.pending), (0, 0, 0));
    let drained = edw_engine::steps::scale::drained_expectation(20);
    assert!(
        !drained.holds(&seen),
        "a tail of 3 taken as stranded at 0 replicas"
    );
    assert_eq!(edw_engine::steps::scale::backlog_gone(&seen, 20), None);

    let scaled_to_zero =
        Expect::new("desired replicas = 0", |o| o.desired == 0).reading(&[Read::Deployment]);
    let failure = eventually(&recorder, &scaled_to_zero, Duration::from_millis(500))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        failure.contains("could not read: [Deployment, Pods]"),
        "{failure}"
    );
    let ceiling =
        Expect::new("desired replicas <= 15", |o| o.desired <= 15).reading(&[Read::Deployment]);
    let nothing =
        edw_engine::observe::consistently(&recorder, &ceiling, Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
    assert!(
        nothing.contains("no sample in it could read what it rests on ([Deployment])"),
        "{nothing}"
    );
    queue.delete().await.unwrap();
    poison.delete().await.unwrap();
    table.delete().await.unwrap();
}
