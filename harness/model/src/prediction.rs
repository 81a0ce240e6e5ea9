//! Predicted vs observed: for each phase of a run, the model's expectation, the twin's
//! prediction on its virtual clock (same ScaledObject, NodePool, requests and load), what the
//! run observed, the difference and whether it is within the stated tolerance.

use crate::phases::AFTER_LOAD;
use crate::report::Phase;

/// How far an observation may be from the twin's prediction: the larger of `relative` of the
/// prediction and `absolute_seconds` (one KEDA polling interval: a phase that waits for a poll
/// lands anywhere in one).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Tolerance {
    pub relative: f64,
    pub absolute_seconds: f64,
}

impl Tolerance {
    /// The difference allowed around `predicted` seconds.
    pub fn allowed(&self, predicted: f64) -> f64 {
        (self.relative * predicted.abs()).max(self.absolute_seconds)
    }

    /// `±max(25 % of the predicted stage, 30 s)`.
    pub fn describe(&self) -> String {
        format!(
            "±max({:.0} % of the predicted stage, {:.0} s)",
            self.relative * 100.0,
            self.absolute_seconds
        )
    }
}

/// How an observed phase compares with its prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Within the tolerance.
    Within,
    /// Later than predicted by more than the tolerance.
    Slower,
    /// Earlier than predicted by more than the tolerance.
    Faster,
    /// Predicted within the run's window (by more than the tolerance), never observed.
    NotObserved,
    /// Observed, but the twin never got there.
    NotPredicted,
    /// Predicted after the run stopped observing: nothing to compare.
    AfterTheRun,
    /// Neither predicted nor observed.
    Neither,
}

impl Verdict {
    /// True when the difference is a finding.
    pub fn is_deviation(self) -> bool {
        matches!(
            self,
            Verdict::Slower | Verdict::Faster | Verdict::NotObserved | Verdict::NotPredicted
        )
    }

    /// The report's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Within => "within tolerance",
            Verdict::Slower => "SLOWER than predicted",
            Verdict::Faster => "FASTER than predicted",
            Verdict::NotObserved => "predicted, NOT OBSERVED",
            Verdict::NotPredicted => "observed, NOT PREDICTED",
            Verdict::AfterTheRun => "predicted after the run stopped observing",
            Verdict::Neither => "neither predicted nor observed",
        }
    }
}

/// One phase: seconds after the load start on each side, and its stage (from the phase it
/// follows), which the verdict judges: a stage that is late shows where, and the phases after
/// it are not blamed for it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhaseComparison {
    pub phase: String,
    /// The phase its stage runs from (see [`crate::phases::stage_start`]).
    pub since: String,
    /// The stage's length on each side, and `observed - predicted`.
    pub predicted_stage: Option<f64>,
    pub observed_stage: Option<f64>,
    pub stage_difference: Option<f64>,
    /// The model's expectation (the specification's rules on the run's settings; for a burst).
    pub model: Option<f64>,
    /// The twin's prediction on its virtual clock.
    pub predicted: Option<f64>,
    /// What the run observed on the target's clock.
    pub observed: Option<f64>,
    /// `observed - predicted`, when both happened.
    pub difference: Option<f64>,
    /// The stage difference the tolerance allows around the predicted stage.
    pub allowed: Option<f64>,
    pub verdict: Verdict,
}

/// The whole comparison of one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Where the twin's parameters came from (`the specification's defaults`, a params file).
    pub params: String,
    /// The load the twin was given, as the run sent it.
    pub load: String,
    /// The clock of the observations (the target's) and of the prediction (simulated).
    pub observed_clock: String,
    pub predicted_clock: String,
    pub tolerance: Tolerance,
    /// Seconds after the load start the run observed until.
    pub observed_until: f64,
    /// Why differences are expected (faults the run injected), when they are: its deviations
    /// are then information, not warnings.
    pub caveat: Option<String>,
    /// Messages the twin left on the queue at the end (a stranded tail: KEDA scaled to zero
    /// with at most activationQueueLength messages unread).
    pub predicted_left_on_queue: u64,
    pub phases: Vec<PhaseComparison>,
}

impl Prediction {
    /// The phases beyond the tolerance.
    pub fn deviations(&self) -> impl Iterator<Item = &PhaseComparison> {
        self.phases.iter().filter(|p| p.verdict.is_deviation())
    }
}

/// Compares, phase by phase (those after the load start), `model`, `predicted` and `observed`
/// (seconds after the load start), for a run observed until `observed_until`. A phase that
/// happened on both sides is judged by its stage: the time since the phase it follows
/// ([`crate::phases::stage_start`], the first of its candidates that happened on both sides).
pub fn compare(
    model: &[Phase],
    predicted: &[Phase],
    observed: &[Phase],
    observed_until: f64,
    tolerance: Tolerance,
) -> Vec<PhaseComparison> {
    let at = |phases: &[Phase], name: &str| {
        phases
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.after_load)
    };
    AFTER_LOAD
        .iter()
        .map(|name| {
            let (predicted_at, observed_at) = (at(predicted, name), at(observed, name));
            let since = crate::phases::stage_start(name)
                .iter()
                .copied()
                .find(|from| {
                    *from == crate::phases::LOAD_START
                        || (at(predicted, from).is_some() && at(observed, from).is_some())
                })
                .unwrap_or(crate::phases::LOAD_START);
            let start = |phases: &[Phase]| {
                if since == crate::phases::LOAD_START {
                    Some(0.0)
                } else {
                    at(phases, since)
                }
            };
            let stage = |at: Option<f64>, phases: &[Phase]| {
                at.zip(start(phases))
                    .map(|(t, s)| ((t - s) * 10.0).round() / 10.0)
            };
            let (predicted_stage, observed_stage) =
                (stage(predicted_at, predicted), stage(observed_at, observed));
            let allowed = predicted_stage.map(|p| tolerance.allowed(p));
            let verdict = match (predicted_stage, observed_stage, allowed) {
                (Some(p), Some(o), Some(allowed)) if o - p > allowed => Verdict::Slower,
                (Some(p), Some(o), Some(allowed)) if p - o > allowed => Verdict::Faster,
                (Some(_), Some(_), _) => Verdict::Within,
                _ => match (predicted_at, observed_at) {
                    (Some(p), None) if p + tolerance.allowed(p) < observed_until => {
                        Verdict::NotObserved
                    }
                    (Some(_), None) => Verdict::AfterTheRun,
                    (None, Some(_)) => Verdict::NotPredicted,
                    _ => Verdict::Neither,
                },
            };
            PhaseComparison {
                phase: (*name).to_owned(),
                since: since.to_owned(),
                predicted_stage,
                observed_stage,
                stage_difference: predicted_stage
                    .zip(observed_stage)
                    .map(|(p, o)| ((o - p) * 10.0).round() / 10.0),
                model: at(model, name),
                predicted: predicted_at,
                observed: observed_at,
                difference: predicted_at
                    .zip(observed_at)
                    .map(|(p, o)| ((o - p) * 10.0).round() / 10.0),
                allowed,
                verdict,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOLERANCE: Tolerance = Tolerance {
        relative: 0.25,
        absolute_seconds: 30.0,
    };

    fn phases(values: &[(&str, Option<f64>)]) -> Vec<Phase> {
        values
            .iter()
            .map(|(name, t)| Phase {
                name: (*name).to_owned(),
                after_load: *t,
            })
            .collect()
    }

    fn verdict(predicted: Option<f64>, observed: Option<f64>, until: f64) -> Verdict {
        let predicted = phases(&[("drained", predicted)]);
        let observed = phases(&[("drained", observed)]);
        let rows = compare(&[], &predicted, &observed, until, TOLERANCE);
        rows.iter().find(|r| r.phase == "drained").unwrap().verdict
    }

    #[test]
    fn the_tolerance_is_the_larger_of_its_share_and_one_poll() {
        assert_eq!(TOLERANCE.allowed(40.0), 30.0);
        assert_eq!(TOLERANCE.allowed(400.0), 100.0);
        assert_eq!(
            TOLERANCE.describe(),
            "±max(25 % of the predicted stage, 30 s)"
        );
    }

    #[test]
    fn each_side_of_the_tolerance_has_its_verdict() {
        assert_eq!(verdict(Some(200.0), Some(250.0), 900.0), Verdict::Within);
        assert_eq!(verdict(Some(200.0), Some(250.1), 900.0), Verdict::Slower);
        assert_eq!(verdict(Some(200.0), Some(149.9), 900.0), Verdict::Faster);
        assert_eq!(verdict(Some(20.0), Some(49.0), 900.0), Verdict::Within);
        assert_eq!(verdict(Some(200.0), None, 900.0), Verdict::NotObserved);
        // Predicted too close to (or after) the end of what the run watched: not a miss.
        assert_eq!(verdict(Some(200.0), None, 240.0), Verdict::AfterTheRun);
        assert_eq!(verdict(None, Some(100.0), 900.0), Verdict::NotPredicted);
        assert_eq!(verdict(None, None, 900.0), Verdict::Neither);
    }

    #[test]
    fn every_phase_after_the_load_start_has_a_row_with_its_difference() {
        let model = phases(&[("first new node", Some(125.0))]);
        let predicted = phases(&[("first new node", Some(105.0)), ("drained", Some(175.3))]);
        let observed = phases(&[("first new node", Some(251.0)), ("drained", Some(326.0))]);
        let rows = compare(&model, &predicted, &observed, 400.0, TOLERANCE);
        assert_eq!(
            rows.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>(),
            AFTER_LOAD.to_vec()
        );
        let node = rows.iter().find(|r| r.phase == "first new node").unwrap();
        assert_eq!(
            (
                node.model,
                node.since.as_str(),
                node.difference,
                node.verdict
            ),
            (Some(125.0), "load start", Some(146.0), Verdict::Slower)
        );
        // The drain is judged from the first new node: 75 s against 70.3 s, within; the
        // 150.7 s it ends late are the node's, which that row already says.
        let drained = rows.iter().find(|r| r.phase == "drained").unwrap();
        assert_eq!(drained.since, "first new node");
        assert_eq!(
            (
                drained.difference,
                drained.predicted_stage,
                drained.observed_stage,
                drained.stage_difference,
                drained.verdict
            ),
            (
                Some(150.7),
                Some(70.3),
                Some(75.0),
                Some(4.7),
                Verdict::Within
            )
        );
    }
}
