//! The one way a scenario runs on a target, for `edw run`, the nextest trials and `edw bench`:
//! the run's context on the opened target, its ledger, the run (cleanup always), the ledger
//! removed when nothing is left to clean, the target shut down, the reports written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use edw_model::report::ScenarioReport;
use tokio_util::sync::CancellationToken;

use super::{run, run_state, Context, RunOptions, Scenario};
use crate::config::Config;
use crate::report::{self, ReportError};
use crate::target::Target;

/// Why a finished run has no reports.
#[derive(Debug, thiserror::Error)]
#[error("writing the reports of {scenario} to {}", dir.display())]
pub struct ExecuteError {
    pub scenario: String,
    pub dir: PathBuf,
    #[source]
    pub source: ReportError,
}

/// A scenario ready to run on an opened target: the caller may adjust [`Execution::context`]
/// (settings, footprint, progress, what the run deployed) before [`Execution::run`].
pub struct Execution {
    pub scenario: Scenario,
    /// The run's context (settings from the scenario, names, ledger).
    pub context: Context,
    pub options: RunOptions,
    target: Arc<Target>,
    report_dir: PathBuf,
}

/// What a finished run left: its report, where the reports are, and its ledger.
#[derive(Debug)]
pub struct Executed {
    pub report: ScenarioReport,
    /// `<report root>/<scenario>-<target>`, with junit.xml, timeline.json, timeline.svg,
    /// summary.md and (when the run recorded one) lifecycle.json.
    pub report_dir: PathBuf,
    pub ledger: PathBuf,
    /// The ledger was kept: the run's cleanup did not finish (or `--keep-on-failure` kept
    /// resources), and `edw cleanup --run-state <ledger>` removes what it left.
    pub ledger_kept: bool,
    /// How faithful the twin's simulated time was (the local target's governed clock).
    pub twin_clock: Option<String>,
}

impl Execution {
    /// `scenario` on `target` with `config`: reports go to `<report_root>/<scenario>-<target>`,
    /// the ledger (what the run creates, recorded before it is created) to `ledger`.
    pub fn new(
        scenario: Scenario,
        target: Target,
        config: Config,
        report_root: &Path,
        ledger: PathBuf,
    ) -> Self {
        Self::on_shared(scenario, Arc::new(target), config, report_root, ledger)
    }

    /// [`Execution::new`] on a target other runs share (scenarios side by side): the last
    /// run to finish shuts it down, so the caller must not keep a clone of `target`.
    pub fn on_shared(
        scenario: Scenario,
        target: Arc<Target>,
        config: Config,
        report_root: &Path,
        ledger: PathBuf,
    ) -> Self {
        let report_dir = report_root.join(report_dir_name(&scenario, &target));
        let mut context = Context::new(target.clone(), config, scenario.settings.clone());
        context.ledger = Some(ledger);
        Execution {
            scenario,
            context,
            options: RunOptions::default(),
            target,
            report_dir,
        }
    }

    /// Where the reports will be written.
    pub fn report_dir(&self) -> &Path {
        &self.report_dir
    }

    /// Runs the scenario (cleanup always runs), then removes the ledger if nothing is left to
    /// clean, shuts the target down and writes the reports.
    pub async fn run(self, cancel: &CancellationToken) -> Result<Executed, ExecuteError> {
        let Execution {
            scenario,
            mut context,
            options,
            target,
            report_dir,
        } = self;
        let ledger = context.ledger.clone().unwrap_or_default();
        let report = run(&scenario, &mut context, &options, cancel).await;
        let ledger_kept = !run_state::remove_when_cleaned(&ledger, &report, &options);
        drop(context);
        let twin_clock = match target.as_ref() {
            Target::Local(local) => Some(local.governor_summary().to_string()),
            Target::Cluster(_) => None,
        };
        if let Ok(target) = Arc::try_unwrap(target) {
            target.shutdown().await;
        }
        report::write_all(&report, &report_dir).map_err(|source| ExecuteError {
            scenario: scenario.name.clone(),
            dir: report_dir.clone(),
            source,
        })?;
        Ok(Executed {
            report,
            report_dir,
            ledger,
            ledger_kept,
            twin_clock,
        })
    }
}

/// `flow-burst-local`: the scenario's name with `::` as `-`, then the target's name.
pub fn report_dir_name(scenario: &Scenario, target: &Target) -> String {
    format!(
        "{}-{}",
        scenario.name.replace("::", "-"),
        target.info().name
    )
}

/// Runs `scenario` on `target` with its own settings: [`Execution::new`], then
/// [`Execution::run`].
pub async fn execute(
    scenario: Scenario,
    target: Target,
    config: Config,
    report_root: &Path,
    ledger: PathBuf,
    cancel: &CancellationToken,
) -> Result<Executed, ExecuteError> {
    Execution::new(scenario, target, config, report_root, ledger)
        .run(cancel)
        .await
}
