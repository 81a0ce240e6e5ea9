//! `edw twin serve` end to end: the real `kubectl` against the served twin, with the sample
//! deployed and real Azurite behind it; messages sent to the queue scale the consumer out and
//! are processed by the pods' real consumers; Ctrl-C stops it cleanly.
//!
//! The sample is deployed with `--activation-queue-length 0`: with the walkthrough's 20, KEDA
//! may poll while the last 1..20 messages are in flight and scale to zero, leaving them on the
//! queue (the finding `stranded-tail`, which the flows accept and report). This test is about
//! the served twin and its pods, so it asserts the full drain that the fix guarantees.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{eventually, Env};
use edw_engine::workload::{produce, ProducerPlan};
use tokio_util::sync::CancellationToken;

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .map_err(|e| format!("kubectl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_sees_the_sample_scale_out_and_drain() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: kubectl is not installed");
        return;
    }
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let queue_name = edw_model::naming::run_queue_name("served");
    let table_name = edw_model::naming::run_table_name("served");
    let mut child = crate::support::cli::edw_binary()
        .args([
            "twin",
            "serve",
            "--deploy-sample",
            "--activation-queue-length",
            "0",
            "--scale",
            "20",
            "--queue",
            &queue_name,
            "--table",
            &table_name,
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .env("EDW_AZURITE_QUEUE_ENDPOINT", env.azurite.queue_endpoint())
        .env("EDW_AZURITE_TABLE_ENDPOINT", env.azurite.table_endpoint())
        .env_remove("AZURE_STORAGE_ACCOUNT_NAME")
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut child = KillOnDrop(child);
    let banner = lines.next().unwrap().unwrap();
    assert!(
        banner.starts_with("SIMULATED cluster (the twin)"),
        "{banner}"
    );
    for line in lines.by_ref() {
        if line.unwrap().starts_with("Ctrl-C") {
            break;
        }
    }

    // The clock a harness on the kube target measures this twin by, read by a client nobody
    // here wrote: simulated time passes at most 20 times faster than real time.
    let read_clock = || -> serde_json::Value {
        let raw = kubectl(&kubeconfig, &["get", "--raw", edw_twin::api::CLOCK_PATH]).unwrap();
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"))
    };
    // The real interval starts before the first read leaves and ends after the second one
    // returns, so it holds the twin's two samples whatever kubectl takes to start and exit
    // (taken after the first read, a slow kubectl exit put simulated time outside it).
    let real = std::time::Instant::now();
    let first = read_clock();
    assert_eq!(first["kind"], "TwinClock", "{first}");
    assert_eq!(first["scale"], 20.0, "{first}");
    let rate = first["rate"].as_f64().unwrap();
    assert!(rate > 0.0 && rate <= 20.0, "{first}");
    let second = read_clock();
    let advanced =
        second["simulatedSeconds"].as_f64().unwrap() - first["simulatedSeconds"].as_f64().unwrap();
    assert!(
        advanced >= 0.0 && advanced <= 20.0 * real.elapsed().as_secs_f64() + 0.5,
        "{first} then {second}"
    );

    let get = |args: &'static [&'static str]| {
        let kubeconfig = kubeconfig.clone();
        async move { kubectl(&kubeconfig, args) }
    };
    eventually(
        "KEDA add-on pods Running in kube-system",
        Duration::from_secs(30),
        || async {
            let out = get(&["get", "pods", "-n", "kube-system", "--no-headers"]).await?;
            let running = out
                .lines()
                .filter(|l| {
                    l.starts_with("keda-operator-")
                        && !l.starts_with("keda-operator-metrics")
                        && l.contains("Running")
                })
                .count();
            if running == 2 {
                Ok(())
            } else {
                Err(out)
            }
        },
    )
    .await;
    let so = kubectl(&kubeconfig, &["get", "scaledobject", "-n", "aqs-demo"]).unwrap();
    assert!(
        so.contains("aws2az-queue-scaleobj") && so.contains("True"),
        "{so}"
    );
    let activation = kubectl(
        &kubeconfig,
        &[
            "get",
            "scaledobject",
            "aws2az-queue-scaleobj",
            "-n",
            "aqs-demo",
            "-o",
            "jsonpath={.spec.triggers[0].metadata.activationQueueLength}",
        ],
    )
    .unwrap();
    assert_eq!(
        activation.trim(),
        "0",
        "the served ScaledObject's activation"
    );

    let queue = env.storage.queue(&queue_name);
    let sent = produce(
        &queue,
        &ProducerPlan::burst(100, 8),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(sent.sent.len(), 100);
    eventually(
        "the Deployment scaled out",
        Duration::from_secs(60),
        || async {
            let replicas = get(&[
                "get",
                "deploy",
                "aqs-app",
                "-n",
                "aqs-demo",
                "-o",
                "jsonpath={.spec.replicas}",
            ])
            .await?;
            if replicas.trim().parse::<u32>().unwrap_or(0) >= 1 {
                Ok(())
            } else {
                Err(replicas)
            }
        },
    )
    .await;
    eventually(
        "a Karpenter node in NodePool default",
        Duration::from_secs(60),
        || async {
            let nodes = get(&[
                "get",
                "nodes",
                "-l",
                "karpenter.sh/nodepool=default",
                "--no-headers",
            ])
            .await?;
            if nodes.contains("aks-default-") {
                Ok(())
            } else {
                Err(nodes)
            }
        },
    )
    .await;
    let table = env.storage.table(&table_name);
    eventually(
        "the pods' consumers drained the queue into the table",
        Duration::from_secs(120),
        || async {
            match table.count(None).await {
                Ok(100) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let events = kubectl(&kubeconfig, &["get", "events", "-n", "aqs-demo"]).unwrap();
    assert!(events.contains("KEDAScaleTargetActivated"), "{events}");

    assert!(Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(130), "Ctrl-C ends a served twin: 130");
}

/// Stops the served twin when the test ends, also when it fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
