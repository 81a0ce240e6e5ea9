//! Consumer restarts: consumer pods killed mid-drain; every message is still processed once.
//!
//! The burst goes on the queue before the ScaledObject exists (as `flow::chaos` does), so the
//! kills happen mid-drain however fast or slow the machine is. With the ScaledObject first, a
//! busy machine's producer was slower than the consumers: a CI run's 500 messages took 23.8 real
//! seconds side by side with two other scenarios, the queue drained and KEDA scaled to 0 before
//! the kill step began, and it found no pod to kill.

use edw_engine::runner::{Context, FlowSettings, Scenario, Step, StepFuture, StepResult};
use edw_engine::steps::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};

/// Consumer pods killed mid-drain: every message is still processed once (or, as a warning,
/// left in the configuration's stranded tail), none lost or duplicated. Deploy, the burst, then
/// the ScaledObject: the whole backlog waits on the queue before KEDA scales anything.
pub fn consumer_restart() -> Scenario {
    let settings = FlowSettings {
        messages: 500,
        ..FlowSettings::default()
    };
    // The producer burst step itself (so `--in-cluster-load` applies), before the ScaledObject.
    backlog_first_scenario(
        "flow::consumer_restart",
        settings,
        load_step(),
        vec![
            Step::new(
                "restart: consumer pods killed twice mid-drain",
                secs(7200),
                kill_pods,
            ),
            drained_step(),
            scaled_in_step(),
            verify_step(),
        ],
    )
}

fn kill_pods(ctx: &mut Context) -> StepFuture<'_> {
    ctx.prediction_caveat = Some(
        "the run killed consumer pods mid-drain, the twin's prediction has no kills".to_owned(),
    );
    Box::pin(async move {
        let pods: Api<Pod> = Api::namespaced(ctx.target.client(), &ctx.names.namespace);
        let selector = ctx.pod_selector();
        let sent = messages(ctx);
        let within = ctx.model().timeouts(sent).nodes_grow;
        let clock = ctx.clock();
        let mut details = Vec::new();
        let mut killed: Vec<String> = Vec::new();
        for round in 1..=2 {
            let killed_before = killed.clone();
            // Round 1 waits for at least three pods; round 2 kills the replacements, at least
            // one: as the backlog shrinks the HPA keeps fewer of them, and waiting for three
            // could outlast the drain.
            let wanted = if round == 1 { 3 } else { 1 };
            let running = poll_until(&clock, within, || async {
                let names: Vec<String> = running_consumers(&pods, &selector)
                    .await?
                    .into_iter()
                    // The next round kills the replacements, not pods already killed.
                    .filter(|n| !killed_before.contains(n))
                    .collect();
                if names.len() >= wanted {
                    Ok(names)
                } else {
                    Err(format!("{} consumer pods Running", names.len()))
                }
            })
            .await;
            let names = match running {
                Ok(names) => names,
                Err(last) => {
                    return StepResult::failed(
                        format!("round {round}: no consumer pods to kill: {last}"),
                        details,
                    )
                }
            };
            for name in &names {
                if let Err(e) = pods
                    .delete(name, &DeleteParams::default().grace_period(0))
                    .await
                {
                    return StepResult::failed(format!("deleting pod {name}: {e}"), details);
                }
            }
            // What the recorder saw when the pods went: the kills count only mid-drain.
            let seen = ctx.recorder.as_ref().map(|recorder| recorder.latest());
            let depth = seen.as_ref().and_then(|seen| seen.queue);
            let when = match &seen {
                Some(seen) => format!(
                    "at t={:.1} s on {}, queue depth {} of the {sent} sent",
                    seen.t,
                    clock.name(),
                    depth.map_or_else(
                        || "unknown (the last read failed)".to_owned(),
                        |d| d.to_string()
                    )
                ),
                None => "queue depth not recorded (the recorder is not running)".to_owned(),
            };
            let line = format!(
                "round {round}: killed {} running consumer pods {when}",
                names.len()
            );
            if depth == Some(0) {
                return StepResult::failed(
                    format!("{line}: the queue was already empty, so the kills were not mid-drain"),
                    details,
                );
            }
            details.push(line);
            killed.extend(names);
        }
        StepResult::passed(details)
    })
}
