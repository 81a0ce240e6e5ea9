//! The release gate's types: a conformance profile (which scenarios a release needs, their
//! timeouts and what a slower-than-predicted phase does) and the verdict `edw gate` writes
//! (what ran where, against which versions and configuration, each check's outcome).

use serde::{Deserialize, Serialize};

/// The verdict file's format version.
pub const VERDICT_SCHEMA_VERSION: u32 = 1;

/// A conformance profile (`fixtures/profiles/edw-v1.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Its name, e.g. `edw-v1`: a verdict naming it means these checks.
    pub profile: String,
    pub version: u32,
    /// Scenarios side by side (each in its own namespace and NodePool).
    #[serde(default = "one")]
    pub parallel: u16,
    pub required: Vec<ProfileScenario>,
    #[serde(default)]
    pub optional: Vec<ProfileScenario>,
    /// What a regression in the run history (`edw history report`) does to the latest night.
    #[serde(default)]
    pub regressions: PredictionPolicy,
}

fn one() -> u16 {
    1
}

/// One scenario of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileScenario {
    /// A catalogue scenario, e.g. `flow::burst`.
    pub scenario: String,
    /// The run's deadline, e.g. `45m` (its cleanup still runs).
    pub timeout: String,
    /// What a phase slower than the twin's prediction does.
    #[serde(default)]
    pub prediction: PredictionPolicy,
}

/// What a phase slower than predicted (beyond the tolerance), or a regression in the history,
/// does: warn or fail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictionPolicy {
    /// Reported; the check stands.
    #[default]
    Warn,
    /// The check fails.
    Fail,
}

/// One check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passed,
    Failed,
    Skipped,
}

/// One scenario of the profile, as it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub scenario: String,
    pub required: bool,
    pub status: CheckStatus,
    /// What decided the status (the failed steps, the slower phases, why it did not run).
    pub reason: String,
    /// The scenario's report folder (junit.xml, summary.md, timeline, lifecycle).
    pub report_dir: Option<String>,
    /// Each step: name, `passed` / `failed: …` / `skipped: …`.
    pub steps: Vec<String>,
}

/// Versions read from the cluster; each says where it came from or why it is unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterVersions {
    pub kubernetes: String,
    pub keda: String,
    pub karpenter: String,
}

/// SHA-256 digests of the ScaledObject, NodePool and Deployment templates built into this `edw`
/// (placeholders included: two runs with different settings get the same digests).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDigest {
    pub scaled_object: String,
    pub nodepool: String,
    pub deployment: String,
}

/// The overall outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every required check passed on a real target.
    Pass,
    /// A required check failed or was skipped on a real target.
    Fail,
    /// The target is simulated: not a verdict, whatever the checks say.
    Simulated,
}

/// What `edw gate` writes (verdict.json; verdict.md says the same for people).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub schema_version: u32,
    pub profile: String,
    pub profile_version: u32,
    /// SHA-256 of the profile file as read.
    pub profile_digest: String,
    pub suite_version: String,
    pub target: String,
    pub target_description: String,
    pub simulated: bool,
    pub cluster: ClusterVersions,
    pub configuration: ConfigDigest,
    pub started_at: String,
    pub duration_seconds: f64,
    pub checks: Vec<Check>,
    /// Every run's findings, `<scenario>: <severity> <id>: <message>`.
    pub findings: Vec<String>,
    pub outcome: Outcome,
    /// One line: why the outcome is what it is.
    pub summary: String,
}

impl Verdict {
    /// The outcome the checks give on this target: simulated on the twin, else pass only when
    /// every required check passed.
    pub fn decide(checks: &[Check], simulated: bool) -> (Outcome, String) {
        let required: Vec<&Check> = checks.iter().filter(|c| c.required).collect();
        let not_passed: Vec<String> = required
            .iter()
            .filter(|c| c.status != CheckStatus::Passed)
            .map(|c| {
                format!(
                    "{} {}",
                    c.scenario,
                    match c.status {
                        CheckStatus::Failed => "failed",
                        _ => "skipped",
                    }
                )
            })
            .collect();
        let passed = required.len() - not_passed.len();
        let tally = format!("{passed} of {} required checks passed", required.len());
        if simulated {
            return (
                Outcome::Simulated,
                format!("SIMULATED — not a verdict: {tally} on a simulated target"),
            );
        }
        if required.is_empty() {
            return (Outcome::Fail, "the profile requires no check".to_owned());
        }
        if not_passed.is_empty() {
            (Outcome::Pass, tally)
        } else {
            (
                Outcome::Fail,
                format!("{tally}; not passed: {}", not_passed.join(", ")),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(scenario: &str, required: bool, status: CheckStatus) -> Check {
        Check {
            scenario: scenario.into(),
            required,
            status,
            reason: String::new(),
            report_dir: None,
            steps: vec![],
        }
    }

    #[test]
    fn only_every_required_check_passed_on_a_real_target_passes() {
        let all = [
            check("a", true, CheckStatus::Passed),
            check("b", false, CheckStatus::Failed),
        ];
        assert_eq!(Verdict::decide(&all, false).0, Outcome::Pass);
        let (outcome, why) = Verdict::decide(&all, true);
        assert_eq!(outcome, Outcome::Simulated);
        assert!(why.starts_with("SIMULATED — not a verdict"), "{why}");
        let skipped = [
            check("a", true, CheckStatus::Passed),
            check("c", true, CheckStatus::Skipped),
        ];
        let (outcome, why) = Verdict::decide(&skipped, false);
        assert_eq!(outcome, Outcome::Fail);
        assert!(
            why.contains("1 of 2 required checks passed; not passed: c skipped"),
            "{why}"
        );
        assert_eq!(Verdict::decide(&[], false).0, Outcome::Fail);
    }
}
