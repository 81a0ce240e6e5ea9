//! The scenario catalogue beyond the sample's burst: activation window, ceiling, scale to zero,
//! the stranded tail (a finding, reproduced on the twin's virtual clock) and its fix, poison
//! messages and consumer restarts. Every expectation comes from the model of the scenario's
//! own settings, so a team can change queueLength or maxReplicaCount and the checks follow.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use tokio_util::sync::CancellationToken;

pub use super::chaos::chaos;
use super::context::{Context, FlowSettings};
use super::flow::{
    burst, cleanup_objects, cleanup_storage, deploy, drained_step, install_scaled_object, load,
    load_step, messages, nodes_grow_step, nodes_removed_step, poll_until, reconcile_run,
    record_counts, scale_out_step, scaled_in_step, stranded_on_queue, verify_step, wait_modelled,
    StrandedTail, S,
};
use super::runner::{Scenario, Step, StepFuture, StepResult};
use crate::observe::{consistently, Expect};
use crate::workload::{produce, ProducerPlan};

/// Every scenario, in a stable order.
pub fn all() -> Vec<Scenario> {
    vec![
        burst(),
        activation_window(),
        ceiling(),
        scale_to_zero(),
        tail_below_activation(),
        tail_fixed(),
        super::steady::steady_rate(),
        poison(),
        consumer_restart(),
        chaos(2000),
    ]
}

pub(super) fn cleanup() -> Vec<Step> {
    vec![
        Step::new("delete Kubernetes objects", S(600), cleanup_objects),
        Step::new(
            "delete queue, poison queue and table",
            S(120),
            cleanup_storage,
        ),
    ]
}

pub(super) fn setup() -> Vec<Step> {
    vec![
        Step::new("deploy", S(120), deploy),
        Step::new(
            "deploy: ScaledObject and TriggerAuthentication",
            S(300),
            install_scaled_object,
        ),
    ]
}

pub(super) fn scenario(name: &str, settings: FlowSettings, middle: Vec<Step>) -> Scenario {
    let mut steps = setup();
    steps.extend(middle);
    Scenario {
        name: name.to_owned(),
        settings,
        steps,
        cleanup: cleanup(),
    }
}

/// activationQueueLength messages keep the Deployment at 0 (AQ-7 is strict); one more
/// activates it.
pub fn activation_window() -> Scenario {
    let settings = FlowSettings {
        messages: FlowSettings::default().activation_queue_length,
        ..FlowSettings::default()
    };
    scenario(
        "flow::activation",
        settings,
        vec![
            Step::new("load: activationQueueLength messages", S(300), load),
            Step::new(
                "activation: stays at 0 for two polls",
                S(600),
                stays_at_zero,
            ),
            Step::new(
                "load: one more message crosses the threshold",
                S(120),
                one_more,
            ),
            Step::new("activation: scales out", S(7200), activates),
            drained_step(),
            scaled_in_step(),
            verify_step(),
        ],
    )
}

fn stays_at_zero(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let model = ctx.model();
        let n = messages(ctx);
        if model.is_active(n) {
            return StepResult::failed(format!("{n} messages are above activationQueueLength {}: the scenario is misconfigured", model.scaling.activation), []);
        }
        let window = model.scaling.polling * 2;
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running", []);
        };
        let expect = Expect::new(
            format!(
                "desired replicas = 0 with {n} messages <= activationQueueLength {}",
                model.scaling.activation
            ),
            |o| o.desired == 0,
        );
        match consistently(recorder, &expect, window).await {
            Ok(()) => StepResult::passed([format!("held for {} s (two polls)", window.as_secs())]),
            Err(failure) => StepResult::failed(
                format!(
                    "the Deployment scaled out below the activation threshold ({})",
                    expect.description
                ),
                failure.lines(),
            ),
        }
    })
}

fn one_more(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let queue = ctx.target.storage().queue(&ctx.names.queue);
        let next = ctx
            .produced
            .as_ref()
            .and_then(|p| p.sent.last().copied())
            .unwrap_or(0)
            + 1;
        let plan = ProducerPlan {
            first_index: next,
            ..ProducerPlan::burst(1, 1)
        };
        match produce(&queue, &plan, &CancellationToken::new()).await {
            Ok(report) => {
                if let Some(produced) = ctx.produced.as_mut() {
                    produced.sent.extend(report.sent);
                }
                StepResult::passed([format!("message {next} sent")])
            }
            Err(e) => StepResult::failed(crate::error_chain::text(&e), []),
        }
    })
}

fn activates(ctx: &mut Context) -> StepFuture<'_> {
    let model = ctx.model();
    let line = format!(
        "{} > activationQueueLength {}: KEDA activates at its next poll",
        messages(ctx),
        model.scaling.activation
    );
    let within = model.scaling.polling + model.timing.hpa_sync * 2;
    let expect = Expect::new("desired replicas >= 1", |o| o.desired >= 1);
    wait_modelled(ctx, expect, within, line)
}

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
                S(600),
                holds_ceiling,
            ),
            nodes_grow_step(),
            Step::new(
                "ceiling: nodes stop growing once every pod fits",
                S(7200),
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
        );
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
        if let Err(failure) = crate::observe::eventually(recorder, &all_running, within).await {
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
        );
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
                S(7200),
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
    });
    wait_modelled(ctx, expect, within, line)
}

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
        S(60),
        stranded_tail,
    )];
    steps.extend(setup());
    steps.extend([
        Step::new("load: activationQueueLength messages", S(300), load),
        Step::new("tail: stays at 0 for two polls", S(600), stays_at_zero),
        Step::new(
            "tail: the messages wait on the queue at 0 replicas, unread",
            S(120),
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

/// The ScaledObject of `settings`, for the twin's virtual clock.
pub(super) fn scaled_object_json(settings: &FlowSettings) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "aws2az-queue-scaleobj"},
        "spec": {
            "scaleTargetRef": {"name": "aqs-app"},
            "minReplicaCount": settings.min_replicas,
            "maxReplicaCount": settings.max_replicas,
            "pollingInterval": settings.polling_interval,
            "cooldownPeriod": settings.cooldown_period,
            "triggers": [{"type": "azure-queue", "metadata": {
                "queueName": "aws2azmsgs",
                "queueLength": settings.queue_length.to_string(),
                "activationQueueLength": settings.activation_queue_length.to_string(),
            }}],
        },
    })
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
                            crate::error_chain::text(&e)
                        ),
                        [],
                    )
                }
            };
            let left = report.left_on_queue;
            if left > 0 && left <= bound && report.samples.last().is_some_and(|s| s.replicas == 0) {
                ctx.property("finding.stranded_tail.messages", left);
                ctx.findings.push(crate::findings::Finding {
                    id: "stranded-tail".to_owned(),
                    severity: crate::findings::Severity::Risk,
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

/// The fix for the stranded tail: activationQueueLength 0 drains every message.
pub fn tail_fixed() -> Scenario {
    let settings = FlowSettings {
        messages: 1080,
        activation_queue_length: 0,
        ..FlowSettings::default()
    };
    scenario(
        "flow::tail_fixed",
        settings,
        vec![
            load_step(),
            drained_step(),
            scaled_in_step(),
            Step::new(
                "tail: nothing left on the queue at 0 replicas",
                S(600),
                nothing_left,
            ),
            verify_step(),
        ],
    )
}

fn nothing_left(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let window = ctx.model().scaling.polling * 2;
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running", []);
        };
        let expect = Expect::new("queue depth = 0 at 0 replicas", |o| {
            o.queue == Some(0) && o.desired == 0
        });
        match consistently(recorder, &expect, window).await {
            Ok(()) => StepResult::passed([format!(
                "empty queue at 0 replicas for {} s",
                window.as_secs()
            )]),
            Err(failure) => StepResult::failed("messages were left on the queue", failure.lines()),
        }
    })
}

/// Malformed messages end in the poison queue; the rest drain, each once.
pub fn poison() -> Scenario {
    let settings = FlowSettings {
        messages: 200,
        ..FlowSettings::default()
    };
    scenario(
        "flow::poison",
        settings,
        vec![
            Step::new(
                "load: messages that keep failing (taken and abandoned five times)",
                S(300),
                failing_deliveries,
            ),
            load_step(),
            Step::new("load: malformed messages", S(120), malformed),
            drained_step(),
            Step::new(
                "poison: malformed and repeatedly failing messages are in the poison queue",
                S(600),
                poisoned,
            ),
            verify_step(),
        ],
    )
}

const MALFORMED: &[&str] = &[
    "this is not JSON",
    r#"{"msg": "no stamp"}"#,
    r#"{"srcStamp": "no msg"}"#,
    "[1, 2, 3]",
    r#"{"msg": 7, "srcStamp": "x"}"#,
];

/// Well-formed messages whose processing keeps failing: a reader takes each and dies before
/// deleting it, as often as the consumer's dequeue limit allows.
const FAILING: u64 = 3;
/// The consumer's limit (`ConsumerOptions::max_dequeue`): the next delivery goes to poison.
const FAILED_DELIVERIES: u64 = 5;

fn failing_text(i: u64) -> String {
    format!(
        r#"{{"msg": "Repeatedly failing message {i}", "srcStamp": "2026-01-01 00:00:00.000000"}}"#
    )
}

fn failing_deliveries(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let queue = ctx.target.storage().queue(&ctx.names.queue);
        for i in 1..=FAILING {
            if let Err(e) = queue.send(&failing_text(i)).await {
                return StepResult::failed(format!("sending: {e}"), []);
            }
        }
        // Fewer than activationQueueLength messages: no consumer runs yet, the failing reader
        // is alone. Each round takes every message once (hidden for 1 s, never deleted).
        for round in 1..=FAILED_DELIVERIES {
            let mut taken = std::collections::BTreeSet::new();
            // Visibility timeouts are the storage's real time.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            while (taken.len() as u64) < FAILING {
                if tokio::time::Instant::now() > deadline {
                    return StepResult::failed(
                        format!(
                            "round {round}: only {} of {FAILING} abandoned messages came back within 60 s",
                            taken.len()
                        ),
                        [],
                    );
                }
                match queue.receive(32, std::time::Duration::from_secs(1)).await {
                    Ok(messages) => taken.extend(messages.into_iter().map(|m| m.id)),
                    Err(e) => return StepResult::failed(format!("receiving: {e}"), []),
                }
                if (taken.len() as u64) < FAILING {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
        StepResult::passed([format!(
            "{FAILING} well-formed messages taken and abandoned {FAILED_DELIVERIES} times each: their next delivery exceeds the consumer's dequeue limit of {FAILED_DELIVERIES}"
        )])
    })
}

fn malformed(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let queue = ctx.target.storage().queue(&ctx.names.queue);
        for text in MALFORMED {
            if let Err(e) = queue.send(text).await {
                return StepResult::failed(e.to_string(), []);
            }
        }
        StepResult::passed([format!("{} malformed messages sent", MALFORMED.len())])
    })
}

fn poisoned(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let poison = ctx.target.storage().queue(&ctx.names.poison);
        let expected = MALFORMED.len() as u64 + FAILING;
        let clock = ctx.clock();
        let result = poll_until(&clock, S(300), || async {
            match poison.approximate_count().await {
                Ok(n) if n == expected => Ok(n),
                Ok(n) => Err(format!("{n} in the poison queue")),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        match result {
            Ok(n) => {
                // Both paths, by content: each malformed text and each failing message.
                let texts: Vec<String> = match poison.peek(crate::storage::MAX_BATCH).await {
                    Ok(peeked) => peeked.into_iter().map(|m| m.text).collect(),
                    Err(e) => return StepResult::failed(format!("peeking: {e}"), []),
                };
                let missing: Vec<String> = MALFORMED
                    .iter()
                    .map(|t| (*t).to_owned())
                    .chain((1..=FAILING).map(failing_text))
                    .filter(|t| !texts.contains(t))
                    .collect();
                if !missing.is_empty() {
                    return StepResult::failed(
                        format!("{n} messages in the poison queue, but not these: {missing:?}"),
                        [],
                    );
                }
                ctx.property("messages.poisoned_other", n);
                StepResult::passed([
                    format!(
                        "expected {expected} messages in {} ({} malformed, {FAILING} over the dequeue limit); found {n}, each by content",
                        ctx.names.poison,
                        MALFORMED.len()
                    ),
                    format!(
                        "none of them is one of the load's messages: the verify step counts them apart (poisoned 0 of the load's, {n} other messages in the poison queue)"
                    ),
                ])
            }
            Err(last) => StepResult::failed(
                format!("expected {expected} messages in the poison queue: {last}"),
                [],
            ),
        }
    })
}

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
                S(7200),
                kill_pods,
            ),
            drained_step(),
            scaled_in_step(),
            verify_step(),
        ],
    )
}

fn kill_pods(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let pods: Api<Pod> = Api::namespaced(ctx.target.client(), &ctx.names.namespace);
        let selector = ctx.pod_selector();
        let within = ctx.model().timeouts(messages(ctx)).nodes_grow;
        let clock = ctx.clock();
        let mut details = Vec::new();
        let mut killed: Vec<String> = Vec::new();
        for round in 1..=2 {
            let killed_before = killed.clone();
            let running = poll_until(&clock, within, || async {
                let names: Vec<String> = running_consumers(&pods, &selector)
                    .await?
                    .into_iter()
                    // The next round kills the replacements, not pods already killed.
                    .filter(|n| !killed_before.contains(n))
                    .collect();
                if names.len() >= 3 {
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

/// Running, not terminating consumer pods.
/// `selector` picks the run's consumer pods ([`Context::pod_selector`]): in a shared namespace
/// the team's own consumer pods are never counted, let alone killed.
pub(super) async fn running_consumers(
    pods: &Api<Pod>,
    selector: &str,
) -> Result<Vec<String>, String> {
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| e.to_string())?;
    Ok(list
        .items
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect())
}
