//! `edw deploy|validate|load|scale|cleanup`: one phase of the flow at a time, sharing the run's
//! names and progress through a run-state file, as the sample's scripts share deploy.state.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::args::{GlobalArgs, LoadArgs, PhaseArgs};
use crate::{exit, session, Failure};
use edw_engine::runner::{run as run_scenario, run_state, Context, FlowSettings, RunOptions};
use edw_engine::steps::{self, storage_firewall};
use edw_engine::target::TargetKind;
use edw_model::run::InClusterLoad;

/// `edw load`: the burst from this machine, or with `--in-cluster` from a Job's pods.
pub async fn run_load(
    global: &GlobalArgs,
    args: &LoadArgs,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    let mut phase = args.phase.clone();
    if let Some(count) = args.count {
        phase.messages = count;
    }
    let in_cluster = if args.in_cluster {
        edw_model::slices::check_split(phase.messages, args.parallelism).map_err(Failure::usage)?;
        if let Some(rate) = args.rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
            return Err(Failure::usage(anyhow::anyhow!(
                "--rate {rate} is not a positive number of messages per second"
            )));
        }
        Some(InClusterLoad {
            parallelism: args.parallelism,
            rate: args.rate,
        })
    } else {
        None
    };
    run_with("load", global, &phase, in_cluster, cancel).await
}

pub async fn run(
    phase: &str,
    global: &GlobalArgs,
    args: &PhaseArgs,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    run_with(phase, global, args, None, cancel).await
}

async fn run_with(
    phase: &str,
    global: &GlobalArgs,
    args: &PhaseArgs,
    in_cluster_load: Option<InClusterLoad>,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    let kind = TargetKind::parse(&args.target).map_err(Failure::usage)?;
    if kind == TargetKind::Local {
        return Err(Failure::usage(anyhow::anyhow!(
            "the local target (the twin) lives inside one process, so its phases cannot be run one at a time: \
             use `edw run`, or run `edw twin serve` in another terminal and `edw {phase} --target kube` with the KUBECONFIG it prints"
        )));
    }
    let mut scenario = steps::phase(phase)
        .ok_or_else(|| Failure::usage(anyhow::anyhow!("unknown phase {phase}")))?;
    if phase == "load" {
        // A burst the model says never activates tests nothing: refused before it is sent.
        steps::check_load_activates(&FlowSettings {
            messages: args.messages,
            ..scenario.settings.clone()
        })
        .map_err(Failure::usage)?;
    }
    let config = session::load_config(global)?;
    let target = match session::open_target(kind, &config).await {
        Ok(target) => Arc::new(target),
        Err(failure) => {
            if phase == "cleanup" {
                return cleanup_without_target(&args.run_state, failure).await;
            }
            return Err(failure);
        }
    };
    let settings = FlowSettings {
        messages: args.messages,
        in_cluster_load,
        ..scenario.settings.clone()
    };
    let mut context = Context::new(target.clone(), config, settings)
        .with_progress(Arc::new(|line: &str| eprintln!("{line}")));
    if phase != "deploy" {
        let recorded_for =
            run_state::restore(&mut context, &args.run_state).map_err(Failure::usage)?;
        if recorded_for != kind.name() {
            return Err(Failure::usage(anyhow::anyhow!(
                "{} belongs to a run on the {recorded_for} target, not {}",
                args.run_state.display(),
                kind.name()
            )));
        }
    }
    if phase == "cleanup" && context.storage_firewall_opening.is_some() {
        scenario.cleanup.push(storage_firewall::cleanup_step());
    }
    if phase == "cleanup" && context.deployed_group.is_some() {
        scenario.cleanup.push(steps::cleanup_resource_group_step());
    }
    context.ledger = Some(args.run_state.clone());
    let report = run_scenario(&scenario, &mut context, &RunOptions::default(), cancel).await;
    run_state::save(&context, &args.run_state).map_err(Failure::environment)?;
    println!("{} on {}", report.scenario, report.target.description);
    for step in report.steps.iter().chain(&report.cleanup) {
        let (mark, text) = step.status_line();
        println!("  {mark} {}{text}", step.name);
        // What each step saw (counts, values, the clock), and what a cleanup deleted and left
        // alone (not the run's).
        for detail in &step.details {
            println!("       {detail}");
        }
    }
    println!("run state: {}", args.run_state.display());
    Ok(if report.passed() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

/// `edw cleanup` when the target does not open: what the run created outside the cluster is
/// still removed from its ledger alone: the IP rule it added to the storage firewall, and the
/// resource group a `--deploy` run deployed (its cluster lives in it, so everything of the run
/// goes with it). Without either, the target's failure stands.
async fn cleanup_without_target(ledger: &std::path::Path, failure: Failure) -> Result<u8, Failure> {
    let opening = run_state::storage_firewall_opening(ledger);
    let group = run_state::deployed_group(ledger);
    if opening.is_none() && group.is_none() {
        return Err(failure);
    }
    eprintln!(
        "the target does not open ({:#}); removing what the run created outside it…",
        failure.error
    );
    let mut errors = Vec::new();
    if let Some(opening) = &opening {
        match storage_firewall::close(opening).await {
            Ok(done) => {
                println!("{done}");
                // Removed: the ledger no longer names it (a later rule for the same address is
                // not this run's).
                if let Err(e) = run_state::forget_storage_firewall_opening(ledger) {
                    eprintln!("warning: {e}");
                }
            }
            Err(failed) => errors.push(failed),
        }
    }
    if let Some(group) = &group {
        match steps::delete_group_announced(group, "the run deployed it").await {
            Ok(done) => println!("{done}"),
            Err(failed) => errors.push(failed),
        }
    }
    if errors.is_empty() {
        Ok(exit::OK)
    } else {
        Err(Failure::environment(anyhow::anyhow!(errors.join("; "))))
    }
}
