//! The ceiling: a burst larger than maxReplicaCount serves holds the replicas at the ceiling and stops node growth.

use edw_engine::observe::{consistently, Expect};
use edw_engine::runner::{Context, FlowSettings, Scenario, Step, StepFuture, StepResult};
use edw_engine::steps::*;
use edw_model::report::{Observation, Read};

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
        let load_at = ctx.load_started_at.unwrap_or(0.0);
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running", []);
        };
        let all_running = Expect::new(format!("{peak} consumer pods Running"), move |o| {
            o.running >= peak
        })
        .reading(&[Read::Pods]);
        // Every pod may have run (and the drain ended) before this step began, on a slow
        // machine or a fast clock: what the recorder saw since the load counts.
        let seen = recorder.history();
        let all_ran_at = match first_since(&seen, load_at, &all_running) {
            Some(t) => t,
            None => {
                let within = model.timeouts(messages(ctx)).nodes_grow;
                if let Err(failure) =
                    edw_engine::observe::eventually(recorder, &all_running, within).await
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
                recorder.latest().t
            }
        };
        let pool = ctx.names.nodepool.clone();
        let bounded = Expect::new(
            format!("nodes of NodePool {pool} <= {most} (the model's most for {peak} pods)"),
            move |o| o.nodes.get(&pool).copied().unwrap_or(0) <= most,
        )
        .reading(&[Read::Nodes]);
        let grew = |seen: Vec<String>| {
            StepResult::failed(
                format!(
                    "the NodePool grew past what the pods need: expected {}",
                    bounded.description
                ),
                seen,
            )
        };
        let window = model.scaling.polling * 2;
        // The window from when every pod ran: what was recorded of it, then the rest watched.
        let recorded = recorder.history();
        if let Some(broke) = recorded
            .iter()
            .filter(|o| o.t >= all_ran_at && bounded.can_judge(o))
            .find(|o| !bounded.holds(o))
        {
            return grew(vec![format!(
                "seen at t={:.1}s: {:?}",
                broke.t, broke.nodes
            )]);
        }
        let covered = recorder.elapsed() - all_ran_at;
        let rest = window.saturating_sub(std::time::Duration::from_secs_f64(covered.max(0.0)));
        if !rest.is_zero() {
            if let Err(failure) = consistently(recorder, &bounded, rest).await {
                return grew(failure.lines());
            }
        }
        StepResult::passed([format!(
            "all {peak} pods Running at t={all_ran_at:.1}s; nodes held at most {most} from then for {} s ({:.0} s of it recorded before this step, the simulated clock of the timeline)",
            window.as_secs(),
            covered.clamp(0.0, window.as_secs_f64())
        )])
    })
}

/// The time of the first sample at or after `since` that `expect` can judge and that holds.
fn first_since(history: &[Observation], since: f64, expect: &Expect) -> Option<f64> {
    history
        .iter()
        .filter(|o| o.t >= since)
        .find(|o| expect.holds(o))
        .map(|o| o.t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, running: u64, unread: Vec<Read>) -> Observation {
        Observation {
            t,
            running,
            unread,
            ..Observation::default()
        }
    }

    #[test]
    fn every_pod_running_counts_from_the_load_and_only_where_the_pods_were_read() {
        let all =
            Expect::new("15 consumer pods Running", |o| o.running >= 15).reading(&[Read::Pods]);
        let history = vec![
            sample(5.0, 15, vec![]),           // before the load: not this run's peak
            sample(20.0, 0, vec![Read::Pods]), // could not read the pods: no answer
            sample(30.0, 12, vec![]),
            sample(40.0, 15, vec![]), // the first since the load
            sample(50.0, 0, vec![]),
        ];
        assert_eq!(first_since(&history, 10.0, &all), Some(40.0));
        assert_eq!(first_since(&history, 45.0, &all), None, "gone by then");
        let unread_peak = vec![sample(20.0, 15, vec![Read::Pods])];
        assert_eq!(
            first_since(&unread_peak, 0.0, &all),
            None,
            "a sample that could not read the pods is no peak"
        );
    }
}
