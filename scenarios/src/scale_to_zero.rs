//! Scale to zero: after the drain the Deployment returns to 0 replicas (KS-5).

use edw_engine::observe::Expect;
use edw_engine::runner::{Context, FlowSettings, Scenario, Step, StepFuture};
use edw_engine::steps::*;
use edw_model::report::Read;

/// After the drain, replicas reach 0 within the cooldown plus a poll, and the nodes go.
pub fn scale_to_zero() -> Scenario {
    let settings = FlowSettings {
        messages: 200,
        ..FlowSettings::default()
    };
    scenario(
        "flow::scale_to_zero",
        settings,
        vec![
            load_step(),
            scale_out_step(),
            drained_step(),
            Step::new(
                "scale to zero: replicas 0 within the cooldown and a poll",
                secs(7200),
                zero_after_drain,
            ),
            nodes_removed_step(),
            verify_step(),
        ],
    )
}

fn zero_after_drain(ctx: &mut Context) -> StepFuture<'_> {
    let model = ctx.model();
    let e = model.burst(messages(ctx));
    // KS-5: one poll when cooldown < polling; the HPA sync and pod termination add a little.
    let within = e.scale_to_zero_within + model.timing.hpa_sync;
    let line = format!(
        "cooldown {} s, polling {} s: minReplicaCount 0 within {} s of the drain",
        model.scaling.cooldown.as_secs(),
        model.scaling.polling.as_secs(),
        e.scale_to_zero_within.as_secs()
    );
    let expect = Expect::new("desired replicas = 0 and no consumer pod running", |o| {
        o.desired == 0 && o.running == 0
    })
    .reading(&[Read::Deployment, Read::Pods]);
    wait_modelled(ctx, expect, within, line)
}
