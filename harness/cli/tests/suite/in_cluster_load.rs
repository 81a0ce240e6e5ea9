//! In-cluster load: `edw run --in-cluster-load P` on the local twin and `edw load --in-cluster`
//! on the kube target of a served twin: an Indexed Job whose pods run the real producer, each
//! its slice, the run verifying every message processed once; the Job deleted afterwards; and
//! bad input (no pods, fewer messages than pods, pods that cannot schedule, pods that fail)
//! refused or reported with the count actually sent and, for pods that fail or cannot start,
//! why.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};

use crate::support::served::{kube_client, kube_phase, serve_twin, use_azurite};
use crate::support::Env;

/// Sets the image of Deployment `name`'s first container (a merge patch without a
/// resourceVersion: a controller's update in between cannot turn it into a conflict, as it
/// could a replace); returns the one it had.
async fn set_image(deployments: &Api<Deployment>, name: &str, image: &str) -> String {
    let deployment = deployments.get(name).await.unwrap();
    let mut containers = deployment.spec.unwrap().template.spec.unwrap().containers;
    let before = containers[0]
        .image
        .replace(image.to_owned())
        .unwrap_or_default();
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": containers}}}});
    deployments
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    before
}

/// How many objects `api` lists with `params`.
pub async fn listed<K>(api: &Api<K>, params: &ListParams) -> usize
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(params).await.expect("list").items.len()
}

/// Waits up to `within_secs` until `api` lists nothing with `params`.
async fn none_left<K>(what: &str, within_secs: u64, api: &Api<K>, params: &ListParams)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    crate::support::eventually(
        what,
        std::time::Duration::from_secs(within_secs),
        || async {
            let left = api.list(params).await.map_err(|e| e.to_string())?;
            match left.items.len() {
                0 => Ok(()),
                n => Err(format!("{n} left")),
            }
        },
    )
    .await;
}

fn junit(run_dir: &std::path::Path) -> String {
    std::fs::read_to_string(run_dir.join("junit.xml")).expect("junit.xml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_burst_sent_by_four_job_pods_is_processed_once() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = crate::support::cli::edw_binary();
    command
        .args(["run", "--plain", "--report-dir"])
        .arg(dir.path())
        .args([
            "--scenario",
            "flow::burst",
            "--messages",
            "400",
            "--in-cluster-load",
            "4",
        ]);
    use_azurite(&mut command, &env);
    let output = command.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("4/4 pods done, 0 running, 0 failed"),
        "the Job's progress: {all}"
    );
    let xml = junit(&dir.path().join("flow-burst-local"));
    for expected in [
        "name=\"load: producer burst.load.in_cluster.pods\" value=\"4\"",
        "name=\"load: producer burst.messages.sent\" value=\"400\"",
        "in-cluster load: 4 pods each sent their slice of 400 messages from 1",
        "deleted the load Job",
    ] {
        assert!(xml.contains(expected), "{expected} not in {xml}");
    }
    // Each pod's own report: 100 messages each, from 1, 101, 201 and 301.
    for first in [1, 101, 201, 301] {
        assert!(
            xml.contains(&format!("sent 100 of 100 messages (from {first})")),
            "slice from {first}: {xml}"
        );
    }
    assert!(
        xml.contains("none lost or duplicated"),
        "the verify step: {xml}"
    );
    // The run goes into the history (the local target, end to end).
    let added = crate::support::cli::edw()
        .args(["history", "add", "--store"])
        .arg(dir.path().join("runs.jsonl"))
        .arg(dir.path().join("flow-burst-local"))
        .output()
        .unwrap();
    let added = String::from_utf8_lossy(&added.stdout);
    assert!(
        added.contains("added flow::burst on local [SIMULATED] (passed, "),
        "{added}"
    );
}

/// The phases on the kube target of a served twin: `edw load --in-cluster` sends from a Job,
/// `edw scale` sees every message processed once, and then bad input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edw_load_in_cluster_on_a_served_twin_and_its_bad_input() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let state = dir.path().join("edw-run.state");
    let _served = serve_twin(&env, &kubeconfig, &[]);
    let phase = |args: &[&str]| {
        let (code, stdout, stderr) = kube_phase(&env, &kubeconfig, &state, args);
        (code, format!("edw {args:?}:\n{stdout}\n{stderr}"))
    };
    let small_load = || {
        phase(&[
            "load",
            "--in-cluster",
            "--parallelism",
            "2",
            "--count",
            "40",
        ])
    };
    for step in ["deploy", "validate"] {
        let (code, text) = phase(&[step]);
        assert_eq!(code, Some(0), "{text}");
    }

    // Refused before anything is created.
    let (code, text) = phase(&["load", "--in-cluster", "--parallelism", "0"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("0 pods cannot send a load"), "{text}");
    let (code, text) = phase(&["load", "--in-cluster", "--parallelism", "5", "--count", "3"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("--count 3 is smaller than --parallelism 5"),
        "{text}"
    );

    let (code, text) = phase(&[
        "load",
        "--in-cluster",
        "--parallelism",
        "3",
        "--count",
        "300",
    ]);
    assert_eq!(code, Some(0), "{text}");
    for first in [1, 101, 201] {
        assert!(
            text.contains(&format!("sent 100 of 100 messages (from {first})")),
            "{text}"
        );
    }
    assert!(text.contains("deleted the load Job"), "{text}");
    let ledger = std::fs::read_to_string(&state).unwrap();
    let value = |key: &str| {
        ledger
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} in the ledger:\n{ledger}"))
            .to_owned()
    };
    assert_eq!(value("EDW_RUN_SENT"), "300", "{ledger}");
    assert!(
        !value("EDW_RUN_APPLIED").contains("|Job|"),
        "the deleted Job left the ledger: {ledger}"
    );
    // … and is recorded as deleted, so a later `edw cleanup` names it.
    assert!(
        value("EDW_RUN_DELETED").starts_with("batch/v1|Job|"),
        "{ledger}"
    );
    let client = kube_client(&kubeconfig).await;
    let namespace = value("EDW_RUN_NAMESPACE");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let job_pods = ListParams::default().labels("batch.kubernetes.io/job-name");
    assert_eq!(
        listed(&jobs, &ListParams::default()).await,
        0,
        "a load Job is left"
    );
    none_left("the load Job's pods are gone with it", 30, &pods, &job_pods).await;
    let (code, text) = phase(&["scale", "--messages", "300"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("none lost or duplicated"), "{text}");

    // Pods that cannot schedule: the producers' own pool (the run's pool's spec under
    // `<pool>-load`, made by the first in-cluster load) may not grow and has no node left.
    let pools: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool"),
            "nodepools",
        ),
    );
    let pool = format!("{}-load", value("EDW_RUN_NODEPOOL"));
    assert!(
        value("EDW_RUN_APPLIED").contains(&format!("|NodePool||{pool}")),
        "the load pool is in the ledger for the cleanup: {ledger}"
    );
    let nodes: Api<Node> = Api::all(client.clone());
    let pool_nodes = ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}"));
    none_left(
        "the load pool has no node once its producers are done",
        60,
        &nodes,
        &pool_nodes,
    )
    .await;
    let limit = |cpu: &str| serde_json::json!({"spec": {"limits": {"cpu": cpu}}});
    pools
        .patch(&pool, &PatchParams::default(), &Patch::Merge(limit("0")))
        .await
        .unwrap();
    let (code, text) = small_load();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("could not be scheduled for 300 s"), "{text}");
    assert!(text.contains("only 0 of 40 messages were sent"), "{text}");
    assert_eq!(
        listed(&jobs, &ListParams::default()).await,
        0,
        "a load Job is left"
    );

    // Producers that cannot start: the consumer's image, which the Job copies, does not
    // parse; the kubelet leaves them waiting (InvalidImageName) and the step gives up after
    // its patience naming the pod, the reason and what the kubelet said.
    pools
        .patch(&pool, &PatchParams::default(), &Patch::Merge(limit("1000")))
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let consumer = deployments
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(consumer.len(), 1, "the run's consumer Deployment");
    let consumer = consumer[0].metadata.name.clone().unwrap();
    let original = set_image(&deployments, &consumer, "acr.azurecr.io/Team/Consumer").await;
    let (code, text) = small_load();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("producers could not start for 180 s")
            && text.contains(
                "InvalidImageName: Failed to apply default image tag \"acr.azurecr.io/Team/Consumer\""
            ),
        "{text}"
    );
    assert!(text.contains("only 0 of 40 messages were sent"), "{text}");
    assert_eq!(
        listed(&jobs, &ListParams::default()).await,
        0,
        "a load Job is left"
    );
    set_image(&deployments, &consumer, &original).await;

    // Producers that cannot send: the queue is gone, every producer stops at its first
    // message and reports why (it exits 0 once its report is out: a failing pod would stop
    // its siblings mid-slice); the step counts what was sent from the reports.
    env.storage
        .queue(&value("EDW_RUN_QUEUE"))
        .delete()
        .await
        .unwrap();
    let (code, text) = small_load();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("only 0 of 40 messages were sent"), "{text}");
    assert_eq!(
        text.matches("sent 0 of 20 messages (from ").count(),
        2,
        "each pod's report: {text}"
    );
    assert!(text.contains(", stopped: "), "{text}");
    assert!(text.contains("deleted the load Job"), "{text}");
    assert_eq!(
        listed(&jobs, &ListParams::default()).await,
        0,
        "a load Job is left"
    );

    let (code, text) = phase(&["cleanup"]);
    assert_eq!(code, Some(0), "{text}");
}
