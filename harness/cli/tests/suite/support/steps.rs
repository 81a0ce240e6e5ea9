//! Scenario steps that end each way a run can end: pass, fail, panic, or never finish (for a
//! timeout or an interruption), for tests of what always runs afterwards.

use std::time::Duration;

use edw_engine::runner::{run, Context, RunOptions, Scenario, StepFuture, StepResult};
use edw_model::report::ScenarioReport;
use tokio_util::sync::CancellationToken;

/// Runs `scenario`, interrupted (as Ctrl-C or SIGTERM do) after 300 ms when `interrupt`.
pub async fn run_interrupting(
    scenario: &Scenario,
    context: &mut Context,
    options: &RunOptions,
    interrupt: bool,
) -> ScenarioReport {
    let cancel = CancellationToken::new();
    if interrupt {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel();
        });
    }
    run(scenario, context, options, &cancel).await
}

pub fn passes(_: &mut Context) -> StepFuture<'_> {
    Box::pin(async { StepResult::passed(["fine".to_owned()]) })
}

pub fn fails(_: &mut Context) -> StepFuture<'_> {
    Box::pin(async { StepResult::failed("this step fails on purpose", []) })
}

pub fn panics(_: &mut Context) -> StepFuture<'_> {
    Box::pin(async { panic!("this step panics on purpose") })
}

pub fn hangs(_: &mut Context) -> StepFuture<'_> {
    Box::pin(async {
        std::future::pending::<()>().await;
        StepResult::passed([])
    })
}
