//! Scale steps: replicas reach the modelled peak, the run's NodePool grows, the queue drains, replicas return to minReplicaCount, new nodes go; each waits as long as the model of the run's settings says, on the target's clock.

use std::time::Duration;

use kube::api::{Api, ListParams};

use super::load::*;
use crate::observe::{eventually, Expect};
use crate::runner::{Context, StepFuture, StepResult};
use edw_model::report::Read;

/// A wait whose expectation and time limit come from the model; the report shows both next to
/// what was observed.
pub fn wait_modelled(
    ctx: &mut Context,
    expect: Expect,
    within: Duration,
    model: String,
) -> StepFuture<'_> {
    ctx.property("model", &model);
    ctx.property("model.within_seconds", within.as_secs());
    Box::pin(async move {
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running", []);
        };
        let started = recorder.elapsed();
        // Only what was sampled after the wait began counts: the latest sample can predate the
        // step (a queue read before the last messages of a steady rate were sent) and would
        // pass a drain that has not happened.
        let inner = expect.clone();
        let fresh = Expect::new(expect.description.clone(), move |o| {
            o.t >= started && inner.holds(o)
        })
        .reading(expect.needs());
        match eventually(recorder, &fresh, within).await {
            Ok(seen) => StepResult::passed([
                format!(
                    "expected {} within {} s ({model})",
                    expect.description,
                    within.as_secs()
                ),
                format!(
                    "observed after {:.1} s (t={:.1}): queue {}, desired {}, running {}",
                    (seen.t - started).max(0.0),
                    seen.t,
                    seen.queue.map_or("?".to_owned(), |q| q.to_string()),
                    seen.desired,
                    seen.running
                ),
            ]),
            Err(failure) => {
                let mut details = vec![format!("model: {model}")];
                details.extend(failure.lines());
                StepResult::failed(
                    format!(
                        "expected {} within {} s (target time)",
                        expect.description,
                        within.as_secs()
                    ),
                    details,
                )
            }
        }
    })
}

/// Replicas reach the model's peak for the load, within the model's time.
pub fn scale_out(ctx: &mut Context) -> StepFuture<'_> {
    let model = ctx.model();
    let n = messages(ctx);
    let e = model.burst(n);
    let timeouts = model.timeouts(n);
    let peak = e.peak_replicas;
    let ramp: Vec<String> = e.ramp.iter().map(|r| r.replicas.to_string()).collect();
    let line = format!(
        "peak = min(maxReplicaCount {}, ceil({n} / queueLength {})) = {peak}, ramp {}",
        model.scaling.max_replicas,
        model.scaling.queue_length,
        ramp.join(" -> ")
    );
    let expect = Expect::new(format!("desired replicas = {peak}"), move |o| {
        o.desired == peak
    })
    .reading(&[Read::Deployment]);
    let guard = crate::observe::disagreement(agreement(ctx));
    let late = scale_out_after_the_drain(ctx, peak);
    let wait = wait_modelled(ctx, expect, timeouts.scale_out, line);
    Box::pin(async move {
        tokio::select! {
            result = wait => result,
            mismatch = guard => StepResult::failed(mismatch.message, mismatch.details),
            Some(result) = late => result,
        }
    })
}

/// When a scale step begins after the backlog is gone (`edw scale` run after the drain), what
/// it waits for can no longer be watched: instead of waiting out its time, the step answers
/// from what the cluster recorded while nobody watched (`look_back`). `None` while the first
/// sample of the step is `still_watchable`.
pub fn answered_after_the_drain<W, L, F>(
    ctx: &Context,
    still_watchable: W,
    look_back: L,
) -> impl std::future::Future<Output = Option<StepResult>> + Send + 'static
where
    W: Fn(&edw_model::report::Observation) -> bool + Send + 'static,
    L: FnOnce(edw_model::report::Observation) -> F + Send + 'static,
    F: std::future::Future<Output = StepResult> + Send,
{
    let recorder = ctx.recorder.as_ref().map(|r| (r.subscribe(), r.elapsed()));
    async move {
        let (mut samples, started) = recorder?;
        let first = loop {
            let seen = samples.borrow_and_update().clone();
            if seen.t >= started && seen.queue.is_some() {
                break seen;
            }
            samples.changed().await.ok()?;
        };
        if still_watchable(&first) {
            return std::future::pending().await;
        }
        Some(look_back(first).await)
    }
}

/// How a step's first sample shows that the backlog is gone, if it is: the queue empty, or a
/// stranded tail at 0 replicas that KEDA will not scale out for (at most `max_stranded`, see
/// [`drained_expectation`]; the walkthrough's configuration leaves one whenever a poll lands in
/// the last messages of a drain). `None` while something is left to watch.
pub fn backlog_gone(first: &edw_model::report::Observation, max_stranded: u64) -> Option<String> {
    if !drained_expectation(max_stranded).holds(first) {
        return None;
    }
    // `drained_expectation` holds only for a queue it could read.
    Some(match first.queue.unwrap_or_default() {
        0 => format!(
            "the queue was already empty (0) when this step began (desired {})",
            first.desired
        ),
        left => format!(
            "only a stranded tail of {left} message(s) was left on the queue at 0 replicas when this step began (at most activationQueueLength {max_stranded}: KEDA will not scale out for it; verify counts it)"
        ),
    })
}

type Event = k8s_openapi::api::core::v1::Event;

/// The field selectors of the autoscalers' events a look-back reads: HPA `hpa`'s
/// `SuccessfulRescale` (in the run's namespace) and the NodeClaims' `Registered` (Karpenter's,
/// on the cluster-scoped NodeClaims, so in namespace `default`).
fn rescale_selector(hpa: &str) -> String {
    format!("involvedObject.name={hpa},reason=SuccessfulRescale")
}
const REGISTERED_SELECTOR: &str = "involvedObject.kind=NodeClaim,reason=Registered";

/// The autoscalers' events as they are when the load starts (uid -> count), for
/// [`Context::events_before_load`]; `None` when they cannot be read.
pub async fn events_snapshot(ctx: &Context) -> Option<std::collections::BTreeMap<String, i32>> {
    let client = ctx.target.client();
    let rescales: Api<Event> = Api::namespaced(client.clone(), &ctx.names.namespace);
    let registered: Api<Event> = Api::namespaced(client, "default");
    let mut snapshot = std::collections::BTreeMap::new();
    for (api, selector) in [
        (rescales, rescale_selector(&ctx.names.hpa)),
        (registered, REGISTERED_SELECTOR.to_owned()),
    ] {
        let list = api
            .list(&ListParams::default().fields(&selector))
            .await
            .ok()?;
        for event in list.items {
            if let Some(uid) = event.metadata.uid {
                snapshot.insert(uid, event.count.unwrap_or(1));
            }
        }
    }
    Some(snapshot)
}

/// True when `event` happened since the snapshot `before` was taken: it is new, or it
/// recurred (the API server folds a repeated event into one whose count grows).
pub fn since_load(event: &Event, before: &std::collections::BTreeMap<String, i32>) -> bool {
    match event
        .metadata
        .uid
        .as_deref()
        .and_then(|uid| before.get(uid))
    {
        Some(&count) => event.count.unwrap_or(1) > count,
        None => true,
    }
}

/// What a look-back may count: the events since the load, or, without a snapshot of those
/// before it, every event where the run's own objects are the only subjects (an own
/// namespace and NodePool), and none with `--use-deployed` (the team's HPA and NodePool have
/// a history of their own).
fn events_to_count(
    items: Vec<Event>,
    before: Option<&std::collections::BTreeMap<String, i32>>,
    use_deployed: bool,
) -> Result<Vec<Event>, String> {
    match before {
        Some(before) => Ok(items.into_iter().filter(|e| since_load(e, before)).collect()),
        None if use_deployed => Err(
            "the events that existed when the load started were not recorded, so the team's earlier events cannot be told from this run's (start `edw scale` right after `edw load`)".to_owned(),
        ),
        None => Ok(items),
    }
}

/// The sizes in `SuccessfulRescale` events ("New size: 15; reason: …").
pub fn rescale_sizes_of(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| e.message.as_deref()?.split("New size: ").nth(1))
        .filter_map(|rest| rest.split(';').next()?.trim().parse().ok())
        .collect()
}

/// The sizes in HPA `hpa`'s `SuccessfulRescale` events since the load (see
/// [`events_to_count`]).
pub async fn rescale_sizes(
    events: Api<Event>,
    hpa: &str,
    before: Option<&std::collections::BTreeMap<String, i32>>,
    use_deployed: bool,
) -> Result<Vec<u64>, String> {
    let list = events
        .list(&ListParams::default().fields(&rescale_selector(hpa)))
        .await
        .map_err(|e| format!("the HPA {hpa}'s events could not be read: {e}"))?;
    let counted = events_to_count(list.items, before, use_deployed)?;
    Ok(rescale_sizes_of(&counted))
}

/// The scale-out, seen in the HPA's events once the backlog was gone before the step began
/// (the queue empty, or only a stranded tail left at 0 replicas: [`backlog_gone`]).
pub fn scale_out_after_the_drain(
    ctx: &Context,
    peak: u64,
) -> impl std::future::Future<Output = Option<StepResult>> + Send + 'static {
    let events = Api::namespaced(ctx.target.client(), &ctx.names.namespace);
    let hpa = ctx.names.hpa.clone();
    let max_stranded = ctx.model().burst(messages(ctx)).max_stranded;
    let before = ctx.events_before_load.clone();
    let use_deployed = ctx.footprint == crate::runner::Footprint::UseDeployed;
    answered_after_the_drain(
        ctx,
        move |o| o.desired >= peak || backlog_gone(o, max_stranded).is_none(),
        move |first| async move {
            let began = backlog_gone(&first, max_stranded).unwrap_or_default();
            let sizes = match rescale_sizes(events, &hpa, before.as_ref(), use_deployed).await {
                Ok(sizes) => sizes,
                Err(e) => return StepResult::failed(format!("{began}, and {e}"), []),
            };
            let largest = sizes.iter().copied().max().unwrap_or(0);
            if largest >= peak {
                StepResult::passed([format!(
                    "{began}: the scale-out to {peak} is seen in HPA {hpa}'s SuccessfulRescale events since the load (sizes {sizes:?}), not watched"
                )])
            } else {
                StepResult::failed(
                    format!(
                        "expected desired replicas = {peak}; {began}, and HPA {hpa}'s SuccessfulRescale events since the load show at most {largest}: the scale-out was not seen (start `edw scale` right after `edw load`)"
                    ),
                    sizes.iter().map(|s| format!("SuccessfulRescale New size: {s}")),
                )
            }
        },
    )
}

/// Node growth, seen in the NodeClaims' `Registered` events (Karpenter's, on the cluster-scoped
/// NodeClaims, so in namespace `default`) once the backlog and its pods were gone before the
/// step began.
pub fn nodes_grow_after_the_drain(
    ctx: &Context,
) -> impl std::future::Future<Output = Option<StepResult>> + Send + 'static {
    let events: Api<Event> = Api::namespaced(ctx.target.client(), "default");
    let pool = ctx.names.nodepool.clone();
    let before = ctx.nodes_before_load;
    let max_stranded = ctx.model().burst(messages(ctx)).max_stranded;
    let snapshot = ctx.events_before_load.clone();
    let use_deployed = ctx.footprint == crate::runner::Footprint::UseDeployed;
    answered_after_the_drain(
        ctx,
        move |o| o.desired > 0 || backlog_gone(o, max_stranded).is_none(),
        move |first| async move {
            let began = backlog_gone(&first, max_stranded).unwrap_or_default();
            let listed = match events
                .list(&ListParams::default().fields(REGISTERED_SELECTOR))
                .await
            {
                Ok(list) => list.items,
                Err(e) => {
                    return StepResult::failed(
                        format!("{began}, and the NodeClaims' events could not be read: {e}"),
                        [],
                    )
                }
            };
            let counted = match events_to_count(listed, snapshot.as_ref(), use_deployed) {
                Ok(counted) => counted,
                Err(e) => return StepResult::failed(format!("{began}, and {e}"), []),
            };
            let registered: Vec<String> =
                registered_claims_of(&counted, &pool).into_iter().collect();
            // Since the load: any claim that registered then is growth from the fewest nodes
            // the pool had since (as the watched step counts it). Without a record of the
            // events before the load (the run's own pool only), every claim of the pool that
            // ever registered, against the nodes it had at the load.
            let (grew, counted_as) = match snapshot {
                Some(_) => (!registered.is_empty(), "since the load".to_owned()),
                None => (
                    registered.len() as u64 > before,
                    format!("in all, against the {before} nodes it had at the load"),
                ),
            };
            if grew {
                StepResult::passed([format!(
                    "{began}: {} NodeClaims of NodePool {pool} registered {counted_as} (their Registered events: {}); the growth was not watched",
                    registered.len(),
                    registered.join(", ")
                )])
            } else {
                StepResult::failed(
                    format!(
                        "expected NodePool {pool} to grow; {began}, and {} of its NodeClaims registered {counted_as} (start `edw scale` right after `edw load`)",
                        registered.len()
                    ),
                    registered,
                )
            }
        },
    )
}

/// The NodeClaims of NodePool `pool` (named `<pool>-…`) that `events` are about.
fn registered_claims_of(events: &[Event], pool: &str) -> std::collections::BTreeSet<String> {
    events
        .iter()
        .filter_map(|e| e.involved_object.name.clone())
        .filter(|name| {
            name.strip_prefix(pool)
                .is_some_and(|rest| rest.starts_with('-'))
        })
        .collect()
}

/// What the cluster's autoscaler should agree on with the harness while a backlog waits: the
/// run's ScaledObject and HPA against the queue the harness reads; the cluster gets two polls
/// and the HPA's 15 s sync to see a backlog.
pub fn agreement(ctx: &Context) -> crate::observe::Agreement {
    let polling = Duration::from_secs(ctx.settings.polling_interval);
    crate::observe::Agreement {
        client: ctx.target.client(),
        namespace: ctx.names.namespace.clone(),
        scaled_object: ctx.names.scaled_object.clone(),
        hpa: ctx.names.hpa.clone(),
        queue: ctx.target.storage().queue(&ctx.names.queue),
        activation: ctx.settings.activation_queue_length,
        polling,
        grace: polling * 2 + Duration::from_secs(15),
        clock: ctx.clock(),
    }
}

/// Why the pool's growth cannot be told from the consumers': with `--use-deployed` the run has
/// no load pool of its own, so an in-cluster load's producers ran on the team's pool too.
pub fn growth_not_the_consumers(
    settings: &edw_model::run::FlowSettings,
    footprint: edw_model::run::Footprint,
    pool: &str,
) -> Option<String> {
    (settings.in_cluster_load.is_some() && footprint == edw_model::run::Footprint::UseDeployed)
        .then(|| {
            format!(
                "the in-cluster load's producer pods ran on NodePool {pool} next to the consumers (--use-deployed: the run has no pool of its own), so its growth cannot be told from theirs"
            )
        })
}

/// The run's NodePool gets the nodes the model says the peak needs (skipped without Karpenter,
/// or when the producers of an in-cluster load shared the pool).
pub fn nodes_grow(ctx: &mut Context) -> StepFuture<'_> {
    if !ctx.target.capabilities().karpenter {
        return Box::pin(async {
            StepResult::skipped(
                "the cluster serves no karpenter.sh API: node growth cannot be observed",
            )
        });
    }
    if let Some(why) = growth_not_the_consumers(&ctx.settings, ctx.footprint, &ctx.names.nodepool) {
        return Box::pin(async move { StepResult::skipped(why) });
    }
    let model = ctx.model();
    let n = messages(ctx);
    let e = model.burst(n);
    let line = format!(
        "{} consumer pods need {}..{} nodes ({} pods per 2-vCPU node)",
        e.peak_replicas, e.nodes_min, e.nodes_max, e.pods_per_small_node
    );
    let (pool, before) = (ctx.names.nodepool.clone(), ctx.nodes_before_load);
    // Growth is counted from the fewest nodes the pool had since the load started: Karpenter
    // may still remove the node of the Deployment's first pod (KEDA scales it to 0 before the
    // load) after the count at the load was taken, and the new node then only replaces it.
    let load_at = ctx.load_started_at.unwrap_or(0.0);
    let count = {
        let pool = pool.clone();
        move |o: &edw_model::report::Observation| o.nodes.get(&pool).copied().unwrap_or(0)
    };
    let fewest = ctx
        .timeline()
        .iter()
        .filter(|o| o.t >= load_at && o.read(Read::Nodes))
        .map(&count)
        .min()
        .map_or(before, |seen| seen.min(before));
    let floor = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(fewest));
    let expect = Expect::new(
        format!(
            "nodes of NodePool {pool} > the fewest it had since the load started ({before} at the load)"
        ),
        move |o| {
            let nodes = count(o);
            let fewest = floor
                .fetch_min(nodes, std::sync::atomic::Ordering::SeqCst)
                .min(nodes);
            nodes > fewest
        },
    )
    .reading(&[Read::Nodes]);
    let late = nodes_grow_after_the_drain(ctx);
    let wait = wait_modelled(ctx, expect, model.timeouts(n).nodes_grow, line);
    Box::pin(async move {
        tokio::select! {
            result = wait => result,
            Some(result) = late => result,
        }
    })
}

/// The queue drains to 0 (or to the stranded tail the settings allow, a warning).
pub fn drained(ctx: &mut Context) -> StepFuture<'_> {
    let model = ctx.model();
    let n = messages(ctx);
    let e = model.burst(n);
    if let Some(target) = ctx.settings.drain_target {
        // The configuration is judged against the stated target first: the model's estimate.
        if e.drain_estimate > target {
            let needed = (model.scaling.max_replicas..=1000)
                .find(|max| {
                    let mut m = model.clone();
                    m.scaling.max_replicas = *max;
                    m.burst(n).drain_estimate <= target
                })
                .map_or("no maxReplicaCount up to 1000".to_owned(), |m| {
                    format!("maxReplicaCount {m}")
                });
            let message = format!(
                "maxReplicaCount {} cannot drain {n} messages within the drain target of {} s: the model's estimate is {} s at a peak of {} replicas ({needed} would)",
                model.scaling.max_replicas,
                target.as_secs(),
                e.drain_estimate.as_secs(),
                e.peak_replicas
            );
            return Box::pin(async move { StepResult::failed(message, []) });
        }
        let line = format!(
            "drain target {} s (model estimate {} s)",
            target.as_secs(),
            e.drain_estimate.as_secs()
        );
        return wait_modelled(ctx, drained_expectation(e.max_stranded), target, line);
    }
    let line = format!(
        "drain estimate {} s for {n} messages at {} msg/s per pod",
        e.drain_estimate.as_secs(),
        model.timing.per_pod_rate
    );
    wait_modelled(
        ctx,
        drained_expectation(e.max_stranded),
        model.timeouts(n).drain,
        line,
    )
}

/// The queue drains to 0, or, where the configuration allows a stranded tail (the model's
/// `max_stranded`: minReplicaCount 0 with activationQueueLength above 0), to at most that many
/// messages with every consumer gone: KEDA deactivated at or below the activation threshold,
/// as it does on a real cluster whenever a poll lands in the last messages of a drain. The
/// finding `stranded-tail` names the fix; `verify` checks that the messages left are on the
/// queue, not lost; the `tail` scenarios test both sides.
pub fn drained_expectation(max_stranded: u64) -> Expect {
    if max_stranded == 0 {
        return Expect::new("queue depth = 0", |o| o.queue == Some(0));
    }
    Expect::new(
        format!("queue depth = 0, or a stranded tail of 1 to {max_stranded} messages at 0 replicas (finding stranded-tail)"),
        move |o| match o.queue {
            Some(0) => true,
            // Only a sample that read the Deployment and its pods shows them gone.
            Some(left) => {
                left <= max_stranded
                    && o.read(Read::Deployment)
                    && o.read(Read::Pods)
                    && o.desired == 0
                    && o.running == 0
                    && o.pending == 0
            }
            None => false,
        },
    )
}

/// Replicas return to minReplicaCount after the cooldown.
pub fn scaled_in(ctx: &mut Context) -> StepFuture<'_> {
    let model = ctx.model();
    let n = messages(ctx);
    let e = model.burst(n);
    let line = format!(
        "KEDA scales to minReplicaCount {} within {} s of the drain (cooldown {} s, polling {} s)",
        model.scaling.min_replicas,
        e.scale_to_zero_within.as_secs(),
        model.scaling.cooldown.as_secs(),
        model.scaling.polling.as_secs()
    );
    let min = model.scaling.min_replicas;
    let expect = Expect::new(
        format!("desired replicas = {min} and no more than {min} consumer pods running"),
        move |o| o.desired == min && o.running <= min,
    )
    .reading(&[Read::Deployment, Read::Pods]);
    wait_modelled(ctx, expect, model.timeouts(n).scale_in, line)
}

/// The nodes the load added are removed (skipped without Karpenter).
pub fn nodes_removed(ctx: &mut Context) -> StepFuture<'_> {
    if !ctx.target.capabilities().karpenter {
        return Box::pin(async {
            StepResult::skipped(
                "the cluster serves no karpenter.sh API: node removal cannot be observed",
            )
        });
    }
    if ctx.settings.min_replicas > 0 {
        return Box::pin(async {
            StepResult::skipped("minReplicaCount > 0 keeps consumer pods, and their nodes")
        });
    }
    let model = ctx.model();
    let n = messages(ctx);
    let line = format!(
        "empty nodes go within {} s (disruption loop, 15 s validation, VM deletion)",
        model.timing.node_removal.as_secs()
    );
    let (pool, before) = (ctx.names.nodepool.clone(), ctx.nodes_before_load);
    let expect = Expect::new(
        format!("nodes of NodePool {pool} <= {before} (before the load)"),
        move |o| o.nodes.get(&pool).copied().unwrap_or(0) <= before,
    )
    .reading(&[Read::Nodes]);
    wait_modelled(ctx, expect, model.timeouts(n).nodes_removed, line)
}

#[cfg(test)]
mod lookback_tests {
    use super::{events_to_count, registered_claims_of, rescale_sizes_of, since_load, Event};
    use std::collections::BTreeMap;

    fn event(uid: Option<&str>, count: i32, message: &str, about: &str) -> Event {
        let mut event = Event::default();
        event.metadata.uid = uid.map(str::to_owned);
        event.count = Some(count);
        event.message = Some(message.to_owned());
        event.involved_object.name = Some(about.to_owned());
        event
    }

    /// The team's HPA scaled to 15 last week, and to 10 for this run: only the 10 counts.
    #[test]
    fn only_events_since_the_load_count_and_without_a_record_none_of_the_teams() {
        let before = BTreeMap::from([("old".to_owned(), 2), ("again".to_owned(), 1)]);
        let events = vec![
            event(Some("old"), 2, "New size: 15; reason: above target", "hpa"),
            event(
                Some("again"),
                2,
                "New size: 10; reason: above target",
                "hpa",
            ),
            event(Some("new"), 1, "New size: 5; reason: above target", "hpa"),
            event(None, 1, "New size: 3; reason: above target", "hpa"),
        ];
        assert!(!since_load(&events[0], &before));
        assert!(since_load(&events[1], &before), "it recurred since");
        assert!(since_load(&events[2], &before) && since_load(&events[3], &before));
        let counted = events_to_count(events.clone(), Some(&before), true).unwrap();
        assert_eq!(rescale_sizes_of(&counted), [10, 5, 3]);
        // Without a record: the run's own HPA has no history, the team's has.
        assert_eq!(
            rescale_sizes_of(&events_to_count(events.clone(), None, false).unwrap()),
            [15, 10, 5, 3]
        );
        let refused = events_to_count(events, None, true).unwrap_err();
        assert!(
            refused.contains("cannot be told from this run's"),
            "{refused}"
        );
    }

    #[test]
    fn registered_claims_are_those_of_the_runs_pool() {
        let events = vec![
            event(Some("a"), 1, "Status condition transitioned", "edw-abc-x1"),
            event(Some("b"), 1, "Status condition transitioned", "edw-abcd-x2"),
            event(Some("c"), 1, "Status condition transitioned", "default-x3"),
        ];
        assert_eq!(
            registered_claims_of(&events, "edw-abc")
                .into_iter()
                .collect::<Vec<_>>(),
            ["edw-abc-x1"]
        );
    }
}

#[cfg(test)]
mod drained_tests {
    use super::drained_expectation;
    use edw_model::report::{Observation, Read};

    fn seen(queue: Option<u64>, desired: u64, running: u64) -> Observation {
        Observation {
            queue,
            desired,
            running,
            ..Observation::default()
        }
    }

    #[test]
    fn a_configuration_that_cannot_strand_must_drain_to_zero() {
        let strict = drained_expectation(0);
        assert!(strict.holds(&seen(Some(0), 0, 0)));
        assert!(!strict.holds(&seen(Some(3), 0, 0)));
        assert_eq!(strict.description, "queue depth = 0");
    }

    #[test]
    fn a_stranded_tail_is_accepted_only_within_the_model_and_with_no_consumer() {
        let sample = drained_expectation(20);
        assert!(sample.description.contains("stranded-tail"), "{sample:?}");
        assert!(sample.holds(&seen(Some(0), 15, 15)));
        assert!(sample.holds(&seen(Some(3), 0, 0)));
        assert!(sample.holds(&seen(Some(20), 0, 0)));
        // More than the activation threshold: KEDA would still be active.
        assert!(!sample.holds(&seen(Some(21), 0, 0)));
        // Consumers are still there: the drain is still going.
        assert!(!sample.holds(&seen(Some(5), 1, 1)));
        assert!(!sample.holds(&seen(Some(5), 0, 1)));
        // An unread queue says nothing.
        assert!(!sample.holds(&seen(None, 0, 0)));
        // Nor does a Deployment or pod list that could not be read: its zeros are defaults.
        for unread in [Read::Deployment, Read::Pods] {
            let blind = Observation {
                unread: vec![unread],
                ..seen(Some(3), 0, 0)
            };
            assert!(!sample.holds(&blind), "{unread:?}");
            assert_eq!(super::backlog_gone(&blind, 20), None, "{unread:?}");
            // An empty queue needs no workload read.
            assert!(sample.holds(&Observation {
                queue: Some(0),
                ..blind
            }));
        }
    }
}

#[cfg(test)]
mod growth_tests {
    use super::growth_not_the_consumers;
    use edw_model::run::{FlowSettings, Footprint, InClusterLoad};

    #[test]
    fn growth_is_skipped_only_when_the_producers_shared_the_teams_pool() {
        let in_cluster = FlowSettings {
            in_cluster_load: Some(InClusterLoad {
                parallelism: 3,
                rate: None,
            }),
            ..FlowSettings::default()
        };
        let why = growth_not_the_consumers(&in_cluster, Footprint::UseDeployed, "default").unwrap();
        assert!(
            why.contains("ran on NodePool default next to the consumers"),
            "{why}"
        );
        // The run's own pool: the producers had a load pool of their own.
        assert!(growth_not_the_consumers(&in_cluster, Footprint::OwnNamespace, "edw-x").is_none());
        assert!(growth_not_the_consumers(
            &FlowSettings::default(),
            Footprint::UseDeployed,
            "default"
        )
        .is_none());
    }
}

#[cfg(test)]
mod backlog_tests {
    use super::*;
    use edw_model::report::Observation;

    fn seen(queue: u64, desired: u64, running: u64) -> Observation {
        Observation {
            queue: Some(queue),
            desired,
            running,
            ..Default::default()
        }
    }

    #[test]
    fn the_backlog_is_gone_when_the_queue_is_empty_or_only_a_stranded_tail_waits_at_zero_replicas()
    {
        let empty = backlog_gone(&seen(0, 3, 3), 20).unwrap();
        assert!(
            empty.contains("already empty (0)") && empty.contains("desired 3"),
            "{empty}"
        );
        let tail = backlog_gone(&seen(1, 0, 0), 20).unwrap();
        assert!(tail.contains("stranded tail of 1 message(s)"), "{tail}");
        // Still watchable: consumers still read the tail, the count is above activation, the
        // queue could not be read, or the configuration strands nothing.
        assert_eq!(backlog_gone(&seen(1, 1, 1), 20), None);
        assert_eq!(backlog_gone(&seen(1, 0, 1), 20), None);
        assert_eq!(backlog_gone(&seen(21, 0, 0), 20), None);
        assert_eq!(backlog_gone(&seen(1, 0, 0), 0), None);
        let unread = Observation {
            queue: None,
            ..Default::default()
        };
        assert_eq!(backlog_gone(&unread, 20), None);
    }
}
