//! Predicted vs observed on every run: the twin runs the run's ScaledObject settings, the
//! sample's NodePool and Deployment requests and the load the run sent on its virtual clock,
//! and each phase is set beside the model's expectation and what the run observed
//! ([`edw_model::prediction`]). A phase beyond the stated tolerance is a finding; [`for_run`]
//! assembles it from a finished run's context.

use std::time::Duration;

use edw_model::finding::{Finding, Severity};
use edw_model::phases::{self, PhasePoint};
use edw_model::prediction::{compare, Prediction, Tolerance, Verdict};
use edw_model::report::Phase;
use edw_model::Model;
use edw_twin::params::TwinParams;
use edw_twin::queue::{LoadProfile, LoadStep};
use edw_twin::sample::{scaled_object, ScalingConfig};
use edw_twin::simulate::{simulate_with, Prelude, SimulationInput, PHASE_CLOCK};

use crate::runner::{Context, FlowSettings};
use edw_model::report::Observation;

/// The share of the prediction a phase may differ by (the absolute floor is one polling
/// interval: see [`Tolerance`]).
pub const RELATIVE_TOLERANCE: f64 = 0.25;

/// The longest the twin simulates (virtual seconds): a run observed longer is compared up to it.
const MAX_SIMULATED: f64 = 6.0 * 3600.0;

/// Messages a run sent in one go, on the timeline's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SentLoad {
    /// When the first message went (timeline seconds).
    pub started: f64,
    /// When the last one had gone.
    pub finished: f64,
    pub count: u64,
}

/// Everything the prediction needs from a run.
#[derive(Debug, Clone)]
pub struct PredictionInput {
    pub settings: FlowSettings,
    /// The model of the run's configuration on its target (the "model" column).
    pub model: Model,
    /// What the run sent, in order.
    pub sent: Vec<SentLoad>,
    /// When the load started, on the timeline's clock.
    pub load_started_at: f64,
    /// When the run applied its ScaledObject (KEDA polls from then on), if it did.
    pub scaled_object_applied_at: Option<f64>,
    /// The consumer Deployment's replicas as the run saw them change before the load
    /// (`(t, replicas)`, timeline seconds): the twin replays those before the ScaledObject.
    pub replicas_before: Vec<(f64, i64)>,
    /// The phases the run observed and until when it observed (seconds after the load start).
    pub observed: Vec<Phase>,
    pub observed_until: f64,
    pub observed_clock: String,
    /// The twin's parameters and where they came from.
    pub params: TwinParams,
    pub params_source: String,
    /// False when the target has no Karpenter (capacity is there): the twin's node delays
    /// are then zero and the node phases are not compared.
    pub karpenter: bool,
    /// Why the run is expected to differ (faults it injected).
    pub caveat: Option<String>,
}

/// Why the twin could not predict a run.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("the twin could not simulate the run's configuration")]
    Simulation(#[source] Box<edw_twin::simulate::SimulationError>),
}

/// When the twin creates the ScaledObject (timeline seconds; KEDA polls from then): when the
/// run applied it, else half a polling interval before the load (the mean wait for a poll: the
/// run's poll times are unknown). With why, for the report.
pub fn scaled_object_at(
    scaled_object_applied_at: Option<f64>,
    load_started_at: f64,
    polling: f64,
) -> (f64, String) {
    match scaled_object_applied_at {
        Some(applied) => (
            applied,
            format!(
                "the ScaledObject created {:.1} s {} the load start, as the run applied it",
                (load_started_at - applied).abs(),
                if applied <= load_started_at { "before" } else { "after" }
            ),
        ),
        None => (
            (load_started_at - polling / 2.0).max(0.0),
            "the ScaledObject created half a polling interval before the load start (the mean wait for a poll: the run did not apply it)".to_owned(),
        ),
    }
}

/// The load the twin is given, on the timeline's clock: each send as the run made it; a send
/// under a second is a burst, a longer one a rate.
pub fn load_profile(sent: &[SentLoad]) -> LoadProfile {
    LoadProfile {
        steps: sent
            .iter()
            .filter(|s| s.count > 0)
            .map(|s| {
                let lasted = s.finished - s.started;
                if lasted < 1.0 {
                    LoadStep::Burst {
                        at: s.started,
                        count: s.count,
                    }
                } else {
                    LoadStep::Rate {
                        from: s.started,
                        until: s.finished,
                        per_second: s.count as f64 / lasted,
                    }
                }
            })
            .collect(),
    }
}

fn describe_load(profile: &LoadProfile, load: f64, prelude: &str) -> String {
    let steps: Vec<String> = profile
        .steps
        .iter()
        .map(|s| match s {
            LoadStep::Burst { at, count } => {
                format!("{count} messages at once at {:.1} s", at - load)
            }
            LoadStep::Rate {
                from,
                until,
                per_second,
            } => format!(
                "{:.0} messages at {per_second:.2}/s from {:.1} s to {:.1} s",
                (until - from) * per_second,
                from - load,
                until - load
            ),
        })
        .collect();
    format!(
        "{} (seconds after the load start); before it, {prelude}",
        steps.join(", ")
    )
}

/// The model's expectation for a burst of the run's messages (upper estimates: activation
/// waits a whole poll).
fn model_phases(model: &Model, messages: u64, karpenter: bool) -> Vec<Phase> {
    let e = model.burst(messages);
    let secs = |d: Duration| Some((d.as_secs_f64() * 10.0).round() / 10.0);
    let activates = e.activates && messages > 0;
    let drained = activates.then_some(e.drain_estimate);
    let to_zero = drained.map(|d| d + e.scale_to_zero_within);
    let at_max =
        (activates && e.peak_replicas >= model.scaling.max_replicas).then_some(e.peak_after);
    let node = (activates && karpenter).then(|| {
        e.first_capacity_after
            .saturating_sub(model.timing.pod_start)
    });
    let consolidated = to_zero
        .filter(|_| karpenter)
        .map(|z| z + model.timing.node_removal);
    [
        (
            phases::FIRST_SCALE_OUT,
            activates.then_some(model.scaling.polling),
        ),
        (phases::MAX_REPLICAS, at_max),
        (phases::FIRST_NEW_NODE, node),
        (phases::DRAINED, drained),
        (phases::SCALED_TO_ZERO, to_zero),
        (phases::NODES_CONSOLIDATED, consolidated),
    ]
    .into_iter()
    .map(|(name, d)| Phase {
        name: name.to_owned(),
        after_load: d.and_then(secs),
    })
    .collect()
}

/// Runs the twin on the run's configuration, history before the load, and load, and compares.
pub fn predict(input: &PredictionInput) -> Result<Prediction, PredictError> {
    let s = &input.settings;
    let polling = s.polling_interval.max(1) as f64;
    let load = input.load_started_at;
    let (so_at, so_why) = scaled_object_at(input.scaled_object_applied_at, load, polling);
    let profile = load_profile(&input.sent);
    let mut params = input.params.clone();
    if !input.karpenter {
        // Capacity is there already: pods start without waiting for a node.
        params.launch_delay = Duration::ZERO;
        params.register_delay = Duration::ZERO;
        params.initialize_delay = Duration::ZERO;
    }
    let scaling = ScalingConfig {
        min: s.min_replicas,
        max: s.max_replicas,
        polling: s.polling_interval as i64,
        cooldown: s.cooldown_period as i64,
        queue_length: s.queue_length as i64,
        activation: s.activation_queue_length as i64,
        behavior: None,
    };
    // The run's replica settings before its ScaledObject (the validation pod): the twin
    // starts from where the run stood (a node the validation brought, maybe consolidating).
    // Without them, the Deployment waits at 0 replicas (the sample's manifest asks for 1).
    let replicas_before = if input.replicas_before.is_empty() {
        vec![(0.0, 0)]
    } else {
        input.replicas_before.clone()
    };
    let prelude = Prelude {
        replicas_set: replicas_before
            .into_iter()
            .filter(|(t, _)| *t < so_at)
            .collect(),
        scaled_object_at: so_at,
    };
    let duration = (load + input.observed_until * 1.5 + 300.0).min(load + MAX_SIMULATED);
    let (report, lifecycle) = simulate_with(
        &SimulationInput {
            params,
            profile: profile.clone(),
            scaled_object: Some(scaled_object("aws2azmsgs", &scaling)),
            duration,
        },
        &prelude,
    )
    .map_err(|e| PredictError::Simulation(Box::new(e)))?;
    let points: Vec<PhasePoint> = report
        .samples
        .iter()
        .map(|x| PhasePoint {
            t: x.t,
            desired: x.replicas,
            running: x.running,
            nodes: x.nodes,
            queue: Some(x.queue),
        })
        .collect();
    let nodes_at_load = points
        .iter()
        .take_while(|p| p.t <= load)
        .last()
        .map_or(0, |p| p.nodes);
    let mut predicted =
        phases::phases_of(&points, load, s.max_replicas.max(0) as u64, nodes_at_load);
    let round = |t: f64| ((t - load).max(0.0) * 10.0).round() / 10.0;
    // The twin samples its timeline when pods, replicas or nodes change, so the queue's first
    // zero lands on the next such change; the fluid queue knows when it emptied for good.
    // The earlier of the two is the first time the queue was empty.
    let exact_drain = report.phases.drained.map(|d| round(d + report.load_start));
    let first_node =
        phases::first_new_node_ready(&lifecycle, "default", load).map(|t| t.map(round));
    for phase in &mut predicted {
        if phase.name == phases::DRAINED {
            phase.after_load = match (phase.after_load, exact_drain) {
                (Some(sampled), Some(exact)) => Some(sampled.min(exact)),
                (sampled, exact) => sampled.or(exact),
            };
        }
        if let (phases::FIRST_NEW_NODE, Some(first_node)) = (phase.name.as_str(), first_node) {
            phase.after_load = first_node;
        }
    }
    let mut observed = input.observed.clone();
    if !input.karpenter {
        // Nodes do not come and go on such a target: neither side has node phases.
        for phase in predicted.iter_mut().chain(observed.iter_mut()) {
            if phase.name == phases::FIRST_NEW_NODE || phase.name == phases::NODES_CONSOLIDATED {
                phase.after_load = None;
            }
        }
    }
    let messages: u64 = input.sent.iter().map(|l| l.count).sum();
    let tolerance = Tolerance {
        relative: RELATIVE_TOLERANCE,
        absolute_seconds: polling,
    };
    Ok(Prediction {
        params: input.params_source.clone(),
        load: describe_load(&profile, load, &so_why),
        observed_clock: input.observed_clock.clone(),
        predicted_clock: PHASE_CLOCK.to_owned(),
        tolerance,
        observed_until: (input.observed_until * 10.0).round() / 10.0,
        caveat: input.caveat.clone(),
        predicted_left_on_queue: report.left_on_queue,
        phases: compare(
            &model_phases(&input.model, messages, input.karpenter),
            &predicted,
            &observed,
            input.observed_until,
            tolerance,
        ),
    })
}

/// `first new node` as `first-new-node`: a phase in ids and property names.
pub fn phase_key(phase: &str) -> String {
    phase
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// One finding per phase beyond the tolerance (id `<phase>-slower-than-predicted`, …): a warning, or information when the run
/// states why it differs ([`Prediction::caveat`]).
pub fn deviation_findings(prediction: &Prediction, run_dir_hint: &str) -> Vec<Finding> {
    let severity = if prediction.caveat.is_some() {
        Severity::Info
    } else {
        Severity::Warning
    };
    let fmt = |t: Option<f64>| t.map_or("never".to_owned(), |t| format!("{t:.1} s"));
    prediction
        .deviations()
        .map(|row| {
            // The twin's fluid consumers stop the instant KEDA scales to zero, so a tail at or
            // below activationQueueLength is stranded whenever the last active poll saw it; a
            // run whose consumers read it first did better than that bound, not worse.
            let stranded = prediction.predicted_left_on_queue;
            let tail_read = row.phase == phases::DRAINED
                && row.verdict == Verdict::NotPredicted
                && stranded > 0;
            let severity = if tail_read { Severity::Info } else { severity };
            let kind = match row.verdict {
                Verdict::Slower => "slower-than-predicted",
                Verdict::Faster => "faster-than-predicted",
                Verdict::NotObserved => "predicted-not-observed",
                _ => "observed-not-predicted",
            };
            let stage = match (row.observed_stage, row.predicted_stage, row.stage_difference) {
                (Some(o), Some(p), Some(d)) => format!(
                    "{} took {o:.1} s from the {}, the twin predicted {p:.1} s ({d:+.1} s{}); ",
                    row.phase,
                    row.since,
                    row.allowed
                        .map(|a| format!(", tolerance ±{a:.1} s"))
                        .unwrap_or_default()
                ),
                _ => String::new(),
            };
            let mut caveat = prediction
                .caveat
                .as_ref()
                .map(|c| format!(" Expected to differ: {c}."))
                .unwrap_or_default();
            if tail_read {
                caveat.push_str(&format!(" The twin left {stranded} message(s) stranded at 0 replicas (a tail at or below activationQueueLength when KEDA scaled to zero: see the stranded-tail finding); this run's consumers read them before they stopped."));
            }
            Finding {
                id: format!("{}-{kind}", phase_key(&row.phase)),
                severity,
                subject: format!("phase `{}`", row.phase),
                message: format!(
                    "{}: {}: {stage}observed {} after the load start ({}), the twin predicted {} ({}).{caveat}",
                    row.phase,
                    row.verdict.as_str(),
                    fmt(row.observed),
                    prediction.observed_clock,
                    fmt(row.predicted),
                    prediction.params,
                ),
                consequence: "the twin's parameters do not describe this target: local runs on them, and the timeouts and forecasts taken from them, are off by as much".to_owned(),
                fix: format!(
                    "look at this phase's latencies in summary.md; if the target is right, calibrate the twin on this run (`edw twin calibrate {run_dir_hint}`) and use its params (EDW_TWIN_PARAMS, `edw twin serve --params`)"
                ),
            }
        })
        .collect()
}

/// The twin's prediction of this run beside its observations, with a finding per phase
/// beyond the tolerance (`None` when the run sent nothing or observed nothing). A
/// prediction that cannot run is a finding saying why. `run_dir_hint` names the run's
/// report directory in the findings' fix.
pub fn for_run(
    ctx: &Context,
    observed: &[Phase],
    run_dir_hint: &str,
) -> (
    Option<edw_model::prediction::Prediction>,
    Vec<edw_model::finding::Finding>,
) {
    let timeline = ctx.timeline();
    let (Some(load), Some(last)) = (ctx.load_started_at, timeline.last()) else {
        return (None, Vec::new());
    };
    if ctx.sent_loads.iter().all(|l| l.count == 0) {
        return (None, Vec::new());
    }
    let not_run = |why: String| edw_model::finding::Finding {
        id: "prediction-not-run".to_owned(),
        severity: edw_model::finding::Severity::Warning,
        subject: "the twin's prediction of this run".to_owned(),
        message: format!("the run's phases were not compared with the twin's: {why}"),
        consequence: "nothing says whether this target is faster or slower than the twin assumes"
            .to_owned(),
        fix: "fix EDW_TWIN_PARAMS (or unset it for the specification's defaults)".to_owned(),
    };
    let (params, params_source) = match crate::target::twin_params() {
        Ok(params) => {
            let source = match std::env::var_os("EDW_TWIN_PARAMS").filter(|v| !v.is_empty()) {
                Some(path) => format!("params {}", std::path::Path::new(&path).display()),
                None => "the specification's default params".to_owned(),
            };
            (params, source)
        }
        Err(e) => return (None, vec![not_run(crate::error_chain::text(&e))]),
    };
    let input = PredictionInput {
        settings: ctx.settings.clone(),
        model: ctx.model(),
        sent: ctx.sent_loads.clone(),
        load_started_at: load,
        scaled_object_applied_at: ctx.scaled_object_applied_at,
        replicas_before: replica_changes(
            &timeline,
            ctx.scaled_object_applied_at.unwrap_or(load).min(load),
        ),
        observed: observed.to_vec(),
        observed_until: (last.t - load).max(0.0),
        observed_clock: ctx.target_info.clock.describe().to_owned(),
        params,
        params_source,
        karpenter: ctx.target.capabilities().karpenter,
        caveat: ctx.prediction_caveat.clone().or_else(|| {
            matches!(ctx.target.as_ref(), crate::target::Target::Local(_)).then(|| {
                "on the local target the twin predicts itself: the run's consumers are the real code on Azurite at this machine's speed on the scaled clock, the prediction's are modelled (messages_per_pod_second), so a difference is this machine's, not a cluster's".to_owned()
            })
        }),
    };
    match predict(&input) {
        Ok(prediction) => {
            let findings = deviation_findings(&prediction, run_dir_hint);
            (Some(prediction), findings)
        }
        Err(e) => (None, vec![not_run(crate::error_chain::text(&e))]),
    }
}

/// The Deployment's replicas at the first observation and at each change before `until`.
fn replica_changes(timeline: &[Observation], until: f64) -> Vec<(f64, i64)> {
    let mut changes: Vec<(f64, i64)> = Vec::new();
    // A sample that could not read the Deployment shows 0 replicas it never saw: left out.
    for o in timeline
        .iter()
        .take_while(|o| o.t < until)
        .filter(|o| o.read(edw_model::report::Read::Deployment))
    {
        if changes.last().is_none_or(|(_, r)| *r != o.desired as i64) {
            changes.push((o.t, o.desired as i64));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(sent: Vec<SentLoad>, observed: Vec<Phase>, karpenter: bool) -> PredictionInput {
        let settings = FlowSettings::default();
        PredictionInput {
            model: Model::new(
                edw_model::ScalingSettings::default(),
                edw_model::NodePoolSettings::default(),
                edw_model::TargetTiming::default(),
            ),
            settings,
            sent,
            load_started_at: 100.0,
            scaled_object_applied_at: None,
            replicas_before: Vec::new(),
            observed,
            observed_until: 600.0,
            observed_clock: "simulated seconds".to_owned(),
            params: TwinParams::default(),
            params_source: "the specification's defaults".to_owned(),
            karpenter,
            caveat: None,
        }
    }

    fn burst(count: u64) -> Vec<SentLoad> {
        vec![SentLoad {
            started: 100.0,
            finished: 100.5,
            count,
        }]
    }

    #[test]
    fn a_sample_that_could_not_read_the_deployment_is_no_replica_change() {
        let seen = |t: f64, desired: u64, unread: Vec<edw_model::report::Read>| Observation {
            t,
            desired,
            unread,
            ..Observation::default()
        };
        let timeline = [
            seen(1.0, 1, vec![]),
            seen(2.0, 0, vec![edw_model::report::Read::Deployment]),
            seen(3.0, 1, vec![]),
            seen(4.0, 0, vec![]),
        ];
        assert_eq!(replica_changes(&timeline, 10.0), [(1.0, 1), (4.0, 0)]);
    }

    fn row<'a>(p: &'a Prediction, name: &str) -> &'a edw_model::prediction::PhaseComparison {
        p.phases.iter().find(|r| r.phase == name).unwrap()
    }

    #[test]
    fn a_short_send_is_a_burst_and_a_long_one_a_rate_when_it_was_sent() {
        let sent = [
            SentLoad {
                started: 100.0,
                finished: 100.4,
                count: 1000,
            },
            SentLoad {
                started: 130.0,
                finished: 230.0,
                count: 500,
            },
        ];
        let profile = load_profile(&sent);
        assert_eq!(
            profile.steps,
            vec![
                LoadStep::Burst {
                    at: 100.0,
                    count: 1000
                },
                LoadStep::Rate {
                    from: 130.0,
                    until: 230.0,
                    per_second: 5.0
                }
            ]
        );
    }

    #[test]
    fn the_scaled_object_is_created_as_the_run_applied_it() {
        // Applied 2 s before the load: KEDA polled then, the next poll is 28 s after the load.
        let mut applied = input(burst(1000), Vec::new(), true);
        applied.scaled_object_applied_at = Some(98.0);
        // Not applied by the run: half a poll before the load, the mean wait.
        let unknown = input(burst(1000), Vec::new(), true);
        // Applied after the load (chaos): the backlog waits for it.
        let mut after = input(burst(1000), Vec::new(), true);
        after.scaled_object_applied_at = Some(160.0);
        let scale_out =
            |i: &PredictionInput| row(&predict(i).unwrap(), phases::FIRST_SCALE_OUT).predicted;
        assert_eq!(scale_out(&applied), Some(28.0));
        assert_eq!(scale_out(&unknown), Some(15.0));
        assert_eq!(scale_out(&after), Some(60.0));
        assert!(predict(&after)
            .unwrap()
            .load
            .contains("created 60.0 s after the load start"));
    }

    #[test]
    fn the_validation_before_the_load_is_replayed() {
        // The run validated with one replica from 0 s to 99 s (its pod brought a node), then
        // applied the ScaledObject and sent the load at 100 s.
        let mut validated = input(burst(1000), Vec::new(), true);
        validated.replicas_before = vec![(0.0, 1), (99.0, 0)];
        validated.scaled_object_applied_at = Some(99.5);
        let mut fresh = validated.clone();
        fresh.replicas_before = vec![(0.0, 0)];
        let (validated, fresh) = (predict(&validated).unwrap(), predict(&fresh).unwrap());
        println!("{validated:#?}\n{fresh:#?}");
        for name in [phases::FIRST_SCALE_OUT, phases::MAX_REPLICAS] {
            assert_eq!(
                row(&validated, name).predicted,
                row(&fresh, name).predicted,
                "{name}"
            );
        }
        // The first new node is a NodeClaim created after the load in both.
        assert!(row(&validated, phases::FIRST_NEW_NODE).predicted.is_some());
    }

    #[test]
    fn the_twin_predicts_every_phase_of_the_walkthrough_burst() {
        let prediction = predict(&input(burst(1000), Vec::new(), true)).unwrap();
        for name in phases::AFTER_LOAD {
            let r = row(&prediction, name);
            assert!(r.predicted.is_some(), "{name}: {r:?}");
            assert!(r.model.is_some(), "{name}: {r:?}");
            // Nothing was observed, all within the window: each is a miss.
            assert!(r.verdict.is_deviation(), "{name}: {r:?}");
        }
        let node = row(&prediction, phases::FIRST_NEW_NODE).predicted.unwrap();
        let drained = row(&prediction, phases::DRAINED).predicted.unwrap();
        assert!(node > 60.0 && drained > node, "{prediction:?}");
        assert!(
            prediction.load.contains("1000 messages at once"),
            "{}",
            prediction.load
        );
    }

    #[test]
    fn an_observation_like_the_prediction_has_no_finding_and_a_late_node_has_one_where_it_was_lost()
    {
        let first = predict(&input(burst(1000), Vec::new(), true)).unwrap();
        let mut observed: Vec<Phase> = first
            .phases
            .iter()
            .map(|r| Phase {
                name: r.phase.clone(),
                after_load: r.predicted.map(|t| t + 5.0),
            })
            .collect();
        let like = predict(&input(burst(1000), observed.clone(), true)).unwrap();
        assert_eq!(like.deviations().count(), 0, "{like:#?}");
        assert!(deviation_findings(&like, "reports/x").is_empty());
        // The first node 200 s late, and everything after it as late: one finding, where the
        // time was lost (the later stages took as long as predicted).
        for phase in observed.iter_mut().filter(|p| {
            [
                phases::FIRST_NEW_NODE,
                phases::DRAINED,
                phases::SCALED_TO_ZERO,
                phases::NODES_CONSOLIDATED,
            ]
            .contains(&p.name.as_str())
        }) {
            phase.after_load = phase.after_load.map(|t| t + 200.0);
        }
        let late = predict(&input(burst(1000), observed, true)).unwrap();
        let findings = deviation_findings(&late, "reports/x");
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].id, "first-new-node-slower-than-predicted");
        assert_eq!(findings[0].severity, Severity::Warning);
        assert!(
            findings[0]
                .message
                .contains("first new node: SLOWER than predicted: first new node took "),
            "{}",
            findings[0].message
        );
        assert!(findings[0].fix.contains("edw twin calibrate reports/x"));
    }

    #[test]
    fn without_karpenter_nodes_are_not_compared_and_pods_wait_for_no_node() {
        let with = predict(&input(burst(1000), Vec::new(), true)).unwrap();
        let without = predict(&input(burst(1000), Vec::new(), false)).unwrap();
        for name in [phases::FIRST_NEW_NODE, phases::NODES_CONSOLIDATED] {
            assert_eq!(row(&without, name).verdict, Verdict::Neither, "{name}");
        }
        let drained = |p: &Prediction| row(p, phases::DRAINED).predicted.unwrap();
        assert!(drained(&without) < drained(&with), "{without:#?}");
    }

    #[test]
    fn a_tail_the_twin_stranded_and_the_run_read_is_information_that_says_so() {
        let mut prediction = predict(&input(burst(1000), Vec::new(), true)).unwrap();
        for row in &mut prediction.phases {
            (row.observed, row.verdict) = (row.predicted, Verdict::Within);
        }
        let drained = prediction
            .phases
            .iter_mut()
            .find(|r| r.phase == phases::DRAINED)
            .unwrap();
        (drained.predicted, drained.observed, drained.verdict) =
            (None, Some(150.0), Verdict::NotPredicted);
        prediction.predicted_left_on_queue = 19;
        let findings = deviation_findings(&prediction, "reports/x");
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].id, "drained-observed-not-predicted");
        assert_eq!(findings[0].severity, Severity::Info);
        assert!(findings[0]
            .message
            .contains("The twin left 19 message(s) stranded"));
        // Without a stranded tail in the prediction the same row is a warning.
        prediction.predicted_left_on_queue = 0;
        let findings = deviation_findings(&prediction, "reports/x");
        assert_eq!(findings[0].severity, Severity::Warning);
    }

    #[test]
    fn a_caveat_makes_deviations_information() {
        let mut caveated = input(burst(1000), Vec::new(), true);
        caveated.caveat = Some("the run killed consumers".to_owned());
        let prediction = predict(&caveated).unwrap();
        let findings = deviation_findings(&prediction, "reports/x");
        assert!(!findings.is_empty());
        assert!(findings.iter().all(|f| f.severity == Severity::Info
            && f.message
                .contains("Expected to differ: the run killed consumers")));
    }
}
