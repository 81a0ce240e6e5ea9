//! The stranded tail fixed: with activationQueueLength 0 nothing is left on the queue.

use edw_engine::observe::{consistently, Expect};
use edw_engine::runner::{Context, FlowSettings, Scenario, Step, StepFuture, StepResult};
use edw_engine::steps::*;
use edw_model::report::Read;

/// The fix for the stranded tail: activationQueueLength 0 drains every message.
pub fn tail_fixed() -> Scenario {
    let settings = FlowSettings {
        messages: 1080,
        activation_queue_length: 0,
        ..FlowSettings::default()
    };
    scenario(
        "flow::tail_fixed",
        settings,
        vec![
            load_step(),
            drained_step(),
            scaled_in_step(),
            Step::new(
                "tail: nothing left on the queue at 0 replicas",
                secs(600),
                nothing_left,
            ),
            verify_step(),
        ],
    )
}

fn nothing_left(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let window = ctx.model().scaling.polling * 2;
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running", []);
        };
        let expect = Expect::new("queue depth = 0 at 0 replicas", |o| {
            o.queue == Some(0) && o.desired == 0
        })
        .reading(&[Read::Deployment]);
        match consistently(recorder, &expect, window).await {
            Ok(()) => StepResult::passed([format!(
                "empty queue at 0 replicas for {} s",
                window.as_secs()
            )]),
            Err(failure) => StepResult::failed("messages were left on the queue", failure.lines()),
        }
    })
}
