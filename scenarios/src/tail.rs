//! The stranded tail: a tail at or below activationQueueLength is left unread at 0 replicas (a finding, reproduced on the twin's virtual clock).

use crate::activation::stays_at_zero;
use edw_engine::runner::{Context, FlowSettings, Scenario, Step, StepFuture, StepResult};
use edw_engine::steps::*;

/// The walkthrough's configuration can strand messages: reproduced after a burst on the twin's
/// virtual clock (deterministic), reported as a finding with the fix, and shown on the target:
/// activationQueueLength messages stay on the queue at 0 replicas, unread.
pub fn tail_below_activation() -> Scenario {
    let settings = FlowSettings {
        messages: FlowSettings::default().activation_queue_length,
        ..FlowSettings::default()
    };
    let mut steps = vec![Step::new(
        "finding: messages stranded below activationQueueLength",
        secs(60),
        stranded_tail,
    )];
    steps.extend(setup());
    steps.extend([
        Step::new("load: activationQueueLength messages", secs(300), load).paced_in_real_time(),
        Step::new("tail: stays at 0 for two polls", secs(600), stays_at_zero),
        Step::new(
            "tail: the messages wait on the queue at 0 replicas, unread",
            secs(120),
            left_unread,
        ),
    ]);
    Scenario {
        name: "flow::tail".to_owned(),
        settings,
        steps,
        cleanup: cleanup(),
    }
}

/// Every message the load sent is still on the queue with no row: stranded, not lost. This
/// scenario expects the tail (it tests the finding), so its step passes without a warning.
fn left_unread(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let (produced, mut result) = match reconcile_run(ctx).await {
            Ok(reconciled) => reconciled,
            Err(failed) => return failed,
        };
        let tail = stranded_on_queue(ctx, &mut result).await;
        record_counts(ctx, &result);
        let counts = result.summary();
        if result.stranded.len() as u64 != produced.sent_count() {
            return StepResult::failed(
                format!(
                    "expected all {} messages unread on the queue below the activation threshold: {counts}",
                    produced.sent_count()
                ),
                [],
            );
        }
        match tail {
            StrandedTail::Allowed(note) => StepResult::passed([counts, note]),
            StrandedTail::Refused(why) => StepResult::failed(format!("{why}: {counts}"), []),
            StrandedTail::None => StepResult::failed(
                format!("the unread messages are not on the queue: {counts}"),
                [],
            ),
        }
    })
}

fn stranded_tail(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let model = ctx.model();
        let bound = model.burst(1000).max_stranded;
        if bound == 0 {
            return StepResult::passed([
                "minReplicaCount > 0 or activationQueueLength 0: nothing can be stranded"
                    .to_owned(),
            ]);
        }
        let so = scaled_object_json(&ctx.settings);
        // Look for a burst size whose drain leaves a tail at the deciding poll.
        for messages in 1000..1200u64 {
            let input = edw_twin::simulate::SimulationInput {
                params: edw_twin::params::TwinParams::default(),
                profile: edw_twin::queue::LoadProfile::burst(30.0, messages),
                scaled_object: Some(so.clone()),
                duration: 900.0,
            };
            let report = match edw_twin::simulate::simulate(&input) {
                Ok(report) => report,
                Err(e) => {
                    return StepResult::failed(
                        format!(
                            "the twin could not simulate: {}",
                            edw_engine::error_chain::text(&e)
                        ),
                        [],
                    )
                }
            };
            let left = report.left_on_queue;
            if left > 0 && left <= bound && report.samples.last().is_some_and(|s| s.replicas == 0) {
                ctx.property("finding.stranded_tail.messages", left);
                ctx.findings.push(edw_engine::findings::Finding {
                    id: "stranded-tail".to_owned(),
                    severity: edw_engine::findings::Severity::Risk,
                    subject: "ScaledObject aws2az-queue-scaleobj: spec.minReplicaCount with spec.triggers[0].metadata.activationQueueLength".to_owned(),
                    message: format!("minReplicaCount 0 with activationQueueLength {bound}: KEDA deactivates with up to {bound} messages left"),
                    consequence: format!("reproduced on the twin's virtual clock: a burst of {messages} leaves {left} messages at 0 replicas until new traffic arrives"),
                    fix: "activationQueueLength 0, or minReplicaCount 1".to_owned(),
                });
                return StepResult::passed([
                    format!("FINDING (risk): minReplicaCount 0 with activationQueueLength {bound} strands up to {bound} messages at 0 replicas until new traffic arrives"),
                    format!("reproduced on the twin's virtual clock (SIMULATED): a burst of {messages} leaves {left} messages on the queue at 0 replicas, still there at 900 s"),
                    "fix: activationQueueLength 0, or minReplicaCount 1 (scenario flow::tail_fixed proves the first drains)".to_owned(),
                ]);
            }
        }
        StepResult::failed(format!("the model says up to {bound} messages can be stranded, but no burst of 1000..1200 reproduced it on the twin"), [])
    })
}
