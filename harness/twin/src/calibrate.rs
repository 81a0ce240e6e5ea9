//! Calibration: fits the twin's delay parameters and its consumer rate to what runs observed
//! (their `lifecycle.json`), as medians (the rate: pooled) with their spread and a confidence
//! from the number of observations, and makes the [`TwinParams`] a calibrated twin runs with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edw_model::lifecycle::{Lifecycle, NodeClaimLife, PodLife};

use crate::params::TwinParams;

/// The file a run's report directory holds its lifecycle in.
pub const LIFECYCLE_FILE: &str = "lifecycle.json";

/// Fewer observations than this keep the parameter's default.
pub const MIN_OBSERVATIONS: usize = 3;
/// This many observations or more are `high` confidence.
pub const HIGH_CONFIDENCE: usize = 10;
/// Fewer messages than this (over every run's drain) keep `messages_per_pod_second`'s default:
/// a handful of messages drained by pods that were still starting says little of the rate.
pub const MIN_RATE_MESSAGES: usize = 100;
/// This many drained messages or more make the consumer rate `high` confidence.
pub const HIGH_RATE_MESSAGES: usize = 1000;

/// Why a run could not be read; each names the file and, where it applies, the field.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("{path}: no such run directory")]
    MissingRunDir { path: String },
    #[error(
        "{path}: no lifecycle.json (the run predates it, or did not finish writing its report)"
    )]
    MissingLifecycle { path: String },
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}, column {column}: not a lifecycle ({message})")]
    Json {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {field} {message}")]
    Contradiction {
        path: String,
        field: String,
        message: String,
    },
}

/// Reads and checks `run_dir/lifecycle.json`.
pub fn read_run(run_dir: &Path) -> Result<Lifecycle, CalibrateError> {
    if !run_dir.is_dir() {
        return Err(CalibrateError::MissingRunDir {
            path: run_dir.display().to_string(),
        });
    }
    let file = run_dir.join(LIFECYCLE_FILE);
    let path = file.display().to_string();
    if !file.is_file() {
        return Err(CalibrateError::MissingLifecycle {
            path: run_dir.display().to_string(),
        });
    }
    let text = std::fs::read_to_string(&file).map_err(|source| CalibrateError::Read {
        path: path.clone(),
        source,
    })?;
    let lifecycle: Lifecycle = serde_json::from_str(&text).map_err(|e| {
        // serde's own text ends with the position, which the error states already.
        let text = e.to_string();
        let message = text.rsplit_once(" at line ").map_or(&*text, |(m, _)| m);
        CalibrateError::Json {
            path: path.clone(),
            line: e.line(),
            column: e.column(),
            message: message.to_owned(),
        }
    })?;
    check(&lifecycle).map_err(|(field, message)| CalibrateError::Contradiction {
        path,
        field,
        message,
    })?;
    Ok(lifecycle)
}

/// The first contradiction in `lifecycle`: a time that is not a finite number, a stage before
/// the one it follows, or a clock going backwards, as (field, what is wrong).
pub fn check(lifecycle: &Lifecycle) -> Result<(), (String, String)> {
    fn order(
        field: &str,
        stages: &[(&str, Option<f64>)],
        before: &[(usize, usize)],
    ) -> Result<(), (String, String)> {
        for (name, value) in stages {
            if value.is_some_and(|v| !v.is_finite()) {
                return Err((
                    format!("{field}.{name}"),
                    "is not a finite number".to_owned(),
                ));
            }
        }
        for (a, b) in before {
            let ((a_name, a), (b_name, b)) = (stages[*a], stages[*b]);
            if let (Some(a), Some(b)) = (a, b) {
                if b < a {
                    return Err((
                        format!("{field}.{b_name}"),
                        format!("({b}) is before {field}.{a_name} ({a})"),
                    ));
                }
            }
        }
        Ok(())
    }
    for (i, pod) in lifecycle.pods.iter().enumerate() {
        let PodLife {
            created,
            scheduled,
            running,
            ready,
            terminating,
            gone,
            ..
        } = pod;
        order(
            &format!("pods[{i}]"),
            &[
                ("created", *created),
                ("scheduled", *scheduled),
                ("running", *running),
                ("ready", *ready),
                ("terminating", *terminating),
                ("gone", *gone),
            ],
            &[
                (0, 1),
                (1, 2),
                (2, 3),
                (0, 4),
                (4, 5),
                (0, 5),
                (0, 2),
                (0, 3),
            ],
        )?;
    }
    for (i, claim) in lifecycle.nodeclaims.iter().enumerate() {
        let NodeClaimLife {
            created,
            launched,
            registered,
            initialized,
            node_ready,
            disrupted,
            deleted,
            ..
        } = claim;
        order(
            &format!("nodeclaims[{i}]"),
            &[
                ("created", *created),
                ("launched", *launched),
                ("registered", *registered),
                ("initialized", *initialized),
                ("node_ready", *node_ready),
                ("disrupted", *disrupted),
                ("deleted", *deleted),
            ],
            &[
                (0, 1),
                (1, 2),
                (2, 3),
                (0, 2),
                (0, 3),
                (0, 4),
                (0, 5),
                (5, 6),
                (0, 6),
            ],
        )?;
    }
    if let Some(drain) = &lifecycle.drain {
        if !(drain.pod_seconds.is_finite() && drain.pod_seconds > 0.0) {
            return Err((
                "drain.pod_seconds".to_owned(),
                format!(
                    "({}) is not a positive number of seconds",
                    drain.pod_seconds
                ),
            ));
        }
        if !(drain.from.is_finite() && drain.until.is_finite()) || drain.until < drain.from {
            return Err((
                "drain.until".to_owned(),
                format!(
                    "({}) is before drain.from ({}): the clock goes backwards",
                    drain.until, drain.from
                ),
            ));
        }
    }
    for (i, pair) in lifecycle.scale_events.windows(2).enumerate() {
        if !pair[1].t.is_finite() || pair[1].t < pair[0].t {
            return Err((
                format!("scale_events[{}].t", i + 1),
                format!(
                    "({}) is before scale_events[{i}].t ({}): the clock goes backwards",
                    pair[1].t, pair[0].t
                ),
            ));
        }
    }
    Ok(())
}

/// How much an estimate can be trusted, by its number of observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// [`HIGH_CONFIDENCE`] or more.
    High,
    /// [`MIN_OBSERVATIONS`] up to [`HIGH_CONFIDENCE`].
    Low,
    /// Fewer than [`MIN_OBSERVATIONS`]: the default is kept.
    TooFew,
}

impl Confidence {
    fn of(observations: usize) -> Confidence {
        if observations >= HIGH_CONFIDENCE {
            Confidence::High
        } else if observations >= MIN_OBSERVATIONS {
            Confidence::Low
        } else {
            Confidence::TooFew
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Low => "low",
            Confidence::TooFew => "too few",
        }
    }
}

/// One fitted quantity.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// The twin parameter it sets, or a name for one that is reported only.
    pub key: &'static str,
    /// What the median, p10 and p90 are in: `s` (a delay) or `msg/s` (per Running pod).
    pub unit: &'static str,
    /// What was measured, for people.
    pub measured: &'static str,
    /// Whether it maps to a twin parameter (false: reported only).
    pub parameter: bool,
    pub observations: usize,
    /// Median, p10 and p90 in [`Estimate::unit`] (`None` without observations).
    pub median: Option<f64>,
    pub p10: Option<f64>,
    pub p90: Option<f64>,
    pub confidence: Confidence,
    /// Whether the params file takes it (a parameter with enough observations).
    pub applied: bool,
    /// The default it keeps, or why, when it is not applied.
    pub note: Option<String>,
}

/// What [`calibrate`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Calibration {
    pub runs: Vec<PathBuf>,
    pub estimates: Vec<Estimate>,
    /// The defaults with the applied estimates.
    pub params: TwinParams,
}

/// The median (mean of the middle two for an even count) and nearest-rank p10/p90.
fn summary(values: &mut [f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    let rank = |p: f64| values[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some((median, rank(0.10), rank(0.90)))
}

fn spans<T>(items: &[T], from: fn(&T) -> Option<f64>, to: fn(&T) -> Option<f64>) -> Vec<f64> {
    items
        .iter()
        .filter_map(|i| Some(to(i)? - from(i)?))
        .filter(|d| *d >= 0.0)
        .collect()
}

/// Replica increase → the first consumer pod created after it (before the next change).
fn pod_create_spans(run: &Lifecycle) -> Vec<f64> {
    let events = &run.scale_events;
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.to > e.from)
        .filter_map(|(i, e)| {
            let until = events.get(i + 1).map_or(f64::INFINITY, |next| next.t);
            run.pods
                .iter()
                .filter_map(|p| p.created)
                .filter(|c| *c >= e.t && *c < until)
                .min_by(f64::total_cmp)
                .map(|c| c - e.t)
        })
        .collect()
}

/// The HPA's sync period: the intervals between consecutive HPA rescales (replicas n → m, both
/// above 0) that are one sync apart, i.e. within a quarter of the shortest (a sync that
/// changes nothing leaves a gap of two or more periods, which is not one).
fn hpa_sync_spans(run: &Lifecycle) -> Vec<f64> {
    let rescales: Vec<f64> = run
        .scale_events
        .iter()
        .filter(|e| e.from > 0 && e.to > 0)
        .map(|e| e.t)
        .collect();
    let intervals: Vec<f64> = rescales
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .filter(|d| *d > 0.0)
        .collect();
    let Some(shortest) = intervals.iter().copied().min_by(f64::total_cmp) else {
        return Vec::new();
    };
    intervals
        .into_iter()
        .filter(|d| *d <= shortest * 1.25)
        .collect()
}

/// A node's last consumer pod gone → its NodeClaim disrupted (nodes that had consumer pods
/// and lost them all before the disruption).
fn consolidation_spans(run: &Lifecycle) -> Vec<f64> {
    run.nodeclaims
        .iter()
        .filter_map(|claim| {
            let node = claim.node.as_deref()?;
            let disrupted = claim.disrupted?;
            let on_node: Vec<&PodLife> = run
                .pods
                .iter()
                .filter(|p| p.node.as_deref() == Some(node))
                .collect();
            let mut last = None::<f64>;
            for pod in &on_node {
                let gone = pod.gone.filter(|g| *g <= disrupted)?;
                last = Some(last.map_or(gone, |l| l.max(gone)));
            }
            Some(disrupted - last?)
        })
        .filter(|d| *d >= 0.0)
        .collect()
}

fn duration_of(default: Duration) -> String {
    format!("{} s", default.as_secs_f64())
}

/// Fits the twin's parameters to `runs` (each a run directory's path and its lifecycle).
pub fn calibrate(runs: &[(PathBuf, Lifecycle)]) -> Calibration {
    let mut params = TwinParams::default();
    let defaults = params.clone();
    type Fit = fn(&Lifecycle) -> Vec<f64>;
    type Field = Option<(Duration, fn(&mut TwinParams) -> &mut Duration)>;
    let fits: [(&'static str, &'static str, Fit, Field); 8] = [
        (
            "pod_start_delay",
            "pod bound → Running",
            |r| spans(&r.pods, |p| p.scheduled, |p| p.running),
            Some((defaults.pod_start_delay, |p| &mut p.pod_start_delay)),
        ),
        (
            "pod_create_delay",
            "replica increase → first pod created",
            pod_create_spans,
            Some((defaults.pod_create_delay, |p| &mut p.pod_create_delay)),
        ),
        (
            "launch_delay",
            "NodeClaim created → Launched",
            |r| spans(&r.nodeclaims, |c| c.created, |c| c.launched),
            Some((defaults.launch_delay, |p| &mut p.launch_delay)),
        ),
        (
            "register_delay",
            "NodeClaim created → Registered",
            |r| spans(&r.nodeclaims, |c| c.created, |c| c.registered),
            Some((defaults.register_delay, |p| &mut p.register_delay)),
        ),
        (
            "initialize_delay",
            "NodeClaim created → Initialized (its node Ready)",
            |r| {
                spans(
                    &r.nodeclaims,
                    |c| c.created,
                    |c| c.initialized.or(c.node_ready),
                )
            },
            Some((defaults.initialize_delay, |p| &mut p.initialize_delay)),
        ),
        (
            "vm_delete_delay",
            "NodeClaim deletionTimestamp → deleted",
            |r| spans(&r.nodeclaims, |c| c.disrupted, |c| c.deleted),
            Some((defaults.vm_delete_delay, |p| &mut p.vm_delete_delay)),
        ),
        (
            "hpa_sync_period",
            "one HPA rescale → the next, one sync apart",
            hpa_sync_spans,
            Some((defaults.hpa_sync_period, |p| &mut p.hpa_sync_period)),
        ),
        (
            "consolidation_delay",
            "node's last consumer pod gone → NodeClaim disrupted",
            consolidation_spans,
            None,
        ),
    ];
    let mut estimates = Vec::new();
    for (key, measured, fit, field) in fits {
        let mut values: Vec<f64> = runs.iter().flat_map(|(_, run)| fit(run)).collect();
        let observations = values.len();
        let stats = summary(&mut values);
        let confidence = Confidence::of(observations);
        let mut note = None;
        let mut applied = false;
        match (field, stats) {
            (Some((_, set)), Some((median, _, _))) if confidence != Confidence::TooFew => {
                *set(&mut params) = Duration::from_millis((median * 1000.0).round() as u64);
                applied = true;
            }
            (Some((default, _)), _) => {
                let why = if key == "initialize_delay" && observations == 0 {
                    "no node was ever Ready (no NodeClaim Initialized) in any run: it cannot be fitted"
                        .to_owned()
                } else {
                    format!("{observations} observation(s), fewer than {MIN_OBSERVATIONS}")
                };
                note = Some(format!("{why}; keeps its default {}", duration_of(default)));
            }
            (None, _) => {
                note = Some(
                    "reported only: the twin has no one parameter for it (it is consolidateAfter, up to a disruption_period and the disruption_validation together)"
                        .to_owned(),
                );
            }
        }
        estimates.push(Estimate {
            key,
            unit: "s",
            measured,
            parameter: field.is_some(),
            observations,
            median: stats.map(|s| s.0),
            p10: stats.map(|s| s.1),
            p90: stats.map(|s| s.2),
            confidence,
            applied,
            note,
        });
    }
    estimates.push(consumer_rate(
        runs,
        &mut params,
        defaults.messages_per_pod_second,
    ));
    Calibration {
        runs: runs.iter().map(|(path, _)| path.clone()).collect(),
        estimates,
        params,
    }
}

/// `messages_per_pod_second` from the runs' drain measurements (messages processed per
/// Running-pod-second from the load start to the queue first reading 0): the pooled rate
/// (every run's messages over every run's pod-seconds), the spread over the runs, and as
/// observations the messages behind it (fewer than [`MIN_RATE_MESSAGES`] keep the default).
fn consumer_rate(runs: &[(PathBuf, Lifecycle)], params: &mut TwinParams, default: f64) -> Estimate {
    let drains: Vec<_> = runs.iter().filter_map(|(_, r)| r.drain.as_ref()).collect();
    let messages: u64 = drains.iter().map(|d| d.messages).sum();
    let pod_seconds: f64 = drains.iter().map(|d| d.pod_seconds).sum();
    let observations = messages as usize;
    let mut rates: Vec<f64> = drains.iter().map(|d| d.per_pod_second()).collect();
    let spread = summary(&mut rates);
    let pooled = (pod_seconds > 0.0).then(|| messages as f64 / pod_seconds);
    let confidence = if observations >= HIGH_RATE_MESSAGES {
        Confidence::High
    } else if observations >= MIN_RATE_MESSAGES {
        Confidence::Low
    } else {
        Confidence::TooFew
    };
    let (applied, note) = match pooled {
        Some(rate) if confidence != Confidence::TooFew => {
            params.messages_per_pod_second = rate;
            (
                true,
                Some(format!(
                    "{messages} message(s) over {pod_seconds:.1} running-pod-seconds in {} run(s)",
                    drains.len()
                )),
            )
        }
        _ if drains.is_empty() => (
            false,
            Some(format!(
                "no run measured its drain (lifecycle.json has no `drain`: the queue never read 0, or no message count); keeps its default {default}"
            )),
        ),
        _ => (
            false,
            Some(format!(
                "{messages} message(s), fewer than {MIN_RATE_MESSAGES}; keeps its default {default}"
            )),
        ),
    };
    Estimate {
        key: "messages_per_pod_second",
        unit: "msg/s",
        measured: "messages processed per Running pod per second",
        parameter: true,
        observations,
        median: pooled,
        p10: spread.map(|s| s.1),
        p90: spread.map(|s| s.2),
        confidence,
        applied,
        note,
    }
}

impl Calibration {
    /// One line a quantity: estimate, spread, observations, confidence, and what happened.
    pub fn lines(&self) -> Vec<String> {
        self.estimates
            .iter()
            .map(|e| {
                let figures = match (e.median, e.p10, e.p90) {
                    (Some(m), Some(lo), Some(hi)) if e.unit == "s" => {
                        format!("{m:.1} s (p10–p90 {lo:.1}–{hi:.1} s)")
                    }
                    (Some(m), Some(lo), Some(hi)) => {
                        format!("{m:.3} {0} (p10–p90 {lo:.3}–{hi:.3} {0})", e.unit)
                    }
                    _ => "—".to_owned(),
                };
                let mut line = format!(
                    "{:<22} {figures}, {} observation(s), confidence {} [{}]",
                    e.key,
                    e.observations,
                    e.confidence.word(),
                    e.measured
                );
                if let Some(note) = &e.note {
                    line.push_str(&format!(": {note}"));
                }
                line
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::run_recorded;
    use crate::queue::LoadProfile;

    const T0: f64 = 30.0;

    /// The "live" system: non-default delays with 20 % seeded jitter.
    fn truth(seed: u64) -> TwinParams {
        let s = Duration::from_secs;
        TwinParams {
            seed,
            jitter: 0.2,
            pod_start_delay: s(9),
            register_delay: s(120),
            initialize_delay: s(150),
            vm_delete_delay: s(45),
            ..TwinParams::default()
        }
    }

    fn run_dir(dir: &Path, seed: u64) -> (PathBuf, crate::engine::Engine) {
        let engine = run_recorded(truth(seed), &LoadProfile::burst(T0, 1000), 1500.0).unwrap();
        let lifecycle = engine.lifecycle(Some(T0)).unwrap();
        let run = dir.join(format!("run-{seed}"));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            run.join(LIFECYCLE_FILE),
            serde_json::to_string_pretty(&lifecycle).unwrap(),
        )
        .unwrap();
        (run, engine)
    }

    fn within(what: &str, actual: Duration, expected: f64, tolerance: f64) {
        let actual = actual.as_secs_f64();
        assert!(
            (actual - expected).abs() <= expected * tolerance,
            "{what}: fitted {actual} s, true {expected} s (±{}%)",
            tolerance * 100.0
        );
    }

    /// Phases of a run, seconds after the load: its first node Ready (from the lifecycle)
    /// and the queue drained (from the timeline).
    fn phases(engine: &crate::engine::Engine) -> (f64, f64) {
        let lifecycle = engine.lifecycle(Some(T0)).unwrap();
        let first_ready = lifecycle
            .nodeclaims
            .iter()
            .filter_map(|c| c.node_ready)
            .fold(f64::INFINITY, f64::min);
        let drained = engine.timeline.drained_at.expect("the queue drains");
        (first_ready - T0, drained - T0)
    }

    #[test]
    fn parameters_are_recovered_from_jittered_runs_and_predict_a_held_back_one() {
        let dir = tempfile::tempdir().unwrap();
        let runs: Vec<(PathBuf, Lifecycle)> = (1..=8)
            .map(|seed| {
                let (path, _) = run_dir(dir.path(), seed);
                let lifecycle = read_run(&path).unwrap();
                (path, lifecycle)
            })
            .collect();
        let calibration = calibrate(&runs);
        let p = &calibration.params;
        within("pod_start_delay", p.pod_start_delay, 9.0, 0.10);
        within("register_delay", p.register_delay, 120.0, 0.10);
        within("initialize_delay", p.initialize_delay, 150.0, 0.10);
        within("vm_delete_delay", p.vm_delete_delay, 45.0, 0.10);
        within("launch_delay", p.launch_delay, 2.0, 0.10);
        within("pod_create_delay", p.pod_create_delay, 1.0, 0.10);
        assert_eq!(p.jitter, 0.0, "the calibrated twin is exact");
        let by_key = |key: &str| calibration.estimates.iter().find(|e| e.key == key).unwrap();
        for key in ["pod_start_delay", "initialize_delay", "vm_delete_delay"] {
            let e = by_key(key);
            assert!(e.applied && e.confidence == Confidence::High, "{e:?}");
            assert!(e.p10 < e.median && e.median < e.p90, "jitter spreads {e:?}");
        }
        let consolidation = by_key("consolidation_delay");
        assert!(!consolidation.parameter && !consolidation.applied);
        assert!(consolidation.observations > 0, "{consolidation:?}");
        // In-process twin runs have no report, so no drain measurement: the rate is kept.
        let rate = by_key("messages_per_pod_second");
        assert!(!rate.applied, "{rate:?}");
        assert!(
            rate.note
                .as_ref()
                .unwrap()
                .contains("no run measured its drain"),
            "{rate:?}"
        );

        // A held-back run (another seed) and the calibrated twin's prediction of it.
        let (_, observed) = run_dir(dir.path(), 99);
        let predicted = run_recorded(p.clone(), &LoadProfile::burst(T0, 1000), 1500.0).unwrap();
        let (observed_ready, observed_drained) = phases(&observed);
        let (predicted_ready, predicted_drained) = phases(&predicted);
        for (what, o, p) in [
            ("first node Ready", observed_ready, predicted_ready),
            ("drain end", observed_drained, predicted_drained),
        ] {
            assert!(
                (o - p).abs() <= 0.10 * o,
                "{what}: observed {o} s, predicted {p} s"
            );
        }
    }

    fn drained(messages: u64, pod_seconds: f64) -> Lifecycle {
        Lifecycle {
            drain: Some(edw_model::lifecycle::DrainMeasurement {
                messages,
                counted: "processed once".to_owned(),
                pod_seconds,
                from: 10.0,
                until: 300.0,
            }),
            ..Lifecycle::default()
        }
    }

    #[test]
    fn the_consumer_rate_is_the_runs_messages_over_their_running_pod_seconds() {
        let runs = vec![
            (PathBuf::from("a"), drained(1000, 1400.0)),
            (PathBuf::from("b"), drained(600, 900.0)),
            (PathBuf::from("no-drain"), Lifecycle::default()),
        ];
        let calibration = calibrate(&runs);
        let rate = calibration
            .estimates
            .iter()
            .find(|e| e.key == "messages_per_pod_second")
            .unwrap();
        assert!(
            rate.applied && rate.confidence == Confidence::High,
            "{rate:?}"
        );
        assert_eq!(rate.observations, 1600);
        let pooled = 1600.0 / 2300.0;
        assert!((calibration.params.messages_per_pod_second - pooled).abs() < 1e-12);
        assert!(
            (rate.p10.unwrap() - 600.0 / 900.0).abs() < 1e-12,
            "{rate:?}"
        );
        assert!(
            (rate.p90.unwrap() - 1000.0 / 1400.0).abs() < 1e-12,
            "{rate:?}"
        );
        let lines = calibration.lines().join("\n");
        assert!(
            lines.contains("messages_per_pod_second 0.696 msg/s (p10–p90 0.667–0.714 msg/s), 1600 observation(s), confidence high"),
            "{lines}"
        );
        // Too few messages keep the default, and say so.
        let few = calibrate(&[(PathBuf::from("a"), drained(40, 30.0))]);
        let rate = few
            .estimates
            .iter()
            .find(|e| e.key == "messages_per_pod_second")
            .unwrap();
        assert!(
            !rate.applied && rate.confidence == Confidence::TooFew,
            "{rate:?}"
        );
        assert_eq!(
            few.params.messages_per_pod_second,
            TwinParams::default().messages_per_pod_second
        );
        assert!(
            rate.note
                .as_ref()
                .unwrap()
                .contains("40 message(s), fewer than 100; keeps its default 1"),
            "{rate:?}"
        );
    }

    #[test]
    fn the_hpa_sync_period_is_the_interval_between_rescales_one_sync_apart() {
        let event = |t: f64, from: u64, to: u64| edw_model::lifecycle::ScaleEvent { t, from, to };
        let run = |events: Vec<edw_model::lifecycle::ScaleEvent>| Lifecycle {
            scale_events: events,
            ..Lifecycle::default()
        };
        // Activation, a ramp one sync apart (with the recorder's jitter), a sync that changed
        // nothing (30 s), the scale to zero.
        let a = run(vec![
            event(10.0, 0, 1),
            event(40.2, 1, 4),
            event(59.8, 4, 8),
            event(80.0, 8, 15),
            event(120.0, 15, 12),
            event(300.0, 12, 0),
        ]);
        let tenths = |spans: Vec<f64>| -> Vec<f64> {
            spans.iter().map(|d| (d * 10.0).round() / 10.0).collect()
        };
        assert_eq!(tenths(hpa_sync_spans(&a)), vec![19.6, 20.2]);
        let b = run(vec![
            event(5.0, 0, 2),
            event(25.0, 2, 6),
            event(45.1, 6, 10),
        ]);
        let calibration = calibrate(&[(PathBuf::from("a"), a), (PathBuf::from("b"), b)]);
        let e = calibration
            .estimates
            .iter()
            .find(|e| e.key == "hpa_sync_period")
            .unwrap();
        assert!(e.applied && e.observations == 3, "{e:?}");
        // The median of 19.6, 20.2 and 20.1 s.
        assert_eq!(
            calibration.params.hpa_sync_period,
            Duration::from_millis(20_100)
        );
    }

    #[test]
    fn fewer_than_three_observations_keep_the_default_and_say_so() {
        let lifecycle = Lifecycle {
            pods: vec![PodLife {
                name: "p".into(),
                created: Some(1.0),
                scheduled: Some(2.0),
                running: Some(30.0),
                ..PodLife::default()
            }],
            ..Lifecycle::default()
        };
        let calibration = calibrate(&[(PathBuf::from("r"), lifecycle)]);
        assert_eq!(calibration.params, TwinParams::default());
        let lines = calibration.lines().join("\n");
        assert!(
            lines.contains("pod_start_delay        28.0 s (p10–p90 28.0–28.0 s), 1 observation(s), confidence too few"),
            "{lines}"
        );
        assert!(lines.contains("keeps its default 5 s"), "{lines}");
        assert!(
            lines.contains("initialize_delay") && lines.contains("no node was ever Ready"),
            "{lines}"
        );
    }

    fn error_of(text: Option<&str>) -> String {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = text {
            std::fs::write(dir.path().join(LIFECYCLE_FILE), text).unwrap();
        }
        read_run(dir.path()).unwrap_err().to_string()
    }

    #[test]
    fn bad_runs_are_refused_naming_the_file_and_the_field() {
        assert!(read_run(Path::new("/no/such/run"))
            .unwrap_err()
            .to_string()
            .contains("/no/such/run: no such run directory"));
        assert!(error_of(None).contains(": no lifecycle.json"));
        let truncated = error_of(Some(r#"{"format": 1, "unit": "real s", "pods": ["#));
        assert!(
            truncated.contains(
                "lifecycle.json: line 1, column 41: not a lifecycle (EOF while parsing a list)"
            ),
            "{truncated}"
        );
        let pods = r#"{"format":1,"unit":"real s","ended_at":100,"nodeclaims":[],"scale_events":[],
            "pods":[{"name":"a","created":1},{"name":"b","created":1},{"name":"c","created":1},
            {"name":"d","created":20,"scheduled":21,"running":12}]}"#;
        let error = error_of(Some(pods));
        assert!(
            error.contains("lifecycle.json: pods[3].running (12) is before pods[3].scheduled (21)"),
            "{error}"
        );
        let claims = r#"{"format":1,"unit":"real s","ended_at":100,"pods":[],"scale_events":[],
            "nodeclaims":[{"name":"n","created":50,"launched":40}]}"#;
        let error = error_of(Some(claims));
        assert!(
            error.contains("nodeclaims[0].launched (40) is before nodeclaims[0].created (50)"),
            "{error}"
        );
        let clock = r#"{"format":1,"unit":"real s","ended_at":100,"pods":[],"nodeclaims":[],
            "scale_events":[{"t":10,"from":0,"to":1},{"t":5,"from":1,"to":4}]}"#;
        let error = error_of(Some(clock));
        assert!(
            error.contains(
                "scale_events[1].t (5) is before scale_events[0].t (10): the clock goes backwards"
            ),
            "{error}"
        );
        let drain = r#"{"format":1,"unit":"real s","ended_at":100,"pods":[],"nodeclaims":[],
            "scale_events":[],"drain":{"messages":10,"counted":"sent","pod_seconds":0,"from":1,"until":9}}"#;
        let error = error_of(Some(drain));
        assert!(
            error.contains(
                "lifecycle.json: drain.pod_seconds (0) is not a positive number of seconds"
            ),
            "{error}"
        );
    }
}
