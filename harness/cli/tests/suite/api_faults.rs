//! The harness against a misbehaving cluster API: a kube-rs client whose requests sometimes get
//! 500s, 429s with Retry-After, slow answers, and whose watches are refused. The recorder keeps
//! observing (falling back to polling), waits keep their deadlines and say what they saw.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edw_engine::observe::{eventually, Expect, Recorder, Subject};
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
            let status = |code: u16, reason: &str| {
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
                Ok::<_, kube::Error>(response)
            };
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
            let (parts, body) = request.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|e| kube::Error::Service(Box::new(e)))?
                .to_bytes();
            Ok(api.handle(Request::from_parts(parts, bytes)).await)
        }
    });
    kube::Client::new(service, "default")
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
