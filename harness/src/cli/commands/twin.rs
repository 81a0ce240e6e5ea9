//! `edw twin simulate`: the sample on the twin's virtual clock, for "what if" questions.

use std::time::Duration;

use anyhow::Context;
use edw_twin::params::TwinParams;
use edw_twin::queue::{LoadProfile, LoadStep};
use edw_twin::simulate::{simulate as run_simulation, SimulationInput};
use serde_json::Value;

use std::sync::{Arc, Mutex};

use edw_twin::api::ApiServer;
use edw_twin::driver::{drive, scaled_engine};
use edw_twin::sample::{deploy_with_table, ScalingConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::args::{GlobalArgs, ServeArgs, SimulateArgs};
use crate::cli::{exit, session, Failure};
use crate::twin_governor::ClockGovernor;
use crate::twin_pods::{ConsumerPods, StorageQueueProbe};
use crate::workload::poison_queue_name;

pub async fn serve(
    global: &GlobalArgs,
    args: &ServeArgs,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    if !(args.scale.is_finite() && args.scale > 0.0) {
        return Err(Failure::usage(anyhow::anyhow!(
            "--scale must be a positive number"
        )));
    }
    let params = twin_params(None, &args.set).map_err(Failure::usage)?;
    let session = session::open(global).await?;
    let (engine, clock) = scaled_engine(params, args.scale).map_err(Failure::environment)?;
    let queue = session.storage.queue(session.config.queue_name());
    if args.deploy_sample {
        let table = session.storage.table(session.config.table_name());
        let poison = session.storage.queue(&poison_queue_name(queue.name()));
        for step in [
            queue.create().await,
            poison.create().await,
            table.create().await,
        ] {
            step.map_err(Failure::environment)?;
        }
        deploy_with_table(
            &engine.store,
            queue.name(),
            table.name(),
            &ScalingConfig {
                activation: i64::from(args.activation_queue_length),
                ..ScalingConfig::default()
            },
        )
        .map_err(Failure::environment)?;
    }
    let api = ApiServer::new(engine.store.clone(), engine.registry.clone());
    let served = api
        .serve(std::net::SocketAddr::from(([127, 0, 0, 1], args.port)))
        .await
        .map_err(Failure::environment)?;
    let path = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("reports/twin.kubeconfig"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create {}", dir.display()))
            .map_err(Failure::environment)?;
    }
    std::fs::write(&path, served.kubeconfig())
        .with_context(|| format!("cannot write the kubeconfig to {}", path.display()))
        .map_err(Failure::environment)?;
    println!(
        "SIMULATED cluster (the twin) at {} (clock x{})",
        served.url(),
        args.scale
    );
    // Absolute, so the export works from any directory.
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    println!("kubeconfig written to {}", path.display());
    println!(
        "storage its consumer pods and KEDA read: {}",
        session.storage.describe()
    );
    println!("for `edw run --target kube` (and kubectl) against this twin, in another shell:");
    for line in export_lines(&session, &path) {
        println!("  {line}");
    }
    println!("Ctrl-C stops it.");
    let engine = Arc::new(Mutex::new(engine));
    let governor = ClockGovernor::start(clock.clone(), cancel.clone());
    let pods = Arc::new(ConsumerPods::new(session.storage.clone(), governor.clone()));
    drive(
        engine,
        clock,
        Arc::new(StorageQueueProbe::new(session.storage.clone(), governor)),
        pods,
        cancel.clone(),
    )
    .await;
    served.shutdown().await;
    Ok(exit::OK)
}

/// The `export` lines another shell needs to run against this twin with the same storage: the
/// kubeconfig, and the Azurite endpoints (or the account) its pods and KEDA read. Secrets
/// are never printed: a key or connection string is named, not shown.
fn export_lines(session: &session::Session, kubeconfig: &std::path::Path) -> Vec<String> {
    let mut lines = vec![
        format!("export KUBECONFIG={}", kubeconfig.display()),
        "export EDW_TARGET=kube".to_owned(),
    ];
    let config = &session.config;
    let azurite = match &session.azurite {
        Some(azurite) => Some((
            azurite.queue_endpoints().join(","),
            azurite.table_endpoint().to_owned(),
        )),
        None => config
            .get("EDW_AZURITE_QUEUE_ENDPOINT")
            .zip(config.get("EDW_AZURITE_TABLE_ENDPOINT"))
            .map(|(q, t)| (q.to_owned(), t.to_owned())),
    };
    match azurite {
        Some((queue, table)) => {
            lines.push(format!("export EDW_AZURITE_QUEUE_ENDPOINT={queue}"));
            lines.push(format!("export EDW_AZURITE_TABLE_ENDPOINT={table}"));
        }
        None => {
            if let Some(account) = config.get("AZURE_STORAGE_ACCOUNT_NAME") {
                lines.push(format!("export AZURE_STORAGE_ACCOUNT_NAME={account}"));
            }
            lines.push(
                "# and the same credential this twin was started with (not shown)".to_owned(),
            );
        }
    }
    lines
}

pub fn simulate(args: &SimulateArgs) -> Result<u8, Failure> {
    let input = input(args).map_err(Failure::usage)?;
    let report = run_simulation(&input).map_err(Failure::usage)?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(Failure::environment)?;
        println!("{text}");
        return Ok(exit::OK);
    }
    println!("SIMULATED (twin, virtual clock): not a cluster result");
    println!(
        "{:>8} {:>9} {:>8} {:>8} {:>6} {:>11} {:>7}",
        "t(s)", "replicas", "running", "pending", "nodes", "nodeclaims", "queue"
    );
    for s in &report.samples {
        println!(
            "{:>8.1} {:>9} {:>8} {:>8} {:>6} {:>11} {:>7}",
            s.t, s.replicas, s.running, s.pending, s.nodes, s.nodeclaims, s.queue
        );
    }
    let at = |t: Option<f64>| t.map_or("never".to_owned(), |t| format!("{t:.1} s"));
    let p = &report.phases;
    println!();
    println!(
        "messages {:.0}; peak replicas {}, running pods {}, Karpenter nodes {} ({} NodeClaims)",
        report.messages,
        report.peak_replicas,
        report.peak_running,
        report.peak_nodes,
        report.nodeclaims_created
    );
    println!(
        "first scale-out {}, max replicas {}, first node {}",
        at(p.first_scale_out),
        at(p.max_replicas),
        at(p.first_node)
    );
    println!(
        "drained {}, scaled to zero {}, nodes consolidated {}",
        at(p.drained),
        at(p.scaled_to_zero),
        at(p.nodes_consolidated)
    );
    if report.left_on_queue > 0 {
        println!(
            "left on the queue at the end: {} messages",
            report.left_on_queue
        );
    }
    println!(
        "assumed: DaemonSet CPU {}m per node, node ready {} s after its NodeClaim, pod start {} s, {} msg/s per pod (see fixtures/twin/README.md)",
        report.params.daemonset_cpu_millis,
        report.params.initialize_delay.as_secs(),
        report.params.pod_start_delay.as_secs(),
        report.params.messages_per_pod_second
    );
    Ok(exit::OK)
}

fn input(args: &SimulateArgs) -> anyhow::Result<SimulationInput> {
    let mut steps = Vec::new();
    for burst in &args.burst {
        let (count, at) = burst
            .split_once('@')
            .with_context(|| format!("--burst {burst:?}: expected COUNT@SECONDS"))?;
        steps.push(LoadStep::Burst {
            count: count
                .trim()
                .parse()
                .with_context(|| format!("--burst {burst:?}: {count:?} is not a count"))?,
            at: at
                .trim()
                .parse()
                .with_context(|| format!("--burst {burst:?}: {at:?} is not seconds"))?,
        });
    }
    for rate in &args.rate {
        let parsed = rate.split_once('@').and_then(|(r, span)| {
            let (from, until) = span.split_once("..")?;
            Some((
                r.trim().parse::<f64>().ok()?,
                from.trim().parse::<f64>().ok()?,
                until.trim().parse::<f64>().ok()?,
            ))
        });
        let (per_second, from, until) =
            parsed.with_context(|| format!("--rate {rate:?}: expected PER_SECOND@FROM..UNTIL"))?;
        steps.push(LoadStep::Rate {
            from,
            until,
            per_second,
        });
    }
    if steps.is_empty() {
        // The worked example: 1000 messages, at a KEDA poll.
        steps.push(LoadStep::Burst {
            at: 30.0,
            count: 1000,
        });
    }
    let scaled_object = match &args.scaled_object {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let value: Value = serde_saphyr::from_str(&text)
                .with_context(|| format!("{} is not YAML or JSON", path.display()))?;
            anyhow::ensure!(
                value.get("kind").and_then(Value::as_str) == Some("ScaledObject"),
                "{} is not a ScaledObject (kind: {})",
                path.display(),
                value
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("missing")
            );
            Some(value)
        }
        None => None,
    };
    let params = twin_params(args.params.as_deref(), &args.set)?;
    anyhow::ensure!(
        args.duration > 0.0 && args.duration.is_finite(),
        "--duration must be a positive number of seconds"
    );
    Ok(SimulationInput {
        params,
        profile: LoadProfile { steps },
        scaled_object,
        duration: args.duration,
    })
}

/// The twin's parameters: the specification's defaults, then `--params FILE` (JSON), then each
/// `--set KEY=VALUE`, read as the parameter's own type (a whole number, a number, true/false,
/// a duration such as `120s`, or text). An unknown key or a value of the wrong type is refused
/// naming the key.
fn twin_params(file: Option<&std::path::Path>, sets: &[String]) -> anyhow::Result<TwinParams> {
    let mut params = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str::<Value>(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?
        }
        None => serde_json::to_value(TwinParams::default())?,
    };
    for assignment in sets {
        let (key, value) = assignment
            .split_once('=')
            .with_context(|| format!("--set {assignment:?}: expected KEY=VALUE"))?;
        let (key, value) = (key.trim(), value.trim());
        let current = params
            .get(key)
            .with_context(|| format!("--set {assignment:?}: the twin has no parameter {key:?}"))?;
        let new = match current {
            Value::Object(o) if o.contains_key("secs") => {
                let d: Duration = crate::cli::args::parse_duration(value)
                    .map_err(|e| anyhow::anyhow!("--set {key}: {e}"))?;
                serde_json::to_value(d)?
            }
            Value::Number(n) if n.is_u64() => {
                Value::from(value.parse::<u64>().with_context(|| {
                    format!("--set {key}: {value:?} is not a whole number (0 or more)")
                })?)
            }
            Value::Number(_) => {
                let number = value
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .with_context(|| format!("--set {key}: {value:?} is not a finite number"))?;
                Value::Number(number)
            }
            Value::Bool(_) => Value::Bool(
                value
                    .parse::<bool>()
                    .with_context(|| format!("--set {key}: {value:?} is not true or false"))?,
            ),
            Value::String(_) => Value::String(value.to_owned()),
            other => anyhow::bail!("--set {key}: the parameter is {other}, not settable by --set"),
        };
        params[key] = new;
    }
    serde_json::from_value(params).context("invalid twin parameters")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(assignments: &[&str]) -> anyhow::Result<TwinParams> {
        let sets: Vec<String> = assignments.iter().map(|s| (*s).to_owned()).collect();
        twin_params(None, &sets)
    }

    #[test]
    fn each_parameter_is_set_as_its_own_type() {
        let params = set(&[
            "daemonset_cpu_millis=300",
            "max_pods=110",
            "seed=7",
            "system_nodes=2",
            "hpa_tolerance=0.2",
            "nap_startup_taint=false",
            "serve_nodepool_v1beta1=true",
            "initialize_delay=120s",
            "keda_namespace=keda",
        ])
        .unwrap();
        assert_eq!(params.daemonset_cpu_millis, 300);
        assert_eq!(params.max_pods, 110);
        assert_eq!(params.seed, 7);
        assert_eq!(params.system_nodes, 2);
        assert_eq!(params.hpa_tolerance, 0.2);
        assert!(!params.nap_startup_taint);
        assert!(params.serve_nodepool_v1beta1);
        assert_eq!(params.initialize_delay, Duration::from_secs(120));
        assert_eq!(params.keda_namespace, "keda");
    }

    #[test]
    fn a_wrong_value_or_key_is_refused_naming_it() {
        for (assignment, named) in [
            (
                "max_pods=1.5",
                "--set max_pods: \"1.5\" is not a whole number",
            ),
            (
                "max_pods=-3",
                "--set max_pods: \"-3\" is not a whole number",
            ),
            (
                "nap_startup_taint=maybe",
                "--set nap_startup_taint: \"maybe\" is not true or false",
            ),
            (
                "hpa_tolerance=NaN",
                "--set hpa_tolerance: \"NaN\" is not a finite number",
            ),
            ("initialize_delay=soon", "--set initialize_delay:"),
            ("no_such=1", "the twin has no parameter \"no_such\""),
            ("max_pods", "expected KEY=VALUE"),
        ] {
            let error = format!("{:#}", set(&[assignment]).unwrap_err());
            assert!(error.contains(named), "{assignment}: {error}");
        }
    }
}
