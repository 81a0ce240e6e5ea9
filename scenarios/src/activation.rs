//! The activation window: activationQueueLength messages keep the Deployment at 0 (AQ-7 is strict); one more activates it.

use edw_engine::observe::{consistently, Expect};
use edw_engine::runner::{Context, FlowSettings, Scenario, Step, StepFuture, StepResult};
use edw_engine::steps::*;
use edw_engine::workload::{produce, ProducerPlan};
use edw_model::report::Read;
use tokio_util::sync::CancellationToken;

/// activationQueueLength messages keep the Deployment at 0 (AQ-7 is strict); one more
/// activates it.
pub fn activation_window() -> Scenario {
    let settings = FlowSettings {
        messages: FlowSettings::default().activation_queue_length,
        ..FlowSettings::default()
    };
    scenario(
        "flow::activation",
        settings,
        vec![
            Step::new("load: activationQueueLength messages", secs(300), load).paced_in_real_time(),
            Step::new(
                "activation: stays at 0 for two polls",
                secs(600),
                stays_at_zero,
            ),
            Step::new(
                "load: one more message crosses the threshold",
                secs(120),
                one_more,
            ),
            Step::new("activation: scales out", secs(7200), activates),
            drained_step(),
            scaled_in_step(),
            verify_step(),
        ],
    )
}

pub(crate) fn stays_at_zero(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let model = ctx.model();
        let n = messages(ctx);
        if model.is_active(n) {
            return StepResult::failed(format!("{n} messages are above activationQueueLength {}: the scenario is misconfigured", model.scaling.activation), []);
        }
        let window = model.scaling.polling * 2;
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running", []);
        };
        let expect = Expect::new(
            format!(
                "desired replicas = 0 with {n} messages <= activationQueueLength {}",
                model.scaling.activation
            ),
            |o| o.desired == 0,
        )
        .reading(&[Read::Deployment]);
        match consistently(recorder, &expect, window).await {
            Ok(()) => StepResult::passed([format!("held for {} s (two polls)", window.as_secs())]),
            Err(failure) => StepResult::failed(
                format!(
                    "the Deployment scaled out below the activation threshold ({})",
                    expect.description
                ),
                failure.lines(),
            ),
        }
    })
}

fn one_more(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let queue = ctx.target.storage().queue(&ctx.names.queue);
        let next = ctx
            .produced
            .as_ref()
            .and_then(|p| p.sent.last().copied())
            .unwrap_or(0)
            + 1;
        let plan = ProducerPlan {
            first_index: next,
            ..ProducerPlan::burst(1, 1)
        };
        let started = ctx.recorder.as_ref().map(|r| r.elapsed());
        match produce(&queue, &plan, &CancellationToken::new()).await {
            Ok(report) => {
                ctx.note_sent(started, report.sent_count());
                if let Some(produced) = ctx.produced.as_mut() {
                    produced.sent.extend(report.sent);
                }
                StepResult::passed([format!("message {next} sent")])
            }
            Err(e) => StepResult::failed(edw_engine::error_chain::text(&e), []),
        }
    })
}

fn activates(ctx: &mut Context) -> StepFuture<'_> {
    let model = ctx.model();
    let line = format!(
        "{} > activationQueueLength {}: KEDA activates at its next poll",
        messages(ctx),
        model.scaling.activation
    );
    let within = model.scaling.polling + model.timing.hpa_sync * 2;
    let expect = Expect::new("desired replicas >= 1", |o| o.desired >= 1);
    wait_modelled(ctx, expect, within, line)
}
