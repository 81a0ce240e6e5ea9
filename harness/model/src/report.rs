//! The plain types of a scenario run: what ran where, each step's outcome, the observed
//! timeline and its phase latencies. Reports are written from these.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepStatus {
    Passed,
    Failed { message: String },
    Skipped { reason: String },
}

impl StepStatus {
    pub fn is_failed(&self) -> bool {
        matches!(self, StepStatus::Failed { .. })
    }
}

/// One step's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepReport {
    pub name: String,
    pub outcome: StepStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub duration: Duration,
    /// What the step checked and saw, one line each (expected next to observed).
    pub details: Vec<String>,
    /// Figures for the report (JUnit properties), e.g. phase latencies.
    pub properties: Vec<(String, String)>,
    /// What a passed step saw that people must know about (a stranded tail): the step still
    /// passed (its check holds), but every report shows these next to it, never as a plain
    /// "ok" (the terminal's `WARN`, summary.md's warnings, JUnit `system-err`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl StepReport {
    /// True for a passed step that carries warnings.
    pub fn warned(&self) -> bool {
        self.outcome == StepStatus::Passed && !self.warnings.is_empty()
    }

    /// The step's mark and what follows its name in a one-line listing: `ok`, `WARN` with
    /// the warnings, `FAIL` with the message, `skip` with the reason.
    pub fn status_line(&self) -> (&'static str, String) {
        match &self.outcome {
            StepStatus::Passed if self.warnings.is_empty() => ("ok  ", String::new()),
            StepStatus::Passed => ("WARN", format!(": {}", self.warnings.join("; "))),
            StepStatus::Failed { message } => ("FAIL", format!(": {message}")),
            StepStatus::Skipped { reason } => ("skip", format!(": {reason}")),
        }
    }
}

/// The clock a run's timeline, phases and node-hours are measured on (step durations are
/// always real time: [`STEP_CLOCK`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasuredClock {
    /// The twin's governed clock in this process (`local`): simulated seconds.
    TwinSimulated,
    /// Real time on a real cluster.
    Real,
    /// A served twin's governed clock (`kube` on `edw twin serve`), read over its API:
    /// simulated seconds.
    ServedTwinSimulated,
    /// Real time on the harness's clock against a served twin that does not state its clock:
    /// the twin's own clock runs faster (its `--scale`), and these are not its seconds.
    RealAgainstServedTwin,
}

/// What step durations are measured in, on every target.
pub const STEP_CLOCK: &str = "real time";

impl MeasuredClock {
    /// The unit after a figure: `simulated s` or `real s`.
    pub fn unit(self) -> &'static str {
        match self {
            MeasuredClock::TwinSimulated | MeasuredClock::ServedTwinSimulated => "simulated s",
            MeasuredClock::Real | MeasuredClock::RealAgainstServedTwin => "real s",
        }
    }

    /// The clock in words, for a heading or a note.
    pub fn describe(self) -> &'static str {
        match self {
            MeasuredClock::TwinSimulated => "simulated seconds (the twin's governed clock)",
            MeasuredClock::ServedTwinSimulated => {
                "simulated seconds (the served twin's governed clock, read over its API)"
            }
            MeasuredClock::Real => "real seconds (wall clock)",
            MeasuredClock::RealAgainstServedTwin => {
                "real seconds on the harness's wall clock (the served twin's own simulated clock runs faster, at its --scale)"
            }
        }
    }
}

/// Which system the run was against.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TargetInfo {
    /// `local`, `kube` or `aks`.
    pub name: String,
    /// For people: "local: simulated AKS (the twin, clock x20) + embedded Azurite".
    pub description: String,
    /// True for the twin: such a result is never a cluster result.
    pub simulated: bool,
    /// What the timeline, the phases and the node-hours are measured in.
    pub clock: MeasuredClock,
}

/// The cluster and queue at one instant, as the observation recorder saw them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Observation {
    /// Seconds since the recorder started, in target time: on the twin, simulated seconds (its
    /// governed clock); on a cluster, real seconds.
    pub t: f64,
    /// Approximate queue depth (visible + in flight), if it could be read.
    pub queue: Option<u64>,
    /// Deployment `spec.replicas`.
    pub desired: u64,
    /// Deployment `status.readyReplicas`.
    pub ready: u64,
    /// Consumer pods Running (not terminating).
    pub running: u64,
    /// Consumer pods Pending.
    pub pending: u64,
    /// Nodes per Karpenter NodePool.
    pub nodes: BTreeMap<String, u64>,
    /// NodeClaims.
    pub nodeclaims: u64,
    /// The HPA's desired replicas, if there is one.
    pub hpa_desired: Option<u64>,
    /// What this sample could not read ([`Read`]): the fields it fills stay at their defaults,
    /// which are not observations (a failed Deployment read is not "0 replicas"). Empty, and
    /// left out of the timeline, when every read succeeded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<Read>,
}

/// One of the reads a sample makes, for [`Observation::unread`]. (The queue's depth is an
/// `Option` of its own.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Read {
    /// The consumer Deployment: `desired`, `ready`.
    Deployment,
    /// The consumer pods: `running`, `pending`.
    Pods,
    /// The Karpenter nodes: `nodes`.
    Nodes,
    /// The NodeClaims: `nodeclaims`.
    NodeClaims,
}

impl Observation {
    /// Nodes of every NodePool.
    pub fn total_nodes(&self) -> u64 {
        self.nodes.values().sum()
    }

    /// True when this sample read `what` (its fields are observations, not defaults).
    pub fn read(&self, what: Read) -> bool {
        !self.unread.contains(&what)
    }
}

/// A named moment of the flow (load start, first scale-out, …) and when it happened,
/// in target seconds after the load started (the timeline's clock: `t` of the load start plus
/// `after_load`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Phase {
    pub name: String,
    pub after_load: Option<f64>,
}

/// Everything about one scenario run on one target.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub target: TargetInfo,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub duration: Duration,
    pub steps: Vec<StepReport>,
    /// The always-run cleanup steps.
    pub cleanup: Vec<StepReport>,
    pub timeline: Vec<Observation>,
    /// When the load started, on the timeline's clock (`t`).
    pub load_started_at: Option<f64>,
    pub phases: Vec<Phase>,
    /// The diagnostic bundle captured after a failure, before cleanup.
    pub diagnostics: Option<String>,
    /// Configuration findings about what the run deployed (see `edw_engine::findings`).
    pub findings: Vec<crate::finding::Finding>,
    /// The Karpenter NodeClaims of the run's NodePool the run saw, by VM size, their node-hours on
    /// the target's clock ([`TargetInfo::clock`]) and their cost at the price snapshot's
    /// prices; `None` when the target has no Karpenter or nothing was observed.
    pub cost: Option<crate::cost::CostEstimate>,
    /// When each consumer pod and NodeClaim passed each stage of its life and every replica
    /// change, on the timeline's clock (`lifecycle.json`, the latencies); `None` when no
    /// observation recorder ran.
    pub lifecycle: Option<crate::lifecycle::Lifecycle>,
    /// Each phase's model expectation, the twin's prediction on its virtual clock (same
    /// settings and load) and the observation; `None` when the run sent no load.
    pub prediction: Option<crate::prediction::Prediction>,
}

impl ScenarioReport {
    /// True when no step (cleanup included) failed.
    pub fn passed(&self) -> bool {
        !self
            .steps
            .iter()
            .chain(&self.cleanup)
            .any(|s| s.outcome.is_failed())
    }

    /// Every warning of the run's steps (cleanup included), each with its step's name. A
    /// warning does not fail a run ([`ScenarioReport::passed`]); every report shows it.
    pub fn warnings(&self) -> Vec<(&str, &str)> {
        self.steps
            .iter()
            .chain(&self.cleanup)
            .flat_map(|s| s.warnings.iter().map(|w| (s.name.as_str(), w.as_str())))
            .collect()
    }
}
