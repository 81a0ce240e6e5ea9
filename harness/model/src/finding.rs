//! A configuration finding: a setting that looks fine but loses work or money, with its
//! consequence and fix (the engine's `findings` module computes them).

use std::fmt;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Work is lost or a target is missed: `edw check-config` exits 1.
    Risk,
    /// Behaves differently from what the setting says.
    Warning,
    /// Worth knowing (latency, cost).
    Info,
}

impl Severity {
    /// `risk`, `warning` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Risk => "risk",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about the configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Stable, kebab-case (`stranded-tail`, `drain-target`, …).
    pub id: String,
    pub severity: Severity,
    /// Which object and field, e.g.
    /// `ScaledObject aws2az-queue-scaleobj: spec.triggers[0].metadata.activationQueueLength`.
    pub subject: String,
    /// What is configured and what it does.
    pub message: String,
    /// What it costs, with the model's numbers.
    pub consequence: String,
    /// How to fix it.
    pub fix: String,
}
