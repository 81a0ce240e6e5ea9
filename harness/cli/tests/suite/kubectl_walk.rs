//! The imperative path a person walks with the real `kubectl` against `edw twin serve` (the
//! sample deployed, real Azurite, the real consumer in the pods): create a namespace, service
//! account, config map and deployment (kubectl sends them as protobuf); scale; rollout status;
//! wait; label and annotate; cordon, drain (evictions) and uncordon, with Karpenter replacing
//! the drained capacity; logs (and a short `-f`) of a consumer pod and of the KEDA operator;
//! explain; auth can-i; top; get -w; delete --wait. Each step asserts on what kubectl printed.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::served::serve_twin;
use crate::support::{eventually, Env};
use edw_engine::workload::{produce, ProducerPlan};
use tokio_util::sync::CancellationToken;

/// A NodePool of the walk's own (no taints, so `kubectl create deployment` pods fit it; weight
/// 100, so Karpenter prefers it to the sample's `default`), kept from consolidating its nodes
/// for ten minutes so a drained node is still there to uncordon.
const WALK_POOL: &str = r#"{"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
 "metadata": {"name": "walk"},
 "spec": {"weight": 100, "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "10m"},
  "template": {"spec": {"nodeClassRef": {"group": "karpenter.azure.com", "kind": "AKSNodeClass", "name": "default"},
   "requirements": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}}}}"#;

struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// `kubectl args`: stdout, or stderr as the error.
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .command(args)
            .output()
            .map_err(|e| format!("kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `kubectl args`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.run(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs a long-lived `kubectl args` (`-f`, `-w`), calls `then` once it printed its first
    /// line (a watch has listed what is there and watches from that list on, so a change made
    /// by `then` arrives as an event; called as it started, a change could land before the list
    /// and show only in it), and collects its output lines until one satisfies `done` or
    /// `within` passes; then stops it.
    fn stream_until(
        &self,
        args: &[&str],
        then: impl FnOnce(),
        done: impl Fn(&str) -> bool,
        within: Duration,
    ) -> Vec<String> {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl runs");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut then = Some(then);
        let deadline = Instant::now() + within;
        let mut lines = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match receiver.recv_timeout(left) {
                Ok(line) => {
                    let finished = done(&line);
                    lines.push(line);
                    if finished {
                        break;
                    }
                    if let Some(then) = then.take() {
                        then();
                    }
                }
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        lines
    }

    fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let mut all = args.to_vec();
        let output = format!("jsonpath={path}");
        all.extend(["-o", &output]);
        self.ok(&all).trim().to_owned()
    }
}

fn kubectl_installed() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The nodes of NodePool `pool`.
fn pool_nodes(kubectl: &Kubectl, pool: &str) -> Result<Vec<String>, String> {
    let out = kubectl.run(&[
        "get",
        "nodes",
        "-l",
        &format!("karpenter.sh/nodepool={pool}"),
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ])?;
    Ok(out.split_whitespace().map(str::to_owned).collect())
}

fn assert_printed(out: &str, wanted: &str) {
    assert!(
        out.contains(wanted),
        "kubectl printed {out:?}, not {wanted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_walks_the_imperative_path_with_kubectl() {
    if !kubectl_installed() {
        eprintln!("SKIPPED: kubectl is not installed; this test drives the real kubectl");
        return;
    }
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("twin.kubeconfig");
    let queue_name = edw_model::naming::run_queue_name("walk");
    let table_name = edw_model::naming::run_table_name("walk");
    let _served = serve_twin(
        &env,
        &kubeconfig,
        &[
            "--deploy-sample",
            "--activation-queue-length",
            "0",
            "--scale",
            "20",
            "--queue",
            &queue_name,
            "--table",
            &table_name,
        ],
    );
    let k = Kubectl {
        kubeconfig: kubeconfig.clone(),
    };

    // Create: kubectl sends these typed objects as protobuf.
    assert_printed(
        &k.ok(&["create", "namespace", "walk"]),
        "namespace/walk created",
    );
    assert_printed(
        &k.ok(&["-n", "walk", "create", "serviceaccount", "sa1"]),
        "serviceaccount/sa1 created",
    );
    assert_printed(
        &k.ok(&[
            "-n",
            "walk",
            "create",
            "configmap",
            "c1",
            "--from-literal=greeting=hello",
        ]),
        "configmap/c1 created",
    );
    assert_eq!(
        k.jsonpath(
            &["-n", "walk", "get", "configmap", "c1"],
            "{.data.greeting}"
        ),
        "hello"
    );
    let pool = dir.path().join("pool.json");
    std::fs::write(&pool, WALK_POOL).unwrap();
    assert_printed(
        &k.ok(&["apply", "-f", pool.to_str().unwrap()]),
        "nodepool.karpenter.sh/walk created",
    );
    assert_printed(
        &k.ok(&[
            "-n",
            "walk",
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=1",
        ]),
        "deployment.apps/web created",
    );

    // Scale, rollout status, wait: the pods need a node Karpenter makes for them.
    assert_printed(
        &k.ok(&["-n", "walk", "scale", "deployment", "web", "--replicas=2"]),
        "deployment.apps/web scaled",
    );
    assert_printed(
        &k.ok(&[
            "-n",
            "walk",
            "rollout",
            "status",
            "deployment/web",
            "--timeout=90s",
        ]),
        "deployment \"web\" successfully rolled out",
    );
    assert_printed(
        &k.ok(&[
            "-n",
            "walk",
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=60s",
        ]),
        "deployment.apps/web condition met",
    );

    // Label and annotate.
    assert_printed(
        &k.ok(&["-n", "walk", "label", "deployment", "web", "tier=frontend"]),
        "deployment.apps/web labeled",
    );
    assert_printed(
        &k.ok(&[
            "-n",
            "walk",
            "annotate",
            "deployment",
            "web",
            "walk/note=imperative",
        ]),
        "deployment.apps/web annotated",
    );
    assert_eq!(
        k.ok(&[
            "-n",
            "walk",
            "get",
            "deployments",
            "-l",
            "tier=frontend",
            "-o",
            "name"
        ])
        .trim(),
        "deployment.apps/web"
    );
    assert_eq!(
        k.jsonpath(
            &["-n", "walk", "get", "deployment", "web"],
            "{.metadata.annotations.walk/note}"
        ),
        "imperative"
    );

    // Cordon and drain the node the pods run on: the evicted pods are replaced by their
    // ReplicaSet, and Karpenter brings a node for them (the cordoned one counts no room).
    let first_nodes = pool_nodes(&k, "walk").unwrap();
    assert_eq!(
        first_nodes.len(),
        1,
        "one node for two nginx pods: {first_nodes:?}"
    );
    let drained = first_nodes[0].clone();
    assert_printed(
        &k.ok(&["cordon", &drained]),
        &format!("node/{drained} cordoned"),
    );
    let nodes = k.ok(&["get", "node", &drained]);
    assert_printed(&nodes, "SchedulingDisabled");
    let drain = k
        .command(&["drain", &drained, "--ignore-daemonsets", "--timeout=60s"])
        .output()
        .unwrap();
    let drain_out = format!(
        "{}{}",
        String::from_utf8_lossy(&drain.stdout),
        String::from_utf8_lossy(&drain.stderr)
    );
    assert!(drain.status.success(), "{drain_out}");
    assert_printed(&drain_out, "evicting pod walk/web-");
    assert_printed(
        &drain_out,
        "ignoring DaemonSet-managed Pods: kube-system/node-daemons-",
    );
    assert_printed(&drain_out, &format!("node/{drained} drained"));
    let replacement = eventually(
        "the evicted pods Running on a node Karpenter made after the drain",
        Duration::from_secs(90),
        || async {
            let nodes = pool_nodes(&k, "walk")?;
            let running = k.run(&[
                "-n",
                "walk",
                "get",
                "pods",
                "--field-selector=status.phase=Running",
                "-o",
                "jsonpath={.items[*].spec.nodeName}",
            ])?;
            let on: Vec<&str> = running.split_whitespace().collect();
            match nodes.iter().find(|n| **n != drained) {
                Some(new) if on.len() == 2 && on.iter().all(|n| n == new) => Ok(new.clone()),
                _ => Err(format!("nodes {nodes:?}, Running pods on {on:?}")),
            }
        },
    )
    .await;
    assert_ne!(replacement, drained);
    assert_printed(
        &k.ok(&["uncordon", &drained]),
        &format!("node/{drained} uncordoned"),
    );
    assert_eq!(
        k.jsonpath(
            &["get", "node", &drained],
            "{.spec.unschedulable}{.spec.taints}"
        ),
        "",
        "uncordoned: no unschedulable flag, no node.kubernetes.io/unschedulable taint"
    );

    // Logs: messages scale the sample out; a consumer pod's log shows what it processed, the
    // KEDA operator's shows its scale decision. A person reading a consumer's log first gives
    // the pods time to be read: with the sample's cooldown (10 s, half a second at x20) the
    // burst's pods were once all gone before kubectl had listed them and read a log (a
    // flake-check failure); 600 s keeps one Running for half a minute after the drain.
    assert_printed(
        &k.ok(&[
            "-n",
            "aqs-demo",
            "patch",
            "scaledobject",
            "aws2az-queue-scaleobj",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"cooldownPeriod":600}}"#,
        ]),
        "scaledobject.keda.sh/aws2az-queue-scaleobj patched",
    );
    let queue = env.storage.queue(&queue_name);
    let sent = produce(
        &queue,
        &ProducerPlan::burst(200, 8),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(sent.sent.len(), 200);
    // The twin scales the consumers in once the burst is drained (x20: within seconds), so a
    // pod chosen here may be gone by the next command; then another pod is chosen.
    let (log, tail, followed) = eventually(
        "a consumer pod whose log, tail and follow kubectl prints",
        Duration::from_secs(90),
        || async {
            let pods = k.run(&[
                "-n",
                "aqs-demo",
                "get",
                "pods",
                "--field-selector=status.phase=Running",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ])?;
            let mut seen = Vec::new();
            for pod in pods.split_whitespace() {
                let log = match k.run(&["-n", "aqs-demo", "logs", pod]) {
                    Ok(log) if log.contains("processed message") => log,
                    Ok(_) => continue,
                    Err(e) => {
                        seen.push(e);
                        continue;
                    }
                };
                let tail = match k.run(&["-n", "aqs-demo", "logs", pod, "--tail=1", "--timestamps"])
                {
                    Ok(tail) => tail,
                    Err(e) => {
                        seen.push(format!("{pod} went before its tail was read: {e}"));
                        continue;
                    }
                };
                let followed = k.stream_until(
                    &["-n", "aqs-demo", "logs", "-f", pod, "--tail=1"],
                    || {},
                    |line| line.contains("processed message") || line.contains("consumer stopped"),
                    Duration::from_secs(20),
                );
                if followed
                    .iter()
                    .any(|l| l.contains("processed message") || l.contains("consumer stopped"))
                {
                    return Ok((log, tail, followed));
                }
                seen.push(format!("kubectl logs -f {pod} printed {followed:?}"));
            }
            Err(format!("Running consumer pods: {pods:?}; {seen:?}"))
        },
    )
    .await;
    assert_printed(
        &log,
        &format!("consumer started: queue {queue_name}, table {table_name}"),
    );
    assert_printed(&log, "\"Scale Test Message : COUNT ");
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(
        tail.starts_with("20") && tail.split_whitespace().next().unwrap().ends_with('Z'),
        "a timestamp first: {tail}"
    );
    assert!(
        !followed[0].contains("consumer started"),
        "--tail=1 starts at the log's last line, which came after a processed message: {followed:?}"
    );
    let keda = eventually(
        "the KEDA operator logged the activation",
        Duration::from_secs(30),
        || async {
            let pods = k.run(&[
                "-n",
                "kube-system",
                "get",
                "pods",
                "-l",
                "app=keda-operator",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ])?;
            let mut logs = String::new();
            for pod in pods.split_whitespace() {
                logs += &k.run(&["-n", "kube-system", "logs", pod])?;
            }
            if logs.contains("Successfully updated ScaleTarget") {
                Ok(logs)
            } else {
                Err(logs)
            }
        },
    )
    .await;
    assert_printed(
        &keda,
        "\tINFO\tscaleexecutor\tSuccessfully updated ScaleTarget\t",
    );
    assert_printed(&keda, "\"scaleTarget.Name\": \"aqs-app\"");
    let never_ran = k
        .run(&["-n", "aqs-demo", "logs", "no-such-pod"])
        .unwrap_err();
    assert_printed(&never_ran, "pods \"no-such-pod\" not found");

    // explain: the upstream descriptions, from the twin's OpenAPI.
    assert_printed(
        &k.ok(&["explain", "deployment.spec.replicas"]),
        "Number of desired pods.",
    );
    assert_printed(
        &k.ok(&["explain", "scaledobject.spec.cooldownPeriod"]),
        "KIND:       ScaledObject",
    );

    // top: the metrics API from the twin's usage model; the busy consumers' nodes included.
    let top_nodes = k.ok(&["top", "nodes"]);
    assert_printed(&top_nodes, "CPU(cores)");
    assert_printed(&top_nodes, &replacement);
    let top_pods = k.ok(&["top", "pods", "-n", "kube-system"]);
    assert_printed(&top_pods, "MEMORY(bytes)");
    assert_printed(&top_pods, "keda-operator-");

    // auth can-i: the twin has no authorization and says so.
    assert_eq!(k.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");

    // get -w: a watch sees the scale.
    let watched = k.stream_until(
        &[
            "-n",
            "walk",
            "get",
            "deployment",
            "web",
            "-w",
            "--output-watch-events",
        ],
        || {
            k.ok(&["-n", "walk", "scale", "deployment", "web", "--replicas=3"]);
        },
        |line| line.contains("MODIFIED") && line.contains("/3"),
        Duration::from_secs(30),
    );
    assert!(
        watched
            .iter()
            .any(|l| l.starts_with("ADDED") && l.contains("web")),
        "{watched:?}"
    );
    assert!(
        watched
            .iter()
            .any(|l| l.contains("MODIFIED") && l.contains("/3")),
        "kubectl get -w printed {watched:?}"
    );

    // delete --wait: gone when kubectl returns.
    assert_printed(
        &k.ok(&[
            "-n",
            "walk",
            "delete",
            "deployment",
            "web",
            "--wait",
            "--timeout=60s",
        ]),
        "deployment.apps \"web\" deleted",
    );
    let gone = k
        .run(&["-n", "walk", "get", "deployment", "web"])
        .unwrap_err();
    assert_printed(&gone, "deployments.apps \"web\" not found");
    assert_printed(
        &k.ok(&["delete", "namespace", "walk", "--wait", "--timeout=60s"]),
        "namespace \"walk\" deleted",
    );
    let gone = k.run(&["get", "namespace", "walk"]).unwrap_err();
    assert_printed(&gone, "namespaces \"walk\" not found");
}
