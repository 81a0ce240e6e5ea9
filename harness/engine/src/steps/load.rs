//! Load steps: the producer's burst (refused when the model says it never activates KEDA) and the count of messages a run sent.

use tokio_util::sync::CancellationToken;

use crate::runner::{Context, FlowSettings, StepFuture, StepResult};
use crate::workload::{produce, ProducerPlan};

/// A burst that the model says can never activate KEDA (at or below activationQueueLength
/// with minReplicaCount 0): a scenario that expects a scale-out cannot test anything with it.
/// `edw run` and `edw load` refuse it before anything is deployed (exit 2); the window itself
/// is what `flow::activation` tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--messages {messages} cannot start a scale-out: with minReplicaCount 0, KEDA activates only above activationQueueLength {activation} (the model's AQ-7 rule), so {messages} message(s) would wait on the queue at 0 replicas and nothing would be processed; use --messages {minimum} or more (activationQueueLength + 1); the scenario flow::activation tests this window"
)]
pub struct LoadCannotActivate {
    pub messages: u64,
    pub activation: u64,
    /// The smallest load that activates: activationQueueLength + 1.
    pub minimum: u64,
}

/// Refuses (see [`LoadCannotActivate`]) a load of `settings.messages` that the model of
/// `settings` says is never read.
pub fn check_load_activates(settings: &FlowSettings) -> Result<(), LoadCannotActivate> {
    let model = edw_model::Model::new(
        edw_model::ScalingSettings {
            min_replicas: settings.min_replicas.max(0) as u64,
            activation: settings.activation_queue_length,
            ..edw_model::ScalingSettings::default()
        },
        edw_model::NodePoolSettings::default(),
        edw_model::TargetTiming::default(),
    );
    if model.never_read(settings.messages) {
        return Err(LoadCannotActivate {
            messages: settings.messages,
            activation: model.scaling.activation,
            minimum: model.scaling.activation + 1,
        });
    }
    Ok(())
}

/// The burst's load, refused (before a message is sent) when it cannot activate.
pub fn burst_load(ctx: &mut Context) -> StepFuture<'_> {
    match check_load_activates(&ctx.settings) {
        Ok(()) => load(ctx),
        Err(refused) => Box::pin(async move { StepResult::failed(refused.to_string(), []) }),
    }
}

/// Sends the settings' `messages` with the producer (its concurrency from the settings) and
/// records what was sent and when the load started.
pub fn load(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let pool = ctx.names.nodepool.clone();
        // Which autoscaler events are older than this load (a look-back counts only newer),
        // read before the load's start is stamped: its API calls must not delay the phases.
        ctx.events_before_load = super::scale::events_snapshot(ctx).await;
        let before = match ctx.recorder.as_ref() {
            Some(recorder) => {
                ctx.load_started_at = Some(recorder.elapsed());
                recorder.latest()
            }
            None => crate::observe::sample_once(&ctx.target.client(), &ctx.subject()).await,
        };
        // From the latest sample that read the nodes (a failed read shows none).
        let read_nodes = if before.read(edw_model::report::Read::Nodes) {
            Some(before)
        } else {
            ctx.timeline()
                .into_iter()
                .rev()
                .find(|o| o.read(edw_model::report::Read::Nodes))
        };
        ctx.nodes_before_load = read_nodes
            .and_then(|o| o.nodes.get(&pool).copied())
            .unwrap_or(0);
        ctx.load_started_stamp = Some(crate::workload::format_stamp(
            time::OffsetDateTime::now_utc(),
        ));
        if let Some(in_cluster) = ctx.settings.in_cluster_load.clone() {
            return load_from_cluster(ctx, &in_cluster).await;
        }
        let queue = ctx.target.storage().queue(&ctx.names.queue);
        let plan = ProducerPlan::burst(ctx.settings.messages, ctx.settings.producer_concurrency);
        let result = produce(&queue, &plan, &CancellationToken::new()).await;
        if let Ok(report) = &result {
            ctx.note_sent(ctx.load_started_at, report.sent_count());
        }
        match result {
            Ok(report) => sent_result(ctx, report, None, Vec::new()),
            Err(e) => StepResult::failed(crate::error_chain::text(&e), []),
        }
    })
}

/// The step's outcome for what a load sent: passed only when every message was sent; a
/// failure says how many were (never that all were).
fn sent_result(
    ctx: &mut Context,
    report: crate::workload::ProduceReport,
    problem: Option<String>,
    mut details: Vec<String>,
) -> StepResult {
    ctx.property("messages.sent", report.sent_count());
    ctx.property("producer.per_second", format!("{:.0}", report.rate()));
    let line = format!(
        "sent {} messages in {:.1} s ({:.0}/s, real time)",
        report.sent_count(),
        report.elapsed.as_secs_f64(),
        report.rate()
    );
    let not_sent = report.failed.len();
    let sent = report.sent_count();
    for (number, why) in report.failed.iter().take(5) {
        details.push(format!("message {number} not sent: {why}"));
    }
    ctx.produced = Some(report);
    ctx.write_ledger();
    let all_sent = sent == ctx.settings.messages;
    match problem {
        None if not_sent == 0 && all_sent => {
            details.insert(0, line);
            StepResult::passed(details)
        }
        problem => StepResult::failed(
            format!(
                "only {sent} of {} messages were sent ({not_sent} not sent){}",
                ctx.settings.messages,
                problem.map(|p| format!(": {p}")).unwrap_or_default()
            ),
            details,
        ),
    }
}

/// The load from inside the cluster: an Indexed Job of `load.parallelism` producer pods.
async fn load_from_cluster(ctx: &mut Context, load: &edw_model::run::InClusterLoad) -> StepResult {
    let count = ctx.settings.messages;
    let first = ctx
        .produced
        .as_ref()
        .and_then(|p| p.sent.last())
        .map_or(1, |last| last + 1);
    // Pods start (a node may come first) and send their slices: the senders' time plus the
    // time a node takes, generously (a pod sends about 20 messages/s to Azure at least).
    let sending = load
        .rate
        .map_or(count as f64 / (20.0 * load.parallelism as f64), |rate| {
            count as f64 / rate
        });
    // Within the step's own 600 s, leaving time to read the pods' logs and delete the Job.
    let within = std::time::Duration::from_secs_f64((360.0 + 2.0 * sending).min(420.0));
    match super::load_job::send_from_cluster(ctx, load, count, first, within).await {
        Ok((outcome, command)) => {
            let report = outcome.as_produce_report(&command);
            match outcome.sending_window {
                // The load started when its first producer ran (the Job's scheduling and pod
                // starts came before): the phases and the prediction count from there.
                Some((started, finished)) => {
                    ctx.load_started_at = Some(started);
                    ctx.sent_loads.push(crate::predict::SentLoad {
                        started,
                        finished,
                        count: report.sent_count(),
                    });
                }
                None => ctx.note_sent(ctx.load_started_at, report.sent_count()),
            }
            ctx.property("load.in_cluster.pods", load.parallelism);
            // Each pod's own rate, summed: what the pods sent together when they overlap
            // (the span from the first send to the last also counts pods waiting for a node).
            let pod_rates: f64 = outcome
                .reports
                .values()
                .map(|r| r.sent_count as f64 / r.elapsed_seconds.max(1e-6))
                .sum();
            ctx.property(
                "load.in_cluster.sum_of_pod_rates",
                format!("{pod_rates:.0}"),
            );
            let mut details = vec![format!(
                "in-cluster load: {} pods each sent their slice of {count} messages from {first}",
                load.parallelism
            )];
            details.extend(outcome.details.iter().cloned());
            sent_result(ctx, report, outcome.problem, details)
        }
        Err(error) => StepResult::failed(
            format!("the in-cluster load did not start; no message was sent: {error}"),
            [],
        ),
    }
}

/// Messages the load sent (or the configured count, before the load).
pub fn messages(ctx: &Context) -> u64 {
    ctx.produced
        .as_ref()
        .map_or(ctx.settings.messages, |p| p.sent_count())
}

#[cfg(test)]
mod activation_refusal_tests {
    use super::{check_load_activates, FlowSettings};

    #[test]
    fn a_load_at_or_below_the_activation_threshold_at_min_zero_is_refused() {
        let settings = |messages, min_replicas, activation_queue_length| FlowSettings {
            messages,
            min_replicas,
            activation_queue_length,
            ..FlowSettings::default()
        };
        let refused = check_load_activates(&settings(10, 0, 20)).unwrap_err();
        assert_eq!(
            (refused.messages, refused.activation, refused.minimum),
            (10, 20, 21)
        );
        let text = refused.to_string();
        for part in [
            "--messages 10",
            "minReplicaCount 0",
            "activationQueueLength 20",
            "--messages 21 or more",
            "flow::activation",
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        assert!(
            check_load_activates(&settings(20, 0, 20)).is_err(),
            "AQ-7 is strict"
        );
        assert!(check_load_activates(&settings(21, 0, 20)).is_ok());
        // A floor of consumers reads any load; without an activation threshold 1 activates.
        assert!(check_load_activates(&settings(10, 1, 20)).is_ok());
        assert!(check_load_activates(&settings(1, 0, 0)).is_ok());
    }
}
