//! The ceiling: a burst larger than maxReplicaCount serves holds the replicas at the ceiling and stops node growth.

use edw_engine::observe::{consistently, Expect};
use edw_engine::runner::{Context, FlowSettings, Scenario, Step, StepFuture, StepResult};
use edw_engine::steps::*;
use edw_model::report::Read;

/// A burst far above maxReplicaCount never exceeds it, and the NodePool stops growing once
/// every pod fits.
pub fn ceiling() -> Scenario {
    // 600 messages ask for 120 replicas, eight times maxReplicaCount (and stay well under the
    // backlog at which Azurite slows down).
    let settings = FlowSettings {
        messages: 600,
        ..FlowSettings::default()
    };
    scenario(
        "flow::ceiling",
        settings,
        vec![
            load_step(),
            scale_out_step(),
            Step::new(
                "ceiling: replicas hold at maxReplicaCount",
                secs(600),
                holds_ceiling,
            ),
            nodes_grow_step(),
            Step::new(
                "ceiling: nodes stop growing once every pod fits",
                secs(7200),
                nodes_stop,
            ),
            drained_step(),
            scaled_in_step(),
            nodes_removed_step(),
            verify_step(),
        ],
    )
}

fn holds_ceiling(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let max = ctx.model().scaling.max_replicas;
        let window = ctx.model().scaling.polling * 2;
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running", []);
        };
        let expect = Expect::new(
            format!("desired replicas <= maxReplicaCount {max} and consumer pods <= {max}"),
            move |o| o.desired <= max && o.running + o.pending <= max,
        )
        .reading(&[Read::Deployment, Read::Pods]);
        match consistently(recorder, &expect, window).await {
            Ok(()) => StepResult::passed([format!("held for {} s", window.as_secs())]),
            Err(failure) => StepResult::failed(
                format!("the ceiling broke: expected {}", expect.description),
                failure.lines(),
            ),
        }
    })
}

fn nodes_stop(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if !ctx.target.capabilities().karpenter {
            return StepResult::skipped(
                "the cluster serves no karpenter.sh API: node growth cannot be observed",
            );
        }
        let model = ctx.model();
        let e = model.burst(messages(ctx));
        let (peak, most) = (e.peak_replicas, e.nodes_max + ctx.nodes_before_load);
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running", []);
        };
        let all_running = Expect::new(format!("{peak} consumer pods Running"), move |o| {
            o.running >= peak
        });
        let within = model.timeouts(messages(ctx)).nodes_grow;
        if let Err(failure) = edw_engine::observe::eventually(recorder, &all_running, within).await
        {
            return StepResult::failed(
                format!(
                    "expected {} within {} s",
                    all_running.description,
                    within.as_secs()
                ),
                failure.lines(),
            );
        }
        let pool = ctx.names.nodepool.clone();
        let bounded = Expect::new(
            format!("nodes of NodePool {pool} <= {most} (the model's most for {peak} pods)"),
            move |o| o.nodes.get(&pool).copied().unwrap_or(0) <= most,
        )
        .reading(&[Read::Nodes]);
        let window = model.scaling.polling * 2;
        match consistently(recorder, &bounded, window).await {
            Ok(()) => StepResult::passed([format!(
                "every pod Running; nodes held at most {most} for {} s",
                window.as_secs()
            )]),
            Err(failure) => StepResult::failed(
                format!(
                    "the NodePool grew past what the pods need: expected {}",
                    bounded.description
                ),
                failure.lines(),
            ),
        }
    })
}
