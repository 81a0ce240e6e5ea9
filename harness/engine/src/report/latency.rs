//! The figures the reports derive from a run's timeline and lifecycle together: the drain
//! rate per running pod and the scale-in delay. Each is either measured or says why it is
//! not (no queue reading, no message count, …): a report never shows a zero for a figure
//! that was not measured.

use super::{is_load_start, load_start_offset};
use edw_model::report::ScenarioReport;

/// Messages processed per running-pod-second between the load start and the queue first
/// reading 0.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DrainRate {
    pub messages: u64,
    /// Which count `messages` is: "processed once" or "sent".
    pub counted: &'static str,
    /// Seconds each running consumer pod was seen running, summed, on the timeline's clock.
    pub pod_seconds: f64,
    pub from: f64,
    pub until: f64,
}

impl DrainRate {
    pub fn per_pod_second(&self) -> f64 {
        self.messages as f64 / self.pod_seconds
    }
}

/// From the queue emptying to the autoscalers and Karpenter letting go; each later stage
/// either measured (on the timeline's clock) or why not.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScaleIn {
    /// When the queue first read 0 after the load.
    pub drained: f64,
    /// The first KEDA deactivation (replicas n → 0) after that.
    pub deactivation: Result<f64, String>,
    /// When the last NodeClaim was deleted.
    pub last_claim_deleted: Result<f64, String>,
}

/// When the load started on the timeline's clock.
fn load_start(report: &ScenarioReport) -> Result<f64, String> {
    report
        .load_started_at
        .or_else(|| report.lifecycle.as_ref()?.load_started_at)
        .or_else(|| {
            report
                .phases
                .iter()
                .any(|p| is_load_start(p) && p.after_load.is_some_and(f64::is_finite))
                .then(|| load_start_offset(report))
        })
        .filter(|t| t.is_finite())
        .ok_or_else(|| "the load start is not known".to_owned())
}

/// The load start and when the queue first read 0 after it had messages.
fn drained(report: &ScenarioReport) -> Result<(f64, f64), String> {
    let load = load_start(report)?;
    if report.timeline.iter().all(|o| o.queue.is_none()) {
        return Err("the timeline has no queue reading".to_owned());
    }
    let queued = report
        .timeline
        .iter()
        .find(|o| o.t >= load && o.queue.is_some_and(|q| q > 0))
        .map(|o| o.t)
        .ok_or("no queue reading above 0 after the load started")?;
    let drained = report
        .timeline
        .iter()
        .find(|o| o.t >= queued && o.queue == Some(0))
        .map(|o| o.t)
        .ok_or("the queue did not read 0 while the run was recorded")?;
    Ok((load, drained))
}

/// The run's message count: the verification's `messages.processed_once`, else the load's
/// `messages.sent`.
fn message_count(report: &ScenarioReport) -> Option<(u64, &'static str)> {
    let find = |key: &str| {
        report
            .steps
            .iter()
            .flat_map(|s| &s.properties)
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
    };
    find("messages.processed_once")
        .map(|n| (n, "processed once"))
        .or_else(|| find("messages.sent").map(|n| (n, "sent")))
}

/// The drain rate per running pod, or why it was not measured.
pub(crate) fn drain_rate(report: &ScenarioReport) -> Result<DrainRate, String> {
    let (from, until) = drained(report)?;
    let (messages, counted) = message_count(report)
        .ok_or("the report holds no message count (no messages.processed_once or messages.sent)")?;
    // Each observation's running pods hold until the next observation that read the pods (a
    // sample that could not read them shows 0 pods it never saw).
    let read: Vec<&edw_model::report::Observation> = report
        .timeline
        .iter()
        .filter(|o| o.read(edw_model::report::Read::Pods))
        .collect();
    let pod_seconds: f64 = read
        .windows(2)
        .map(|pair| {
            let (lo, hi) = (pair[0].t.max(from), pair[1].t.min(until));
            if hi > lo {
                pair[0].running as f64 * (hi - lo)
            } else {
                0.0
            }
        })
        .filter(|s| s.is_finite())
        .sum();
    if pod_seconds <= 0.0 {
        return Err("no consumer pod was seen running before the queue read 0".to_owned());
    }
    Ok(DrainRate {
        messages,
        counted,
        pod_seconds,
        from,
        until,
    })
}

/// The scale-in delay, or why it was not measured.
pub(crate) fn scale_in(report: &ScenarioReport) -> Result<ScaleIn, String> {
    let (_, drained) = drained(report)?;
    let lifecycle = report
        .lifecycle
        .as_ref()
        .ok_or("no lifecycle was recorded")?;
    let deactivation = lifecycle
        .scale_events
        .iter()
        .find(|e| e.t >= drained && e.from > 0 && e.to == 0)
        .map(|e| e.t)
        .ok_or_else(|| "no KEDA deactivation was seen after the queue read 0".to_owned());
    let claims = &lifecycle.nodeclaims;
    let open = claims.iter().filter(|c| c.deleted.is_none()).count();
    let last_claim_deleted = if claims.is_empty() {
        Err("no NodeClaim was seen".to_owned())
    } else if open > 0 {
        Err(format!(
            "{open} NodeClaim(s) still listed when the recording ended"
        ))
    } else {
        claims
            .iter()
            .filter_map(|c| c.deleted)
            .filter(|t| *t >= drained)
            .fold(None, |last: Option<f64>, t| {
                Some(last.map_or(t, |l| l.max(t)))
            })
            .ok_or_else(|| "every NodeClaim was deleted before the queue read 0".to_owned())
    };
    Ok(ScaleIn {
        drained,
        deactivation,
        last_claim_deleted,
    })
}
