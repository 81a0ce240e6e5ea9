//! The steady-rate scenario: once the baseline consumers run, a constant message rate holds the
//! replica count the model gives and every message is processed once. On the twin's virtual
//! clock the same rate is run against the scenario's configuration (it must hold) and against
//! the walkthrough's (minReplicaCount 0), whose replicas swing instead: a finding.

use std::time::Duration;

use edw_engine::findings::{Finding, Severity};
use edw_engine::observe::{consistently, Expect};
use edw_engine::runner::{Context, FlowSettings, Scenario, Step, StepFuture, StepResult};
use edw_engine::steps::*;
use edw_engine::storage::Queue;
use edw_engine::target::TargetClock;
use edw_engine::workload::{message_text, ProduceReport};
use edw_model::report::Read;
use time::OffsetDateTime;
use tokio::time::Instant;

/// Messages per target second: half of what the baseline of 3 consumers serves at the model's
/// 1 msg/s each. The margin is the twin's tolerance: its governed clock lets a real consumer
/// fall to half the model's rate (2 simulated seconds per storage call) before it slows
/// simulated time, so at 2.5 msg/s on a busy machine the backlog grew past 15 and the HPA
/// asked for a 4th replica (seen once in 12 flake runs).
pub const RATE: f64 = 1.5;
/// How long the rate runs (target time).
pub const WINDOW: Duration = Duration::from_secs(240);

/// A constant 1.5 msg/s for 240 s on a baseline of 3 consumers (activationQueueLength 0).
pub fn steady_rate() -> Scenario {
    let settings = FlowSettings {
        messages: (RATE * WINDOW.as_secs_f64()) as u64,
        min_replicas: 3,
        activation_queue_length: 0,
        ..FlowSettings::default()
    };
    scenario(
        "flow::steady_rate",
        settings,
        vec![
            Step::new(
                "steady: the model holds on the twin's virtual clock (and the walkthrough's configuration swings)",
                secs(120),
                on_the_virtual_clock,
            ),
            Step::new(
                "steady: the baseline of minReplicaCount consumers runs",
                secs(7200),
                baseline,
            ),
            Step::new(
                "steady: a constant rate holds the modelled replicas",
                secs(7200),
                hold,
            ),
            drained_step(),
            verify_step(),
        ],
    )
}

/// Replicas from `from` simulated seconds on (samples are taken on change, so the one in force
/// at `from` counts): (lowest, highest, scale-outs to the highest).
fn replica_range(samples: &[edw_twin::engine::Sample], from: f64) -> (u64, u64, usize) {
    let in_force = samples.iter().rposition(|s| s.t <= from).unwrap_or(0);
    let seen: Vec<u64> = samples.iter().skip(in_force).map(|s| s.replicas).collect();
    let lo = seen.iter().copied().min().unwrap_or(0);
    let hi = seen.iter().copied().max().unwrap_or(0);
    let peaks = seen.windows(2).filter(|w| w[0] < hi && w[1] == hi).count();
    (lo, hi, peaks)
}

fn simulate_rate(
    settings: &FlowSettings,
    start: f64,
    end: f64,
) -> Result<edw_twin::simulate::SimulationReport, String> {
    edw_twin::simulate::simulate(&edw_twin::simulate::SimulationInput {
        params: edw_twin::params::TwinParams::default(),
        profile: edw_twin::queue::LoadProfile {
            steps: vec![edw_twin::queue::LoadStep::Rate {
                from: start,
                until: end,
                per_second: RATE,
            }],
        },
        scaled_object: Some(scaled_object_json(settings)),
        duration: end,
    })
    .map_err(|e| {
        format!(
            "the twin could not simulate: {}",
            edw_engine::error_chain::text(&e)
        )
    })
}

fn on_the_virtual_clock(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let model = ctx.model();
        let e = model.steady(RATE);
        let min = model.scaling.min_replicas;
        if !e.keeps_up {
            return StepResult::failed(
                format!(
                    "maxReplicaCount {} cannot keep up with {RATE} msg/s: {} replicas are needed at {} msg/s each",
                    model.scaling.max_replicas, e.needed, model.timing.per_pod_rate
                ),
                [],
            );
        }
        if !e.holds {
            return StepResult::failed(
                format!(
                    "minReplicaCount {min} cannot keep up with {RATE} msg/s ({} needed): queue-length scaling will not settle, so the scenario has nothing to hold",
                    e.needed
                ),
                [],
            );
        }
        // The baseline runs from about 300 s; the rate then runs for 1200 s.
        let (start, end) = (300.0, 1500.0);
        let ours = match simulate_rate(&ctx.settings, start, end) {
            Ok(report) => report,
            Err(e) => return StepResult::failed(e, []),
        };
        let (lo, hi, _) = replica_range(&ours.samples, start);
        let mut details = vec![format!(
            "model: minReplicaCount {min} keeps up with {RATE} msg/s ({} needed at {} msg/s per pod): it holds {} replicas",
            e.needed, model.timing.per_pod_rate, e.replicas
        )];
        if (lo, hi) != (e.replicas, e.replicas) {
            return StepResult::failed(
                format!(
                    "on the twin's virtual clock the replicas went {lo}..{hi} under {RATE} msg/s, not {} throughout",
                    e.replicas
                ),
                details,
            );
        }
        details.push(format!(
            "SIMULATED (virtual clock): {} replicas throughout {}..{} s",
            e.replicas, start, end
        ));
        let walkthrough = FlowSettings {
            min_replicas: FlowSettings::default().min_replicas,
            activation_queue_length: FlowSettings::default().activation_queue_length,
            ..ctx.settings.clone()
        };
        let theirs = match simulate_rate(&walkthrough, 0.0, end) {
            Ok(report) => report,
            Err(e) => return StepResult::failed(e, details),
        };
        // Past the first scale-out and its 300 s stabilization.
        let (lo, hi, peaks) = replica_range(&theirs.samples, 600.0);
        if hi > lo {
            ctx.property("finding.steady_rate_swings.replicas", format!("{lo}..{hi}"));
            details.push(format!(
                "FINDING (warning): with minReplicaCount {} and activationQueueLength {} the same {RATE} msg/s swings between {lo} and {hi} replicas ({peaks} scale-outs in {:.0} s) instead of holding {}",
                walkthrough.min_replicas,
                walkthrough.activation_queue_length,
                end - 600.0,
                e.needed
            ));
            ctx.findings.push(Finding {
                id: "steady-rate-swings".to_owned(),
                severity: Severity::Warning,
                subject: "ScaledObject aws2az-queue-scaleobj: spec.minReplicaCount".to_owned(),
                message: format!(
                    "minReplicaCount {} is below the {} replicas a steady {RATE} msg/s needs: queue-length scaling integrates the rate mismatch and does not settle",
                    walkthrough.min_replicas, e.needed
                ),
                consequence: format!(
                    "reproduced on the twin's virtual clock: the replicas swing between {lo} and {hi} ({peaks} scale-outs in {:.0} s), with nodes provisioned and removed each cycle",
                    end - 600.0
                ),
                fix: format!(
                    "set spec.minReplicaCount to the steady baseline ({}) and let KEDA scale above it for bursts",
                    e.needed
                ),
            });
        } else {
            details.push(format!(
                "the walkthrough's minReplicaCount {} held {lo} replicas at this rate too",
                walkthrough.min_replicas
            ));
        }
        StepResult::passed(details)
    })
}

fn baseline(ctx: &mut Context) -> StepFuture<'_> {
    let model = ctx.model();
    let replicas = model.steady(RATE).replicas;
    let within = model.timeouts(0).nodes_grow * 2;
    let line = format!("minReplicaCount {replicas} consumers, on new nodes");
    let expect = Expect::new(format!("{replicas} consumer pods running"), move |o| {
        o.desired == replicas && o.running == replicas
    })
    .reading(&[Read::Deployment, Read::Pods]);
    wait_modelled(ctx, expect, within, line)
}

/// Sends `count` messages at `rate` per second of `clock` (target time, so a slower twin clock
/// slows the producer too).
async fn send_at_rate(clock: &TargetClock, queue: &Queue, count: u64, rate: f64) -> ProduceReport {
    let (start, began) = (clock.now(), Instant::now());
    let mut report = ProduceReport {
        sent: Vec::new(),
        failed: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for index in 1..=count {
        clock
            .sleep_until(start + Duration::from_secs_f64((index - 1) as f64 / rate))
            .await;
        match queue
            .send(&message_text(index, OffsetDateTime::now_utc()))
            .await
        {
            Ok(_) => report.sent.push(index),
            Err(e) => report
                .failed
                .push((index, edw_engine::secrets::redact(&e.to_string()))),
        }
    }
    report.elapsed = began.elapsed();
    report
}

fn hold(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let replicas = ctx.model().steady(RATE).replicas;
        let count = ctx.settings.messages;
        let clock = ctx.clock();
        let queue = ctx.target.storage().queue(&ctx.names.queue);
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running", []);
        };
        let expect = Expect::new(format!("desired replicas = {replicas}"), move |o| {
            o.desired == replicas
        })
        .reading(&[Read::Deployment]);
        let window = Duration::from_secs_f64(count as f64 / RATE);
        let started = Some(recorder.elapsed());
        let (sent, held) = tokio::join!(
            send_at_rate(&clock, &queue, count, RATE),
            consistently(recorder, &expect, window)
        );
        let failed = sent.failed.len();
        let details = vec![format!(
            "sent {} messages at {RATE} msg/s over {} s (target time; {:.1} s real)",
            sent.sent_count(),
            window.as_secs(),
            sent.elapsed.as_secs_f64()
        )];
        // The rate is this flow's load: its phases and prediction count from it.
        if ctx.load_started_at.is_none() {
            ctx.load_started_at = started;
        }
        ctx.note_sent(started, sent.sent_count());
        ctx.property("steady.rate", RATE);
        ctx.property("steady.replicas", replicas);
        ctx.produced = Some(sent);
        ctx.write_ledger();
        if failed > 0 {
            return StepResult::failed(format!("{failed} messages could not be sent"), details);
        }
        match held {
            Ok(()) => {
                let mut details = details;
                details.push(format!(
                    "desired replicas held at {replicas} for the whole window"
                ));
                StepResult::passed(details)
            }
            Err(failure) => {
                let mut details = details;
                details.extend(failure.lines());
                StepResult::failed(
                    format!("the replicas left {replicas} under a steady {RATE} msg/s"),
                    details,
                )
            }
        }
    })
}
