//! JUnit XML for scenario runs, written with `quick-junit`: one testsuite per run, one
//! testcase per step and per cleanup step.

use chrono::{DateTime, FixedOffset};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use time::OffsetDateTime;

use super::{clean, clean_line, phase_value, ReportError};
use edw_model::report::{ScenarioReport, StepReport, StepStatus, STEP_CLOCK};

/// The name of the `<testsuites>` element.
pub const REPORT_NAME: &str = "edw-conformance";

/// JUnit XML for `reports`: one `<testsuite>` per run, named `<scenario> [<target>]` (plus
/// `[simulated]` for a simulated target), with one `<testcase>` per step and one per cleanup
/// step (`cleanup: <step>`).
///
/// A failed step carries a `<failure>` with its message and, as text, its details (preceded
/// by the whole message when that has several lines); a skipped step carries `<skipped>`
/// with the reason; a passed step's details are its `<system-out>`, and its warnings (if any)
/// its `<system-err>`, one `WARNING: ` line each (the case stays passed). The suite's properties
/// are `target`, `target.description`, `simulated`, `clock.steps` (what step times are
/// measured in: real time), `clock.phases` (what the timeline, phases and node-hours are
/// measured in), `phase.<name>` (seconds after the load started on that clock, `n/a` when the
/// phase did not happen), with Karpenter the cost estimate (`cost.estimated_usd`,
/// `cost.node_hours`, `cost.prices`, `cost.simulated`, `cost.unpriced` when a size has no
/// price, and `nodes.<size>` per VM size), with a lifecycle `latency.unit` (the clock's unit)
/// and each of its latencies as `latency.<key>.count`, `.p50`, `.p90`, `.p99` and `.max`; the drain
/// rate per running pod (`latency.drain_rate.per_pod_second`, `.messages`, `.pod_seconds`) and
/// the scale-in delays after the queue first read 0 (`latency.scale_in.deactivation_after_drain`,
/// `.last_nodeclaim_deleted_after_drain`), each `…not_measured` with why when it was not; with a
/// prediction `prediction.params`, `prediction.tolerance` and per phase
/// `prediction.<phase>.model`, `.predicted`, `.observed`, `.difference`, `.stage_predicted`,
/// `.stage_observed` (seconds, each when known), `.since` (the phase its stage runs from) and
/// `.verdict`, every finding as
/// `finding.<id>` (`<severity>: <message>`) and every step property as `<step>.<name>`. The diagnostics are the suite's `<system-out>`. Timestamps and times
/// come from the reports, so the output depends on nothing else.
pub fn junit(reports: &[ScenarioReport]) -> Result<String, ReportError> {
    let mut out = Report::new(REPORT_NAME);
    let total: std::time::Duration = reports.iter().map(|r| r.duration).sum();
    out.set_time(total);
    for report in reports {
        out.add_test_suite(suite(report));
    }
    out.to_string().map_err(ReportError::Junit)
}

fn suite(report: &ScenarioReport) -> TestSuite {
    let name = format!(
        "{} [{}]{}",
        clean_line(&report.scenario),
        clean_line(&report.target.name),
        if report.target.simulated {
            " [simulated]"
        } else {
            ""
        }
    );
    let mut suite = TestSuite::new(name);
    if let Some(ts) = chrono_timestamp(report.started_at) {
        suite.set_timestamp(ts);
    }
    suite.set_time(report.duration);

    suite.add_property(Property::new("target", clean_line(&report.target.name)));
    suite.add_property(Property::new(
        "target.description",
        clean_line(&report.target.description),
    ));
    suite.add_property(Property::new(
        "simulated",
        if report.target.simulated {
            "true"
        } else {
            "false"
        },
    ));
    suite.add_property(Property::new("clock.steps", STEP_CLOCK));
    suite.add_property(Property::new(
        "clock.phases",
        report.target.clock.describe(),
    ));
    for phase in &report.phases {
        suite.add_property(Property::new(
            format!("phase.{}", clean_line(&phase.name)),
            phase_value(phase),
        ));
    }
    if let Some(cost) = &report.cost {
        suite.add_property(Property::new(
            "cost.estimated_usd",
            format!("{:.4}", cost.total_usd),
        ));
        suite.add_property(Property::new(
            "cost.node_hours",
            format!("{:.3}", cost.node_hours),
        ));
        suite.add_property(Property::new("cost.prices", cost.describe_prices()));
        suite.add_property(Property::new(
            "cost.simulated",
            if report.target.simulated {
                "true"
            } else {
                "false"
            },
        ));
        if !cost.unpriced.is_empty() {
            suite.add_property(Property::new(
                "cost.unpriced",
                clean_line(&cost.unpriced.join(", ")),
            ));
        }
        for size in &cost.sizes {
            suite.add_property(Property::new(
                format!("nodes.{}", clean_line(&size.size)),
                clean_line(&size.describe(cost.price_region)),
            ));
        }
    }
    if let Some(lifecycle) = &report.lifecycle {
        suite.add_property(Property::new("latency.unit", report.target.clock.unit()));
        for latency in lifecycle.latencies() {
            let key = clean_line(&latency.key);
            let q = &latency.quantiles;
            suite.add_property(Property::new(
                format!("latency.{key}.count"),
                q.count.to_string(),
            ));
            for (name, value) in [
                ("p50", q.p50),
                ("p90", q.p90),
                ("p99", q.p99),
                ("max", q.max),
            ] {
                suite.add_property(Property::new(
                    format!("latency.{key}.{name}"),
                    format!("{value:.3}"),
                ));
            }
        }
    }
    // The drain rate per running pod and the scale-in delays, each measured or why not.
    match super::latency::drain_rate(report) {
        Ok(rate) => {
            for (name, value) in [
                (
                    "drain_rate.per_pod_second",
                    format!("{:.3}", rate.per_pod_second()),
                ),
                ("drain_rate.messages", rate.messages.to_string()),
                ("drain_rate.pod_seconds", format!("{:.1}", rate.pod_seconds)),
            ] {
                suite.add_property(Property::new(format!("latency.{name}"), value));
            }
        }
        Err(why) => {
            suite.add_property(Property::new(
                "latency.drain_rate.not_measured",
                clean_line(&why),
            ));
        }
    }
    match super::latency::scale_in(report) {
        Ok(scale_in) => {
            for (name, value) in [
                ("deactivation", scale_in.deactivation),
                ("last_nodeclaim_deleted", scale_in.last_claim_deleted),
            ] {
                let (key, value) = match value {
                    Ok(t) => (
                        format!("latency.scale_in.{name}_after_drain"),
                        format!("{:.1}", t - scale_in.drained),
                    ),
                    Err(why) => (
                        format!("latency.scale_in.{name}_not_measured"),
                        clean_line(&why),
                    ),
                };
                suite.add_property(Property::new(key, value));
            }
        }
        Err(why) => {
            suite.add_property(Property::new(
                "latency.scale_in.not_measured",
                clean_line(&why),
            ));
        }
    }
    if let Some(p) = &report.prediction {
        suite.add_property(Property::new("prediction.params", clean_line(&p.params)));
        suite.add_property(Property::new(
            "prediction.tolerance",
            p.tolerance.describe(),
        ));
        for row in &p.phases {
            let key = crate::predict::phase_key(&row.phase);
            for (name, value) in [
                ("model", row.model),
                ("predicted", row.predicted),
                ("observed", row.observed),
                ("difference", row.difference),
                ("stage_predicted", row.predicted_stage),
                ("stage_observed", row.observed_stage),
            ] {
                if let Some(value) = value {
                    suite.add_property(Property::new(
                        format!("prediction.{key}.{name}"),
                        format!("{value:.1}"),
                    ));
                }
            }
            suite.add_property(Property::new(
                format!("prediction.{key}.since"),
                clean_line(&row.since),
            ));
            suite.add_property(Property::new(
                format!("prediction.{key}.verdict"),
                row.verdict.as_str(),
            ));
        }
    }
    for finding in &report.findings {
        suite.add_property(Property::new(
            format!("finding.{}", clean_line(&finding.id)),
            clean_line(&format!("{}: {}", finding.severity, finding.message)),
        ));
    }

    let classname = format!(
        "{}.{}",
        clean_line(&report.scenario),
        clean_line(&report.target.name)
    );
    for (step, prefix) in report
        .steps
        .iter()
        .map(|s| (s, ""))
        .chain(report.cleanup.iter().map(|s| (s, "cleanup: ")))
    {
        let step_name = format!("{prefix}{}", clean_line(&step.name));
        for (key, value) in &step.properties {
            suite.add_property(Property::new(
                format!("{step_name}.{}", clean_line(key)),
                clean_line(value),
            ));
        }
        suite.add_test_case(case(step, step_name, &classname));
    }

    if let Some(diagnostics) = &report.diagnostics {
        suite.set_system_out(clean(diagnostics));
    }
    suite
}

fn case(step: &StepReport, name: String, classname: &str) -> TestCase {
    let details = clean(&step.details.join("\n"));
    let status = match &step.outcome {
        StepStatus::Passed => TestCaseStatus::success(),
        StepStatus::Failed { message } => {
            let message = clean(message);
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let text = if message.contains('\n') {
                if details.is_empty() {
                    message.clone()
                } else {
                    format!("{message}\n\n{details}")
                }
            } else {
                details.clone()
            };
            status.set_message(message);
            if !text.is_empty() {
                status.set_description(text);
            }
            status
        }
        StepStatus::Skipped { reason } => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(clean(reason));
            if !details.is_empty() {
                status.set_description(details.clone());
            }
            status
        }
    };
    let mut case = TestCase::new(name, status);
    case.set_classname(classname);
    if let Some(ts) = chrono_timestamp(step.started_at) {
        case.set_timestamp(ts);
    }
    case.set_time(step.duration);
    if matches!(step.outcome, StepStatus::Passed) && !details.is_empty() {
        case.set_system_out(details);
    }
    if step.warned() {
        // A warning keeps the test case passed (JUnit has no "passed with a warning") and goes
        // to the case's <system-err>, one `WARNING: ` line each: the schema allows it on a
        // testcase (a <properties> there it does not), and third-party readers show it next to
        // the case (Jenkins' JUnit plugin, GitLab's test report, the GitHub test-report
        // actions), where a suite property is easily missed.
        let text: Vec<String> = step
            .warnings
            .iter()
            .map(|w| format!("WARNING: {}", clean(w)))
            .collect();
        case.set_system_err(text.join("\n"));
    }
    case
}

/// `at` as chrono wants it for quick-junit; `None` if chrono cannot represent it.
fn chrono_timestamp(at: OffsetDateTime) -> Option<DateTime<FixedOffset>> {
    let offset = FixedOffset::east_opt(at.offset().whole_seconds())?;
    let utc = DateTime::from_timestamp(at.unix_timestamp(), at.nanosecond())?;
    Some(utc.with_timezone(&offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_their_offset() {
        let at = time::macros::datetime!(2026-03-01 10:00:00.250 +01:00);
        let ts = chrono_timestamp(at).map(|t| t.to_rfc3339());
        assert_eq!(ts.as_deref(), Some("2026-03-01T10:00:00.250+01:00"));
    }
}
