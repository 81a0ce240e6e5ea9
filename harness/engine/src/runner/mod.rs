//! The scenario runner: a [`Scenario`] is named [`Step`]s plus always-run cleanup steps, over a
//! [`Context`] the steps share. [`run`] runs the steps in order, each under its timeout; the
//! first failure (or a panic, a timeout, Ctrl-C/SIGTERM) stops the flow, the diagnostic bundle
//! is captured, and then the cleanup steps run, always, each under its own timeout.
//! [`execute`] is the one way a scenario is run on a target (`edw run`, the nextest trials,
//! `edw bench`): context, ledger, run, target shutdown, reports.

mod context;
mod execute;
pub mod run_state;

pub use context::{Context, ProgressSink};
pub use edw_model::run::{DeployedGroup, FlowSettings, Footprint, RunNames};
pub use execute::{execute, ExecuteError, Executed, Execution};

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::Duration;

use futures::FutureExt;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use edw_model::report::{ScenarioReport, StepReport, StepStatus};

/// What a step function returns.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = StepResult> + Send + 'a>>;

/// A step: a function of the run's context.
pub type StepFn = for<'a> fn(&'a mut Context) -> StepFuture<'a>;

/// A step's verdict, with what it checked and saw.
#[derive(Debug, Clone, PartialEq)]
pub enum StepResult {
    /// The step's check holds. `warnings` are what people must still be told (a stranded
    /// tail): the step passes, and every report shows them (see [`StepReport::warnings`]).
    Passed {
        details: Vec<String>,
        warnings: Vec<String>,
    },
    Failed {
        message: String,
        details: Vec<String>,
    },
    Skipped {
        reason: String,
    },
}

impl StepResult {
    pub fn passed(details: impl IntoIterator<Item = String>) -> Self {
        Self::passed_with_warnings(details, [])
    }

    /// A pass that every report shows with `warnings` (the terminal's `WARN`, never `ok`).
    pub fn passed_with_warnings(
        details: impl IntoIterator<Item = String>,
        warnings: impl IntoIterator<Item = String>,
    ) -> Self {
        StepResult::Passed {
            details: details.into_iter().collect(),
            warnings: warnings.into_iter().collect(),
        }
    }

    pub fn failed(message: impl Into<String>, details: impl IntoIterator<Item = String>) -> Self {
        StepResult::Failed {
            message: message.into(),
            details: details.into_iter().collect(),
        }
    }

    pub fn skipped(reason: impl Into<String>) -> Self {
        StepResult::Skipped {
            reason: reason.into(),
        }
    }
}

/// One named step with its time limit (in target seconds: on the twin they are simulated
/// seconds, divided by the clock scale for the real limit).
#[derive(Clone)]
pub struct Step {
    pub name: &'static str,
    pub timeout: Duration,
    pub run: StepFn,
    /// A cleanup step that runs even when `--keep-on-failure` keeps the rest: what it undoes
    /// (an opening in the storage firewall) is nothing to inspect and must not outlive the run.
    pub runs_when_kept: bool,
    /// The step's work goes at the pace of real time whatever the target's clock (the producer
    /// sending from this machine): its timeout then ends only once it has passed on the target's
    /// clock and in real time. On the twin at x40, 600 target seconds were 15-40 real ones, and
    /// a 1,500-message burst on a busy machine failed its limit while sending steadily.
    pub paced_in_real_time: bool,
}

impl Step {
    pub fn new(name: &'static str, timeout: Duration, run: StepFn) -> Self {
        Step {
            name,
            timeout,
            run,
            runs_when_kept: false,
            paced_in_real_time: false,
        }
    }

    /// This step, whose work goes at real time's pace: its timeout holds on the target's clock
    /// and in real time (see [`Step::paced_in_real_time`]).
    pub fn paced_in_real_time(self) -> Self {
        Step {
            paced_in_real_time: true,
            ..self
        }
    }

    /// Ends when the step's timeout has passed on `clock` (and in real time too when the step
    /// is [paced in real time](Step::paced_in_real_time)).
    pub async fn time_limit(&self, clock: &crate::target::TargetClock) {
        if self.paced_in_real_time {
            tokio::join!(clock.sleep(self.timeout), tokio::time::sleep(self.timeout));
        } else {
            clock.sleep(self.timeout).await;
        }
    }

    /// This (cleanup) step, run even when a failed run's resources are kept.
    pub fn even_when_kept(self) -> Self {
        Step {
            runs_when_kept: true,
            ..self
        }
    }
}

/// An ordered list of steps plus always-run cleanup steps.
#[derive(Clone)]
pub struct Scenario {
    pub name: String,
    /// The configuration the scenario runs (ScaledObject numbers, load size).
    pub settings: context::FlowSettings,
    pub steps: Vec<Step>,
    pub cleanup: Vec<Step>,
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Keep the resources of a failed run (cleanup steps are skipped and say how to remove them).
    pub keep_on_failure: bool,
    /// Stop the whole run after this long (real time).
    pub deadline: Option<Duration>,
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Runs one step under its timeout, catching panics; `cancel` interrupts it.
async fn run_step(
    step: &Step,
    context: &mut Context,
    cancel: Option<&CancellationToken>,
) -> StepReport {
    let started_at = OffsetDateTime::now_utc();
    let started = tokio::time::Instant::now();
    let clock = context.clock();
    context.current_properties.clear();
    let fut = AssertUnwindSafe((step.run)(context)).catch_unwind();
    let result = tokio::select! {
        outcome = fut => match outcome {
            Ok(result) => result,
            Err(payload) => StepResult::failed(format!("the step panicked: {}", panic_text(payload)), []),
        },
        _ = step.time_limit(&clock) => StepResult::failed(
            format!(
                "the step did not finish within its timeout of {:?} ({}; {:?} real time)",
                step.timeout,
                if step.paced_in_real_time {
                    "target time and real time: the step goes at real time's pace"
                } else {
                    "target time"
                },
                started.elapsed()
            ),
            [],
        ),
        _ = async {
            match cancel {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        } => StepResult::failed("interrupted (Ctrl-C, SIGTERM or the run's deadline)", []),
    };
    let (outcome, details, warnings) = match result {
        StepResult::Passed { details, warnings } => (StepStatus::Passed, details, warnings),
        StepResult::Failed { message, details } => (
            StepStatus::Failed {
                message: crate::secrets::redact(&message),
            },
            details,
            Vec::new(),
        ),
        StepResult::Skipped { reason } => (StepStatus::Skipped { reason }, Vec::new(), Vec::new()),
    };
    let redact = |lines: Vec<String>| lines.iter().map(|d| crate::secrets::redact(d)).collect();
    StepReport {
        name: step.name.to_owned(),
        outcome,
        started_at,
        duration: started.elapsed(),
        details: redact(details),
        properties: std::mem::take(&mut context.current_properties),
        warnings: redact(warnings),
    }
}

/// Runs `scenario`: its steps until one fails, then (after diagnostics) its cleanup steps.
pub async fn run(
    scenario: &Scenario,
    context: &mut Context,
    options: &RunOptions,
    cancel: &CancellationToken,
) -> ScenarioReport {
    let started_at = OffsetDateTime::now_utc();
    let started = tokio::time::Instant::now();
    let interrupt = cancel.child_token();
    if let Some(deadline) = options.deadline {
        let token = interrupt.clone();
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            token.cancel();
        });
    }
    let mut steps = Vec::new();
    let mut failed = false;
    for step in &scenario.steps {
        if failed {
            steps.push(StepReport {
                name: step.name.to_owned(),
                outcome: StepStatus::Skipped {
                    reason: "an earlier step failed".to_owned(),
                },
                started_at: OffsetDateTime::now_utc(),
                duration: Duration::ZERO,
                details: Vec::new(),
                properties: Vec::new(),
                warnings: Vec::new(),
            });
            continue;
        }
        context.progress(&format!("step {}", step.name));
        let report = run_step(step, context, Some(&interrupt)).await;
        context.progress(&format!("step {}: {}", step.name, outcome_word(&report)));
        failed = report.outcome.is_failed();
        steps.push(report);
    }
    let diagnostics = if failed {
        context.progress("capturing diagnostics");
        Some(context.diagnostics().await)
    } else {
        None
    };
    let mut cleanup = Vec::new();
    for step in &scenario.cleanup {
        if failed && options.keep_on_failure && !step.runs_when_kept {
            cleanup.push(StepReport {
                name: step.name.to_owned(),
                outcome: StepStatus::Skipped {
                    reason: format!(
                        "kept for inspection (--keep-on-failure); remove it later with `{}`",
                        context.cleanup_hint()
                    ),
                },
                started_at: OffsetDateTime::now_utc(),
                duration: Duration::ZERO,
                details: Vec::new(),
                properties: Vec::new(),
                warnings: Vec::new(),
            });
            continue;
        }
        context.progress(&format!("cleanup {}", step.name));
        // Cleanup is not interruptible: a second Ctrl-C while cleaning would leak resources.
        let report = run_step(step, context, None).await;
        context.progress(&format!("cleanup {}: {}", step.name, outcome_word(&report)));
        cleanup.push(report);
    }
    context.finish();
    let phases = context.phases();
    let run_dir_hint = format!(
        "<report root>/{}-{}",
        scenario.name.replace("::", "-"),
        context.target_info.name
    );
    let (prediction, deviations) = crate::predict::for_run(context, &phases, &run_dir_hint);
    let mut findings = context.findings.clone();
    findings.extend(deviations);
    ScenarioReport {
        scenario: scenario.name.clone(),
        target: context.target_info.clone(),
        started_at,
        duration: started.elapsed(),
        steps,
        cleanup,
        timeline: context.timeline(),
        load_started_at: context.load_started_at,
        phases,
        diagnostics,
        findings,
        cost: context.cost(),
        lifecycle: context.lifecycle(),
        prediction,
    }
}

/// The progress line's verdict: a warned pass says so (with its warnings), never "passed" alone.
fn outcome_word(report: &StepReport) -> String {
    if report.warned() {
        return format!("passed with WARNING: {}", report.warnings.join("; "));
    }
    match &report.outcome {
        StepStatus::Passed => "passed",
        StepStatus::Failed { .. } => "FAILED",
        StepStatus::Skipped { .. } => "skipped",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{Step, StepFuture, StepResult};
    use crate::target::TargetClock;

    fn nothing(_: &mut super::Context) -> StepFuture<'_> {
        Box::pin(async { StepResult::passed([]) })
    }

    /// On the twin at x1000 a second of target time is a millisecond of real time: a step paced
    /// in real time (the producer) still gets its whole second, a step on the target's clock
    /// does not wait for it.
    #[tokio::test]
    async fn a_step_paced_in_real_time_keeps_its_limit_in_real_time_on_a_fast_clock() {
        let clock = TargetClock::Twin(Arc::new(edw_twin::clock::ScaledClock::new(1000.0)));
        let limit = Duration::from_secs(1);
        let paced = Step::new("load", limit, nothing).paced_in_real_time();
        let started = Instant::now();
        paced.time_limit(&clock).await;
        assert!(
            started.elapsed() >= limit,
            "a limit paced in real time ended after {:?} of real time, before its {limit:?}",
            started.elapsed()
        );
        let on_the_target_clock = Step::new("scale", limit, nothing);
        let started = Instant::now();
        tokio::time::timeout(
            Duration::from_millis(900),
            on_the_target_clock.time_limit(&clock),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "1 s of target time at x1000 took more than 900 ms of real time ({:?})",
                started.elapsed()
            )
        });
    }
}
