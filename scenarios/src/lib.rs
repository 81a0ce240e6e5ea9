//! The conformance scenarios, one file each, written with the engine's public
//! [`edw_engine::steps`]: every expectation comes from the model of the scenario's own
//! settings, so a team can change queueLength or maxReplicaCount and the checks follow.
//!
//! [`all`] is the catalogue (`edw run --list`); [`find`] picks one by name (`edw run
//! --scenario`); [`run_trial`] runs one on a target as a nextest trial (`tests/flows.rs`),
//! through the same [`edw_engine::runner::execute`] as `edw run`. Targets other than `local`
//! run only when `EDW_TARGET` selects them; otherwise their trials are listed as ignored, with
//! the reason.

mod activation;
mod burst;
mod ceiling;
mod chaos;
mod consumer_restart;
mod poison;
mod scale_to_zero;
mod steady_rate;
mod tail;
mod tail_fixed;

use std::path::PathBuf;

use edw_engine::config::{Config, ConfigInputs};
use edw_engine::runner::{Execution, Scenario};
use edw_engine::target::{Target, TargetKind};
use edw_model::report::StepStatus;
use tokio_util::sync::CancellationToken;

pub use activation::activation_window;
pub use burst::burst;
pub use ceiling::ceiling;
pub use chaos::chaos;
pub use consumer_restart::consumer_restart;
pub use poison::poison;
pub use scale_to_zero::scale_to_zero;
pub use steady_rate::{steady_rate, RATE, WINDOW};
pub use tail::tail_below_activation;
pub use tail_fixed::tail_fixed;

/// Every scenario, in a stable order.
pub fn all() -> Vec<Scenario> {
    vec![
        burst(),
        activation_window(),
        ceiling(),
        scale_to_zero(),
        tail_below_activation(),
        tail_fixed(),
        steady_rate(),
        poison(),
        consumer_restart(),
        chaos(2000),
    ]
}

/// The scenario called `name` (`flow::burst`, or just `burst`).
pub fn find(name: &str) -> Option<Scenario> {
    all()
        .into_iter()
        .find(|s| s.name == name || s.name.strip_prefix("flow::") == Some(name))
}

/// One line about `scenario`: what it proves (for `edw run --list`); a scenario outside the
/// catalogue is described by its steps.
pub fn describe(scenario: &Scenario) -> String {
    let about = match scenario.name.as_str() {
        "flow::burst" => "the walkthrough: deploy, validate, a burst, scale out to the modelled peak, nodes grow, drain, scale in, nodes go, none lost",
        "flow::activation" => "activationQueueLength messages keep 0 replicas for two polls; one more activates",
        "flow::ceiling" => "a burst asking for 8x maxReplicaCount never exceeds it; the NodePool stops growing",
        "flow::scale_to_zero" => "after the drain, 0 replicas within the cooldown plus a poll; nodes removed",
        "flow::tail" => "finding: minReplicaCount 0 + activationQueueLength 20 strands the tail, unread",
        "flow::tail_fixed" => "the fix (activationQueueLength 0) drains every message",
        "flow::steady_rate" => "a constant 1.5 msg/s holds the model's 3 replicas for 240 s, each message once",
        "flow::poison" => "malformed and failing messages end in the poison queue; the rest drain once",
        "flow::consumer_restart" => "consumer pods killed twice mid-drain; every message still processed once",
        "flow::chaos" => "2,000 messages; pods killed three times and NodeClaims deleted mid-drain; none lost",
        _ => "",
    };
    if !about.is_empty() {
        return about.to_owned();
    }
    let steps: Vec<&str> = scenario.steps.iter().map(|s| s.name).collect();
    format!("{} steps: {}", steps.len(), steps.join("; "))
}

/// Why a target's trials do not run here, or `None` when they do.
pub fn skip_reason(target: TargetKind) -> Option<String> {
    if target == TargetKind::Local {
        return None;
    }
    let selected = std::env::var("EDW_TARGET").unwrap_or_default();
    (selected != target.name()).then(|| {
        format!(
            "the {} target runs only with EDW_TARGET={} (and a kubeconfig{}); EDW_TARGET is {:?}",
            target.name(),
            target.name(),
            if target == TargetKind::Aks {
                " and deploy.state for a live subscription"
            } else {
                " with KEDA"
            },
            selected
        )
    })
}

/// Where reports go: `<workspace>/reports` unless `EDW_REPORT_DIR` says otherwise.
pub fn report_dir() -> PathBuf {
    std::env::var_os("EDW_REPORT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("reports")
        })
}

/// Runs `scenario` on `target`, writes its reports and returns the failure text, if any.
pub fn run_trial(scenario: &Scenario, target: TargetKind) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let config = Config::load(&ConfigInputs::from_process()).map_err(|e| e.to_string())?;
        let opened = Target::open(target, &config).await.map_err(|e| {
            format!(
                "cannot open the {} target: {}",
                target.name(),
                edw_engine::error_chain::text(&e)
            )
        })?;
        let root = report_dir();
        let dir_name = format!("{}-{}", scenario.name.replace("::", "-"), target.name());
        // The trial's ledger: a trial killed past nextest's grace period is cleaned from it
        // (`edw cleanup --run-state`, as the nightly does for every ledger left).
        let ledger = root.join(&dir_name).join("edw-run.state");
        let mut execution = Execution::new(scenario.clone(), opened, config, &root, ledger);
        execution
            .context
            .set_progress(std::sync::Arc::new(|line: &str| eprintln!("{line}")));
        // nextest's SIGTERM at its time limit (or Ctrl-C) stops the trial and runs its cleanup.
        let cancel = CancellationToken::new();
        let _interrupted = edw_engine::interrupt::cancel_on_interrupt(cancel.clone());
        let executed = execution
            .run(&cancel)
            .await
            .map_err(|e| edw_engine::error_chain::text(&e))?;
        let result = executed.report;
        eprintln!("reports in {}", executed.report_dir.display());
        for (step, warning) in result.warnings() {
            eprintln!("WARNING: {step}: {warning}");
        }
        if result.passed() {
            Ok(())
        } else {
            let failures: Vec<String> = result
                .steps
                .iter()
                .chain(&result.cleanup)
                .filter_map(|s| match &s.outcome {
                    StepStatus::Failed { message } => Some(format!(
                        "{}: {message}\n  {}",
                        s.name,
                        s.details.join("\n  ")
                    )),
                    _ => None,
                })
                .collect();
            Err(format!(
                "{} failed on {}:\n{}\n{}",
                result.scenario,
                result.target.description,
                failures.join("\n"),
                result.diagnostics.unwrap_or_default()
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_a_unique_name_a_description_and_is_found_by_its_names() {
        let all = all();
        let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "duplicate scenario names");
        for scenario in &all {
            assert!(
                !describe(scenario).contains("steps:"),
                "{}: no description",
                scenario.name
            );
            assert_eq!(
                find(&scenario.name).map(|s| s.name),
                Some(scenario.name.clone())
            );
            let short = scenario.name.trim_start_matches("flow::");
            assert_eq!(find(short).map(|s| s.name), Some(scenario.name.clone()));
        }
        assert!(find("no_such_flow").is_none());
    }

    #[test]
    fn the_burst_is_the_walkthrough_setup_load_scale_checks_verify_and_cleanup() {
        let burst = burst();
        let names: Vec<&str> = burst.steps.iter().map(|s| s.name).collect();
        assert_eq!(names[0], "deploy");
        assert_eq!(names[5], "load: producer burst");
        assert_eq!(names.last(), Some(&edw_engine::steps::VERIFY_STEP));
        assert_eq!(burst.steps.len(), 12);
        assert_eq!(burst.cleanup.len(), 2);
    }

    /// The scenarios that act mid-drain send their whole backlog before the ScaledObject, with
    /// a load limit that holds in real time: their steps then never begin after the drain.
    #[test]
    fn the_mid_drain_scenarios_send_their_backlog_before_the_scaled_object() {
        for scenario in [consumer_restart(), chaos(2000)] {
            let names: Vec<&str> = scenario.steps.iter().map(|s| s.name).collect();
            let load = names
                .iter()
                .position(|n| n.starts_with("load: producer burst"));
            let scaled_object = names
                .iter()
                .position(|n| *n == "deploy: ScaledObject and TriggerAuthentication");
            assert!(
                matches!((load, scaled_object), (Some(l), Some(s)) if l + 1 == s),
                "{}: {names:?}",
                scenario.name
            );
            assert!(
                scenario.steps[load.unwrap()].paced_in_real_time,
                "{}",
                scenario.name
            );
            assert_eq!(scenario.cleanup.len(), 2, "{}", scenario.name);
        }
    }
}
