//! `edw twin simulate`: the sample on the twin's virtual clock, for "what if" questions.

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

use crate::args::{CalibrateArgs, GlobalArgs, ServeArgs, SimulateArgs};
use crate::{exit, session, Failure};
use edw_engine::storage::Storage;
use edw_engine::twin_governor::ClockGovernor;
use edw_engine::twin_pods::{in_cluster_target, ConsumerPods, StorageQueueProbe};
use edw_engine::workload::poison_queue_name;

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
    let params = twin_params(args.params.as_deref(), &args.set).map_err(Failure::usage)?;
    let session = session::open(global).await?;
    // What runs inside the twin (its pods, its KEDA) backs off in simulated time.
    let in_cluster_storage =
        Storage::connect(&in_cluster_target(&session.storage_target, args.scale))
            .map_err(Failure::storage)?;
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
    if args.scale > 1.0 {
        println!(
            "its clock runs {}x faster than yours: object timestamps soon lie in your future, so kubectl shows their ages as <invalid> (`--scale 1` keeps them in step)",
            args.scale
        );
    }
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
    let activity = engine.store.activity().clone();
    let engine = Arc::new(Mutex::new(engine));
    let governor = ClockGovernor::start(clock.clone(), cancel.clone());
    let pods = Arc::new(
        ConsumerPods::new(in_cluster_storage.clone(), governor.clone()).with_activity(activity),
    );
    drive(
        engine,
        clock,
        Arc::new(StorageQueueProbe::new(in_cluster_storage, governor)),
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

pub fn simulate(global: &GlobalArgs, args: &SimulateArgs) -> Result<u8, Failure> {
    // The virtual clock models the queue itself: storage flags would change nothing.
    for (flag, given) in [
        ("--queue", global.queue.is_some()),
        ("--table", global.table.is_some()),
        ("--account", global.account.is_some()),
        ("--storage-auth", global.storage_auth.is_some()),
        ("--state-file", global.state_file.is_some()),
    ] {
        if given {
            return Err(Failure::usage(anyhow::anyhow!(
                "{flag} does nothing for `edw twin simulate`: it models the queue on its virtual clock and uses no storage (`edw twin serve` and `edw run` use storage)"
            )));
        }
    }
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
        "t(sim s)", "replicas", "running", "pending", "nodes", "nodeclaims", "queue"
    );
    for s in &report.samples {
        println!(
            "{:>8.1} {:>9} {:>8} {:>8} {:>6} {:>11} {:>7}",
            s.t, s.replicas, s.running, s.pending, s.nodes, s.nodeclaims, s.queue
        );
    }
    for line in summary_lines(&report) {
        println!("{line}");
    }
    println!(
        "assumed: DaemonSet CPU {}m per node, node ready {} s after its NodeClaim, pod start {} s, {} msg/s per pod (see harness/twin/README.md)",
        report.params.daemonset_cpu_millis,
        report.params.initialize_delay.as_secs(),
        report.params.pod_start_delay.as_secs(),
        report.params.messages_per_pod_second
    );
    Ok(exit::OK)
}

/// `edw twin calibrate`: fits the twin's delays to the runs' lifecycles, prints each
/// estimate and writes the params file. A missing, unreadable or contradictory run is a usage
/// error (exit 2) naming the file and the field.
pub fn calibrate(args: &CalibrateArgs) -> Result<u8, Failure> {
    use edw_twin::calibrate::{calibrate as fit, read_run};
    let mut runs = Vec::new();
    for dir in &args.run_dirs {
        let lifecycle = read_run(dir).map_err(Failure::usage)?;
        runs.push((dir.clone(), lifecycle));
    }
    let calibration = fit(&runs);
    println!(
        "calibrated from {} run(s): median (p10–p90), observations, confidence (high ≥ {}, low ≥ {}; fewer keep the default)",
        runs.len(),
        edw_twin::calibrate::HIGH_CONFIDENCE,
        edw_twin::calibrate::MIN_OBSERVATIONS
    );
    for line in calibration.lines() {
        println!("  {line}");
    }
    let text = serde_json::to_string_pretty(&calibration.params).map_err(Failure::environment)?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create {}", dir.display()))
            .map_err(Failure::environment)?;
    }
    std::fs::write(&args.out, text + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))
        .map_err(Failure::environment)?;
    println!(
        "parameters written to {} (the fitted ones, the rest the defaults): use them with `edw twin simulate --params {0}`, `edw twin serve --params {0}` or EDW_TWIN_PARAMS={0} for the local target",
        args.out.display()
    );
    Ok(exit::OK)
}

/// What `edw twin simulate` prints after the timeline: the peaks, the phases (simulated
/// seconds from the load start, as `edw run` counts them), what "drained" and "scaled to zero"
/// mean when the replicas fell to zero while the load ran, and the nodes by size with their
/// node-hours and estimated cost.
fn summary_lines(report: &edw_twin::simulate::SimulationReport) -> Vec<String> {
    let at = |t: Option<f64>| t.map_or("never".to_owned(), |t| format!("{t:.1} s"));
    let p = &report.phases;
    let mut lines = vec![
        String::new(),
        format!(
            "messages {:.0}; peak replicas {}, running pods {}, Karpenter nodes {} ({} NodeClaims)",
            report.messages,
            report.peak_replicas,
            report.peak_running,
            report.peak_nodes,
            report.nodeclaims_created
        ),
        format!(
            "phases in simulated seconds from the load start (t = {:.1} s on the timeline above):",
            report.load_start
        ),
        format!(
            "first scale-out {}, max replicas {}, first node {}",
            at(p.first_scale_out),
            at(p.max_replicas),
            at(p.first_node)
        ),
        format!(
            "drained for good {}, scaled to zero for good {}, nodes consolidated {}",
            at(p.drained),
            at(p.scaled_to_zero),
            at(p.nodes_consolidated)
        ),
    ];
    if let Some(first) = report.zero_replicas_while_loading.first() {
        let times = report.zero_replicas_while_loading.len();
        lines.push(format!(
            "the replicas also fell to zero {times} time{} before that (first at {first:.1} s): the pods emptied the queue faster than the load filled it, KEDA scaled to zero, and scaled out again once the queue passed activationQueueLength",
            if times == 1 { "" } else { "s" }
        ));
    }
    if report.left_on_queue > 0 {
        lines.push(format!(
            "left on the queue at the end: {} messages",
            report.left_on_queue
        ));
    }
    let cost = &report.cost;
    if cost.sizes.is_empty() {
        lines.push("Karpenter nodes by size: none were created".to_owned());
    } else {
        lines.push(
            "Karpenter nodes by size (node-hours in simulated time, from each NodeClaim's creation to its deletion):"
                .to_owned(),
        );
        lines.extend(
            cost.sizes
                .iter()
                .map(|s| format!("  {}", s.describe(cost.price_region))),
        );
    }
    lines.push(format!(
        "estimated cost (SIMULATED): {}; {}",
        cost.describe_total(),
        cost.describe_prices()
    ));
    lines
}

fn input(args: &SimulateArgs) -> anyhow::Result<SimulationInput> {
    let mut steps = Vec::new();
    for burst in &args.burst {
        let (count, at) = burst
            .split_once('@')
            .with_context(|| format!("--burst {burst:?}: expected COUNT@SECONDS"))?;
        let count: u64 = count
            .trim()
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .with_context(|| format!("--burst {burst:?}: {count:?} is not a count of 1 or more"))?;
        let at = seconds(at).with_context(|| {
            format!("--burst {burst:?}: {at:?} is not seconds from the start (0 or more)")
        })?;
        steps.push(LoadStep::Burst { count, at });
    }
    for rate in &args.rate {
        let shape = || format!("--rate {rate:?}: expected PER_SECOND@FROM..UNTIL");
        let (per_second, span) = rate.split_once('@').with_context(shape)?;
        let (from, until) = span.split_once("..").with_context(shape)?;
        let per_second = per_second
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r > 0.0)
            .with_context(|| {
                format!("--rate {rate:?}: {per_second:?} is not a rate above 0 per second")
            })?;
        let from = seconds(from)
            .with_context(|| format!("--rate {rate:?}: {from:?} is not seconds (0 or more)"))?;
        let until = seconds(until)
            .filter(|u| *u > from)
            .with_context(|| format!("--rate {rate:?}: {until:?} is not a time after {from}"))?;
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
        Some(path) => Some(scaled_object_file(path)?),
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

/// Seconds from the simulation's start: a finite number, 0 or more.
fn seconds(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
}

/// The ScaledObject in `path` as check-config reads it (the first ScaledObject document of a
/// multi-document file), checked as check-config checks it (an azure-queue trigger, whole
/// numbers, min ≤ max), as one would create it: what a server added (`status`, uid,
/// resourceVersion, …, as `kubectl get -o yaml` shows them) is dropped, so an exported object
/// predicts the same as its spec.
fn scaled_object_file(path: &std::path::Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut value =
        edw_engine::findings::pick_document(&path.display().to_string(), &text, "ScaledObject")?;
    if let Some(object) = value.as_object_mut() {
        object.remove("status");
    }
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "finalizers",
            "ownerReferences",
        ] {
            meta.remove(field);
        }
    }
    edw_engine::findings::scaling_settings(&value)
        .with_context(|| format!("{} cannot be simulated", path.display()))?;
    Ok(value)
}

/// The twin's parameters: the specification's defaults, then `--params FILE` (a JSON object),
/// then each `--set KEY=VALUE` ([`edw_twin::params::load`]).
pub(crate) fn twin_params(
    file: Option<&std::path::Path>,
    sets: &[String],
) -> anyhow::Result<TwinParams> {
    edw_twin::params::load(file, sets).map_err(|e| match e {
        edw_twin::params::ParamsError::Assignment { assignment } => {
            anyhow::anyhow!("--set {assignment:?}: expected KEY=VALUE")
        }
        other => other.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
