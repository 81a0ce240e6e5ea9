//! The scenario catalogue as trials: each scenario on each target, named
//! `<scenario>::<target>` (`flow::burst::local`). Targets other than `local` run only when
//! `EDW_TARGET` selects them; otherwise their trials are listed as ignored, with the reason.

use std::path::PathBuf;
use std::sync::Arc;

use harness::config::{Config, ConfigInputs};
use harness::scenario::{report, run, Context, RunOptions, Scenario};
use harness::target::{Target, TargetKind};
use tokio_util::sync::CancellationToken;

/// Every scenario of the catalogue.
pub fn catalogue() -> Vec<Scenario> {
    harness::scenario::catalogue::all()
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
                harness::error_chain::text(&e)
            )
        })?;
        let opened = Arc::new(opened);
        let dir = report_dir().join(format!(
            "{}-{}",
            scenario.name.replace("::", "-"),
            target.name()
        ));
        // The trial's ledger: a trial killed past nextest's grace period is cleaned from it
        // (`edw cleanup --run-state`, as the nightly does for every ledger left).
        let ledger = dir.join("edw-run.state");
        let mut context = Context::new(opened.clone(), config, scenario.settings.clone())
            .with_progress(Arc::new(|line: &str| eprintln!("{line}")));
        context.ledger = Some(ledger.clone());
        // nextest's SIGTERM at its time limit (or Ctrl-C) stops the trial and runs its cleanup.
        let cancel = CancellationToken::new();
        let _interrupted = harness::interrupt::cancel_on_interrupt(cancel.clone());
        let options = RunOptions::default();
        let result = run(scenario, &mut context, &options, &cancel).await;
        drop(context);
        if let Ok(opened) = Arc::try_unwrap(opened) {
            opened.shutdown().await;
        }
        // Nothing is left to clean when every cleanup step passed or had nothing to do.
        harness::scenario::run_state::remove_when_cleaned(&ledger, &result, &options);
        report::write_all(&result, &dir).map_err(|e| harness::error_chain::text(&e))?;
        eprintln!("reports in {}", dir.display());
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
                    harness::scenario::model::Outcome::Failed { message } => Some(format!(
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
