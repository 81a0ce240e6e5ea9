//! Consumer restarts: consumer pods killed mid-drain; every message is still processed once.

use edw_engine::runner::{Context, FlowSettings, Scenario, Step, StepFuture, StepResult};
use edw_engine::steps::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};

/// Consumer pods killed mid-drain: every message is still processed once (or, as a warning,
/// left in the configuration's stranded tail), none lost or duplicated.
pub fn consumer_restart() -> Scenario {
    let settings = FlowSettings {
        messages: 500,
        ..FlowSettings::default()
    };
    scenario(
        "flow::consumer_restart",
        settings,
        vec![
            load_step(),
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
        let within = ctx.model().timeouts(messages(ctx)).nodes_grow;
        let clock = ctx.clock();
        let mut details = Vec::new();
        let mut killed: Vec<String> = Vec::new();
        for round in 1..=2 {
            let killed_before = killed.clone();
            // Round 1 waits for at least three pods; round 2 kills the replacements, at least
            // one: as the backlog shrinks the HPA keeps fewer of them, and waiting for three
            // could outlast the drain (a slow in-cluster load left 300 messages' drain almost
            // done when this step began: round 2 then found none).
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
            details.push(format!(
                "round {round}: killed {} running consumer pods",
                names.len()
            ));
            killed.extend(names);
        }
        StepResult::passed(details)
    })
}
