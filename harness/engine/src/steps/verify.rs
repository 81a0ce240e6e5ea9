//! The verify step: sent = processed once + stranded + poisoned, none lost or duplicated; and the reconciliation other steps build on.

use super::{load::*, secs};
use crate::observe::{consistently, Expect};
use crate::runner::{Context, Footprint, StepFuture, StepResult};
use crate::workload::{ProduceReport, Reconciliation};

/// What the load sent, reconciled with the run's table and poison queue (or the step's failure).
pub async fn reconcile_run(ctx: &Context) -> Result<(ProduceReport, Reconciliation), StepResult> {
    let Some(produced) = ctx.produced.clone() else {
        return Err(StepResult::failed("nothing was produced", []));
    };
    let storage = ctx.target.storage();
    let (table, poison) = (
        storage.table(&ctx.names.table),
        storage.queue(&ctx.names.poison),
    );
    // The team's table (--use-deployed) holds earlier traffic too: only this run's rows count.
    let since = match ctx.footprint {
        Footprint::UseDeployed => ctx.load_started_stamp.clone().unwrap_or_default(),
        _ => String::new(),
    };
    match crate::workload::reconcile_since(&produced, &table, &poison, &since).await {
        Ok(result) => Ok((produced, result)),
        Err(e) => Err(StepResult::failed(format!("reading the table: {e}"), [])),
    }
}

/// Reconciles the table with what was sent: sent = processed once + stranded + poisoned, none
/// lost or duplicated (a stranded tail the settings allow is a warning, never hidden).
pub fn verify(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let mut result = match reconcile_run(ctx).await {
            Ok((_, result)) => result,
            Err(failed) => return failed,
        };
        let tail = stranded_on_queue(ctx, &mut result).await;
        record_counts(ctx, &result);
        let max = ctx.settings.max_replicas as u64;
        let peak = ctx.timeline().iter().map(|o| o.desired).max().unwrap_or(0);
        ctx.property("replicas.peak", peak);
        let counts = result.summary();
        let mut details = vec![
            counts.clone(),
            format!("peak desired replicas {peak} (maxReplicaCount {max})"),
        ];
        if peak > max {
            return StepResult::failed(
                format!("replicas reached {peak}, above maxReplicaCount {max}; {counts}"),
                details,
            );
        }
        if let Some(recorder) = ctx.recorder.as_ref() {
            // The ceiling holds now too (consistently, over a short window of target time).
            let ceiling = Expect::new(format!("desired replicas <= {max}"), move |o| {
                o.desired <= max
            })
            .reading(&[edw_model::report::Read::Deployment]);
            if let Err(failure) = consistently(recorder, &ceiling, secs(5)).await {
                details.extend(failure.lines());
                return StepResult::failed(
                    format!("the replica ceiling was broken; {counts}"),
                    details,
                );
            }
        }
        if !result.accounted() {
            details.push(format!(
                "lost: {:?}",
                result.lost.iter().take(20).collect::<Vec<_>>()
            ));
            return StepResult::failed(
                format!(
                    "{} lost and {} duplicated messages: {counts}",
                    result.lost.len(),
                    result.duplicated.len()
                ),
                details,
            );
        }
        match tail {
            StrandedTail::None => StepResult::passed(details),
            StrandedTail::Allowed(warning) => StepResult::passed_with_warnings(details, [warning]),
            StrandedTail::Refused(why) => StepResult::failed(format!("{why}: {counts}"), details),
        }
    })
}

/// Every count of `result` as the step's properties (`messages.sent`, …, zeros too).
pub fn record_counts(ctx: &mut Context, result: &Reconciliation) {
    for (key, value) in result.properties() {
        ctx.property(key, value);
    }
}

/// How long (target clock) [`stranded_on_queue`] waits for messages a stopped consumer had
/// taken to become visible again: the sample's visibility timeout (60 s) and a poll.
const INVISIBLE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(90);

/// What [`stranded_on_queue`] found about the sent messages without a row that are still on
/// the queue.
pub enum StrandedTail {
    /// None is on the queue.
    None,
    /// A tail the configuration allows (at 0 replicas, at most the model's `max_stranded`):
    /// the text says so, with every count, for a warning.
    Allowed(String),
    /// On the queue, but more than the configuration can strand, or with consumers still
    /// running: why.
    Refused(String),
}

/// Moves the sent messages without a row that are still on the queue (peeked) from `lost` to
/// `stranded`, and says whether that is a stranded tail the configuration allows (at most the
/// model's `max_stranded`, with 0 replicas): they wait for the next traffic, not lost, not
/// processed.
pub async fn stranded_on_queue(ctx: &Context, result: &mut Reconciliation) -> StrandedTail {
    if result.lost.is_empty() {
        return StrandedTail::None;
    }
    let queue = ctx.target.storage().queue(&ctx.names.queue);
    let labels_on = |peeked: &[crate::storage::PeekedMessage]| {
        peeked
            .iter()
            .filter_map(|m| crate::workload::parse_message(&m.text).ok())
            .map(|m| m.msg)
            .collect::<std::collections::BTreeSet<String>>()
    };
    let lost: Vec<String> = result
        .lost
        .iter()
        .map(|i| crate::workload::label(*i))
        .collect();
    // A message a consumer took and did not finish (its pod stopped at the scale-in) is on the
    // queue but invisible until its visibility timeout ends: a peek does not see it, the
    // approximate count does. Until the two agree (or every message without a row is seen), wait
    // for such messages to come back rather than call them lost.
    let settled = super::k8s::poll_until(&ctx.clock(), INVISIBLE_PATIENCE, || async {
        let peeked = queue
            .peek(crate::storage::MAX_BATCH)
            .await
            .map_err(|e| e.to_string())?;
        let on_queue = labels_on(&peeked);
        let count = queue.approximate_count().await.map_err(|e| e.to_string())?;
        if count as usize <= peeked.len()
            || peeked.len() >= usize::from(crate::storage::MAX_BATCH)
            || lost.iter().all(|l| on_queue.contains(l))
        {
            Ok(on_queue)
        } else {
            Err(format!(
                "{count} message(s) on the queue, {} visible",
                peeked.len()
            ))
        }
    })
    .await;
    let on_queue = match settled {
        Ok(on_queue) => on_queue,
        Err(_) => match queue.peek(crate::storage::MAX_BATCH).await {
            Ok(peeked) => labels_on(&peeked),
            Err(_) => return StrandedTail::None,
        },
    };
    result.strand(|i| on_queue.contains(&crate::workload::label(i)));
    let left = result.stranded.len() as u64;
    if left == 0 {
        return StrandedTail::None;
    }
    let allowed = ctx.model().burst(messages(ctx)).max_stranded;
    // The latest sample that read the Deployment: one whose read failed shows 0 replicas
    // without having seen them.
    let replicas = ctx.recorder.as_ref().and_then(|r| {
        r.history()
            .into_iter()
            .rev()
            .find(|o| o.t > 0.0 && o.read(edw_model::report::Read::Deployment))
            .map(|o| o.desired)
    });
    let activation = ctx.settings.activation_queue_length;
    if replicas != Some(0) {
        let replicas = replicas.map_or("unknown".to_owned(), |r| r.to_string());
        return StrandedTail::Refused(format!(
            "{left} message(s) are still on the queue with {replicas} desired replicas: not drained"
        ));
    }
    if left > allowed {
        return StrandedTail::Refused(format!(
            "{left} message(s) are left on the queue at 0 replicas, more than the configuration can strand ({allowed}: minReplicaCount {}, activationQueueLength {activation})",
            ctx.settings.min_replicas
        ));
    }
    StrandedTail::Allowed(format!(
        "stranded tail: {left} of {} sent message(s) were not processed; they are still on the queue at 0 replicas ({left} <= activationQueueLength {activation} with minReplicaCount 0, the configuration's finding `stranded-tail`) and wait for the next traffic ({})",
        result.sent,
        result.summary()
    ))
}
