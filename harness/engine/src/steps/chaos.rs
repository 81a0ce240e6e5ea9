//! Chaos steps: consumer pods killed at random and every NodeClaim of the run's NodePool deleted, each at a fixed fraction of the backlog (see [`threshold`]).

use edw_model::report::Observation;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};

use super::{k8s::*, load::*, secs};
use crate::observe::Recorder;
use crate::runner::{Context, Step, StepFuture, StepResult};

/// Rounds of consumer pod kills.
pub const KILL_ROUNDS: u64 = 3;
/// Chaos events: the kill rounds, then the node removal.
pub const EVENTS: u64 = KILL_ROUNDS + 1;

/// Kills 30 % of the Running consumer pods (at least one) in each of three rounds, round `k`
/// once the queue depth has fallen to [`threshold`]`(sent, k)`.
pub fn kill_random_pods_step() -> Step {
    Step::new(
        "chaos: 30 % of the consumer pods killed at random, at 4/5, 3/5 and 2/5 of the backlog",
        secs(7200),
        kill_random_pods,
    )
}

/// Deletes every NodeClaim of the run's NodePool once the queue depth has fallen to a fifth of
/// the backlog while consumers run, and waits for Karpenter to provision a replacement.
pub fn remove_nodes_step() -> Step {
    Step::new(
        "chaos: every Karpenter NodeClaim deleted at 1/5 of the backlog, and replaced",
        secs(7200),
        remove_nodes,
    )
}

/// The queue depth at or below which chaos event `event` (1-based, of [`EVENTS`]) fires:
/// `(EVENTS + 1 - event) / (EVENTS + 1)` of `backlog`, rounded down. The events split the
/// drain into equal parts, so the last one still leaves a fifth of the backlog to process.
pub fn threshold(backlog: u64, event: u64) -> u64 {
    backlog * (EVENTS + 1 - event.clamp(1, EVENTS)) / (EVENTS + 1)
}

/// "4/5": the fraction of the backlog at which `event` fires.
pub fn fraction(event: u64) -> String {
    format!("{}/{}", EVENTS + 1 - event.clamp(1, EVENTS), EVENTS + 1)
}

/// Whether a backlog of `backlog` messages leaves room for every event: the last must fire
/// above `activation` (activationQueueLength), or KEDA may take the consumers away before it.
pub fn schedule_fits(backlog: u64, activation: u64) -> Result<(), String> {
    let last = threshold(backlog, EVENTS);
    if last > activation {
        Ok(())
    } else {
        Err(format!(
            "{backlog} messages are too few for {EVENTS} chaos events: the last would fire at a queue depth of {last}, not above activationQueueLength {activation} (at or below it KEDA may scale the consumers to 0)"
        ))
    }
}

/// 30 % of `running` pods, at least one (and never more than there are).
pub fn kill_count(running: usize) -> usize {
    (running * 3).div_ceil(10).max(1).min(running)
}

/// A seed from the run's name: random, but the same pods for a re-run of the same run.
pub fn seed(name: &str) -> u64 {
    name.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Moves `count` names picked at random to the front of `names` (partial Fisher-Yates with an
/// xorshift generator advanced in `seed`).
pub fn pick(names: &mut [String], count: usize, seed: &mut u64) {
    for i in 0..count.min(names.len()) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = i + (*seed as usize) % (names.len() - i);
        names.swap(i, j);
    }
}

/// The newest observation, if its queue depth is at most `at`; else what was seen.
pub fn depth_at_most(recorder: &Recorder, at: u64) -> Result<Observation, String> {
    let seen = recorder.latest();
    match seen.queue {
        Some(depth) if depth <= at => Ok(seen),
        Some(depth) => Err(format!("queue depth {depth} (t={:.1} s)", seen.t)),
        None => Err(format!(
            "queue depth unknown (t={:.1} s: the last read failed)",
            seen.t
        )),
    }
}

/// "at t=253.1 s on the twin's governed clock, queue depth 1596 <= 1600 (4/5 of the 2000 sent)"
pub fn when(seen: &Observation, clock: &str, event: u64, sent: u64) -> String {
    format!(
        "at t={:.1} s on {clock}, queue depth {} <= {} ({} of the {sent} sent)",
        seen.t,
        seen.queue.unwrap_or_default(),
        threshold(sent, event),
        fraction(event)
    )
}

/// The cluster's Karpenter NodeClaims (karpenter.sh/v1).
pub fn nodeclaims(ctx: &Context) -> Api<DynamicObject> {
    Api::all_with(
        ctx.target.client(),
        &dynamic("karpenter.sh", "v1", "NodeClaim", "nodeclaims"),
    )
}

/// The run's NodePool's NodeClaims that are not being deleted.
pub async fn live_claims(claims: &Api<DynamicObject>, pool: &str) -> Result<Vec<String>, String> {
    let list = claims
        .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
        .await
        .map_err(|e| e.to_string())?;
    Ok(list
        .items
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| c.metadata.name)
        .collect())
}

/// Kills 30 % of the run's Running consumer pods (at least one) at random, each round once the
/// queue depth falls to its threshold ([`threshold`]).
pub fn kill_random_pods(ctx: &mut Context) -> StepFuture<'_> {
    ctx.prediction_caveat = Some(
        "the run killed consumer pods and deleted its NodeClaims mid-drain, the twin's prediction has no faults".to_owned(),
    );
    Box::pin(async move {
        let sent = messages(ctx);
        if let Err(why) = schedule_fits(sent, ctx.settings.activation_queue_length) {
            return StepResult::failed(why, []);
        }
        let pods: Api<Pod> = Api::namespaced(ctx.target.client(), &ctx.names.namespace);
        let selector = ctx.pod_selector();
        let within = ctx.model().timeouts(sent).drain;
        let clock = ctx.clock();
        let clock_name = clock.name();
        let mut seed = seed(&ctx.names.queue);
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running", []);
        };
        let mut details = Vec::new();
        let mut total = 0usize;
        for round in 1..=KILL_ROUNDS {
            let at = threshold(sent, round);
            let found = poll_until(&clock, within, || async {
                let seen = depth_at_most(recorder, at)?;
                let names = running_consumers(&pods, &selector).await?;
                if names.is_empty() {
                    Err(format!(
                        "queue depth {}, no consumer pod Running",
                        seen.queue.unwrap_or_default()
                    ))
                } else {
                    Ok((seen, names))
                }
            })
            .await;
            let (seen, mut names) = match found {
                Ok(found) => found,
                Err(last) => {
                    return StepResult::failed(
                        format!(
                            "round {round}: expected a queue depth <= {at} ({} of the {sent} sent) with a consumer pod Running within {} s on {clock_name}; last seen: {last}",
                            fraction(round),
                            within.as_secs()
                        ),
                        details,
                    )
                }
            };
            let kill = kill_count(names.len());
            pick(&mut names, kill, &mut seed);
            for name in &names[..kill] {
                if let Err(e) = pods
                    .delete(name, &DeleteParams::default().grace_period(0))
                    .await
                {
                    return StepResult::failed(format!("deleting pod {name}: {e}"), details);
                }
            }
            total += kill;
            details.push(format!(
                "round {round} {}: killed {kill} of {} Running consumer pods",
                when(&seen, clock_name, round, sent),
                names.len()
            ));
        }
        ctx.property("chaos.pods_killed", total);
        StepResult::passed(details)
    })
}

/// Deletes every NodeClaim of the run's NodePool while consumers run on its nodes, once the
/// queue depth falls to the last threshold; Karpenter must replace them (skipped without
/// Karpenter).
pub fn remove_nodes(ctx: &mut Context) -> StepFuture<'_> {
    if !ctx.target.capabilities().karpenter {
        return Box::pin(async {
            StepResult::skipped(
                "the cluster serves no karpenter.sh API: there are no Karpenter nodes to remove",
            )
        });
    }
    Box::pin(async move {
        let claims = nodeclaims(ctx);
        let pods: Api<Pod> = Api::namespaced(ctx.target.client(), &ctx.names.namespace);
        let selector = ctx.pod_selector();
        let pool = ctx.names.nodepool.clone();
        let sent = messages(ctx);
        let model = ctx.model();
        let (drain, grow) = (model.timeouts(sent).drain, model.timeouts(sent).nodes_grow);
        let clock = ctx.clock();
        let clock_name = clock.name();
        let at = threshold(sent, EVENTS);
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running", []);
        };
        let ready = poll_until(&clock, drain, || async {
            let seen = depth_at_most(recorder, at)?;
            let running = running_consumers(&pods, &selector).await?;
            let live = live_claims(&claims, &pool).await?;
            if !running.is_empty() && !live.is_empty() {
                Ok((seen, live, running.len()))
            } else {
                Err(format!(
                    "queue depth {}, {} consumer pods Running, {} NodeClaims",
                    seen.queue.unwrap_or_default(),
                    running.len(),
                    live.len()
                ))
            }
        })
        .await;
        let (seen, doomed, running) = match ready {
            Ok(found) => found,
            Err(last) => {
                return StepResult::failed(
                    format!(
                        "expected a queue depth <= {at} ({} of the {sent} sent) with consumers Running on NodeClaims of NodePool {pool} within {} s on {clock_name}; last seen: {last}",
                        fraction(EVENTS),
                        drain.as_secs()
                    ),
                    [],
                )
            }
        };
        for name in &doomed {
            if let Err(e) = claims.delete(name, &DeleteParams::default()).await {
                return StepResult::failed(format!("deleting NodeClaim {name}: {e}"), []);
            }
        }
        let mut details = vec![format!(
            "{}: deleted {} NodeClaims ({}) while {running} consumer pods ran",
            when(&seen, clock_name, EVENTS, sent),
            doomed.len(),
            doomed.join(", ")
        )];
        let replaced = poll_until(&clock, grow, || async {
            let live = live_claims(&claims, &pool).await?;
            let new: Vec<String> = live.into_iter().filter(|c| !doomed.contains(c)).collect();
            if new.is_empty() {
                Err("no replacement NodeClaim yet".to_owned())
            } else {
                Ok((new, recorder.latest()))
            }
        })
        .await;
        ctx.property("chaos.nodeclaims_deleted", doomed.len());
        match replaced {
            Ok((new, now)) => {
                details.push(format!(
                    "Karpenter provisioned {} replacement(s) by t={:.1} s (queue depth {}): {}",
                    new.len(),
                    now.t,
                    now.queue.map_or("unknown".to_owned(), |q| q.to_string()),
                    new.join(", ")
                ));
                StepResult::passed(details)
            }
            Err(last) => StepResult::failed(
                format!(
                    "Karpenter did not replace the deleted nodes within {} s on {clock_name}: {last}",
                    grow.as_secs()
                ),
                details,
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_split_the_backlog_into_fifths() {
        let at: Vec<u64> = (1..=EVENTS).map(|k| threshold(2000, k)).collect();
        assert_eq!(at, [1600, 1200, 800, 400]);
        let at: Vec<u64> = (1..=EVENTS).map(|k| threshold(10_000, k)).collect();
        assert_eq!(at, [8000, 6000, 4000, 2000]);
        assert_eq!(
            (1..=EVENTS).map(fraction).collect::<Vec<_>>(),
            ["4/5", "3/5", "2/5", "1/5"]
        );
    }

    #[test]
    fn every_event_fires_with_work_left_and_after_the_previous_one() {
        for backlog in [5, 7, 99, 101, 2000, 2001, 10_000, 123_457] {
            let at: Vec<u64> = (1..=EVENTS).map(|k| threshold(backlog, k)).collect();
            assert!(at[0] < backlog, "{backlog}: {at:?}");
            assert!(at.windows(2).all(|w| w[0] > w[1]), "{backlog}: {at:?}");
            assert!(*at.last().unwrap() > 0, "{backlog}: {at:?}");
            // Each event waits for at least a fifth of the backlog (rounded down) to drain.
            assert!(
                at.windows(2).all(|w| w[0] - w[1] >= backlog / 5),
                "{backlog}: {at:?}"
            );
        }
    }

    #[test]
    fn a_backlog_too_small_for_the_schedule_is_refused_with_the_reason() {
        assert!(schedule_fits(2000, 20).is_ok());
        assert!(schedule_fits(105, 20).is_ok());
        let refused = schedule_fits(100, 20).unwrap_err();
        assert!(
            refused.contains("queue depth of 20") && refused.contains("activationQueueLength 20"),
            "{refused}"
        );
        assert!(schedule_fits(4, 0).is_err());
    }

    #[test]
    fn thirty_percent_of_the_running_pods_at_least_one() {
        let counts: Vec<usize> = [1, 2, 3, 4, 7, 10, 11, 15].map(kill_count).to_vec();
        assert_eq!(counts, [1, 1, 1, 2, 3, 3, 4, 5]);
        assert_eq!(kill_count(0), 0);
    }

    #[test]
    fn the_pick_is_random_distinct_and_repeatable_for_a_run() {
        let names: Vec<String> = (0..15).map(|i| format!("pod-{i}")).collect();
        let picked = |run: &str| {
            let (mut names, mut s) = (names.clone(), seed(run));
            let mut rounds = Vec::new();
            for _ in 0..3 {
                pick(&mut names, 5, &mut s);
                rounds.push(names[..5].to_vec());
            }
            rounds
        };
        let a = picked("aws2azmsgs-abc123");
        assert_eq!(a, picked("aws2azmsgs-abc123"));
        assert_ne!(a, picked("aws2azmsgs-xyz789"));
        for round in &a {
            let mut distinct = round.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 5, "{round:?}");
        }
        assert_ne!(a[0], a[1]);
    }
}
