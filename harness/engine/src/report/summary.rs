//! A Markdown summary of scenario runs, for a GitHub step summary (`$GITHUB_STEP_SUMMARY`).

use std::fmt::Write as _;

use super::latency::{drain_rate, scale_in};
use super::{clean, clean_line, human_duration, phase_value};
use edw_model::finding::{Finding, Severity};
use edw_model::report::{ScenarioReport, StepReport, StepStatus, STEP_CLOCK};

/// The line that marks a simulated run.
pub const SIMULATED_LINE: &str = "SIMULATED (twin) — not a cluster result";

/// Markdown for `reports`: per run a heading with the scenario, the target and the verdict
/// (⚠️ "passed with N warning(s)" when a passed step warned), the [`SIMULATED_LINE`] for a
/// simulated target, the warnings (each with its step) in a callout, a table of the steps
/// (cleanup included) with ✅/⚠️/❌/⏭, their durations (real time) and messages, a table of the
/// configuration findings (when there are any), a table of phase latencies (headed by the
/// clock they were measured on), each phase predicted vs observed (the model, the twin on
/// its virtual clock, the observation, the difference and its verdict), the latencies (each of [`edw_model::lifecycle::Lifecycle::latencies`]
/// with its count, p50, p90, p99 and max, the drain rate per running pod and the scale-in
/// delay, or why a figure was not measured), the peak figures of the timeline, the Karpenter nodes by VM
/// size with node-hours and an estimated cost (when the target has Karpenter) and, when
/// present, the diagnostics in a collapsed `<details>` block. Everything is redacted.
pub fn summary_markdown(reports: &[ScenarioReport]) -> String {
    let mut md = String::new();
    if reports.is_empty() {
        md.push_str("_No scenario ran._\n");
    }
    for (i, report) in reports.iter().enumerate() {
        if i > 0 {
            md.push('\n');
        }
        scenario(&mut md, report);
    }
    md
}

fn scenario(md: &mut String, report: &ScenarioReport) {
    let warnings = report.warnings();
    let verdict = match (report.passed(), warnings.len()) {
        (false, _) => "❌ failed".to_owned(),
        (true, 0) => "✅ passed".to_owned(),
        (true, n) => format!("⚠️ passed with {n} warning(s)"),
    };
    let _ = writeln!(
        md,
        "## {} on `{}` — {verdict}\n",
        inline(&clean_line(&report.scenario)),
        code(&clean_line(&report.target.name)),
    );
    if report.target.simulated {
        let _ = writeln!(md, "> [!WARNING]\n> **{SIMULATED_LINE}**\n");
    }
    if !warnings.is_empty() {
        let _ = writeln!(
            md,
            "> [!WARNING]\n> **{} warning(s)** — the steps passed, but:",
            warnings.len()
        );
        for (step, warning) in &warnings {
            let _ = writeln!(
                md,
                "> - **{}**: {}",
                inline(&clean_line(step)),
                inline(&clean_line(warning))
            );
        }
        md.push('\n');
    }
    let started = report
        .started_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "?".to_owned());
    let _ = writeln!(
        md,
        "**Target:** `{}` — {}  \n**Started:** {started} · **Duration:** {} ({STEP_CLOCK})  \n**Clock:** step durations are {STEP_CLOCK}; the timeline, phases and node-hours are {}\n",
        code(&clean_line(&report.target.name)),
        inline(&clean_line(&report.target.description)),
        human_duration(report.duration),
        report.target.clock.describe(),
    );

    let _ = writeln!(
        md,
        "### Steps\n\n| Step | Result | Duration ({STEP_CLOCK}) | Message |\n|---|---|---|---|"
    );
    for step in &report.steps {
        step_row(md, step, "");
    }
    for step in &report.cleanup {
        step_row(md, step, "cleanup: ");
    }
    if report.steps.is_empty() && report.cleanup.is_empty() {
        md.push_str("| _no steps_ | | | |\n");
    }

    findings(md, &report.findings);

    if !report.phases.is_empty() {
        let _ = writeln!(
            md,
            "\n### Phase latencies\n\n| Phase | After load start, in {} |\n|---|---:|",
            report.target.clock.describe()
        );
        for phase in &report.phases {
            let _ = writeln!(
                md,
                "| {} | {} |",
                cell(&clean_line(&phase.name)),
                phase_value(phase)
            );
        }
    }

    prediction(md, report);

    latencies(md, report);

    md.push_str("\n### Peaks\n\n");
    if report.timeline.is_empty() {
        md.push_str("_No observations were recorded._\n");
    } else {
        let max = |f: fn(&edw_model::report::Observation) -> Option<u64>| {
            report
                .timeline
                .iter()
                .filter_map(f)
                .max()
                .map_or_else(|| "n/a".to_owned(), |v| v.to_string())
        };
        let _ = writeln!(
            md,
            "| Max desired replicas | Max running pods | Max nodes | Max queue depth |\n|---:|---:|---:|---:|\n| {} | {} | {} | {} |",
            max(|o| Some(o.desired)),
            max(|o| Some(o.running)),
            max(|o| Some(o.total_nodes())),
            max(|o| o.queue),
        );
        let times = report
            .timeline
            .iter()
            .map(|o| o.t)
            .filter(|t| t.is_finite());
        let first = times.clone().fold(f64::INFINITY, f64::min);
        let last = times.fold(f64::NEG_INFINITY, f64::max);
        if first <= last {
            let _ = writeln!(
                md,
                "\n_{} observations, from {first:.0} to {last:.0} {} after the run started._",
                report.timeline.len(),
                report.target.clock.unit()
            );
        } else {
            let _ = writeln!(md, "\n_{} observations._", report.timeline.len());
        }
    }

    if let Some(cost) = &report.cost {
        nodes_and_cost(md, report, cost);
    }

    if let Some(diagnostics) = &report.diagnostics {
        let text = clean(diagnostics);
        let fence = "`".repeat(longest_backtick_run(&text).max(2) + 1);
        let _ = writeln!(
            md,
            "\n<details>\n<summary>Diagnostics</summary>\n\n{fence}text\n{}\n{fence}\n\n</details>",
            text.trim_end_matches('\n')
        );
    }
}

/// Each phase's model expectation, the twin's prediction and the observation, with the
/// difference and its verdict against the stated tolerance.
fn prediction(md: &mut String, report: &ScenarioReport) {
    let Some(p) = &report.prediction else {
        return;
    };
    let seconds = |t: Option<f64>| t.map_or("—".to_owned(), |t| format!("{t:.1}"));
    let _ = writeln!(
        md,
        "\n### Predicted vs observed\n\nThe twin ran this run's settings and load on its virtual clock ({}) with {}. Load: {}. Observed in {}, until {:.1} s after the load start. Tolerance: {}. Each phase is judged on its stage (the time from the phase it follows), so a late stage shows where and the phases after it are not blamed for it. The model column is the specification's rules (upper estimates for a burst).\n",
        inline(&clean_line(&p.predicted_clock)),
        inline(&clean_line(&p.params)),
        inline(&clean_line(&p.load)),
        inline(&clean_line(&p.observed_clock)),
        p.observed_until,
        inline(&p.tolerance.describe()),
    );
    if let Some(caveat) = &p.caveat {
        let _ = writeln!(md, "Expected to differ: {}.\n", inline(&clean_line(caveat)));
    }
    md.push_str("| Phase | Model (s) | Twin prediction (s) | Observed (s) | Difference (s) | Stage from | Stage predicted → observed (s) | Verdict (on the stage) |\n|---|---:|---:|---:|---:|---|---:|---|\n");
    for row in &p.phases {
        let verdict = if row.verdict.is_deviation() {
            format!("**{}**", row.verdict.as_str())
        } else {
            row.verdict.as_str().to_owned()
        };
        let stage = match (
            row.predicted_stage,
            row.observed_stage,
            row.stage_difference,
        ) {
            (Some(p), Some(o), Some(d)) => format!("{p:.1} → {o:.1} ({d:+.1})"),
            _ => "—".to_owned(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {stage} | {verdict} |",
            cell(&clean_line(&row.phase)),
            seconds(row.model),
            seconds(row.predicted),
            seconds(row.observed),
            row.difference
                .map_or("—".to_owned(), |d| format!("{d:+.1}")),
            cell(&clean_line(&row.since)),
        );
    }
}

/// The lifecycle's latency distributions, the drain rate per running pod and the scale-in
/// delay, each on the run's clock; what was not measured says why.
fn latencies(md: &mut String, report: &ScenarioReport) {
    let unit = report.target.clock.unit();
    md.push_str("\n### Latencies\n\n");
    match &report.lifecycle {
        None => md.push_str(
            "_Not measured: no lifecycle was recorded (the run had no observation recorder)._\n",
        ),
        Some(lifecycle) => {
            let latencies = lifecycle.latencies();
            if latencies.is_empty() {
                md.push_str("_Not measured: no pod or NodeClaim was seen passing two stages._\n");
            } else {
                let _ = writeln!(
                    md,
                    "| Latency | Count | p50 ({unit}) | p90 ({unit}) | p99 ({unit}) | max ({unit}) |\n|---|---:|---:|---:|---:|---:|"
                );
                for latency in &latencies {
                    let q = &latency.quantiles;
                    let _ = writeln!(
                        md,
                        "| {} (`{}`) | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                        cell(&clean_line(&latency.name)),
                        code(&clean_line(&latency.key)),
                        q.count,
                        q.p50,
                        q.p90,
                        q.p99,
                        q.max
                    );
                }
                md.push_str(
                    "\n_Each stage is when the recorder first saw it: late by at most its sampling delay._\n",
                );
            }
        }
    }
    match drain_rate(report) {
        Ok(rate) => {
            let _ = writeln!(
                md,
                "\n**Drain rate per running pod:** {:.3} messages per running-pod-second ({unit}): {} messages {} ÷ {:.1} running-pod-seconds between the load start ({:.1}) and the queue first reading 0 ({:.1}).",
                rate.per_pod_second(),
                rate.messages,
                rate.counted,
                rate.pod_seconds,
                rate.from,
                rate.until
            );
        }
        Err(why) => {
            let _ = writeln!(
                md,
                "\n**Drain rate per running pod:** not measured: {}.",
                inline(&clean_line(&why))
            );
        }
    }
    match scale_in(report) {
        Ok(delay) => {
            let stage = |name: &str, at: &Result<f64, String>| match at {
                Ok(t) => format!("{name} +{:.1} {unit}", t - delay.drained),
                Err(why) => format!("{name} not measured ({})", inline(&clean_line(why))),
            };
            let _ = writeln!(
                md,
                "\n**Scale-in delay** (from the queue first reading 0 at {:.1} {unit}): {} → {}.",
                delay.drained,
                stage("KEDA deactivation", &delay.deactivation),
                stage("last NodeClaim deleted", &delay.last_claim_deleted)
            );
        }
        Err(why) => {
            let _ = writeln!(
                md,
                "\n**Scale-in delay:** not measured: {}.",
                inline(&clean_line(&why))
            );
        }
    }
}

/// The Karpenter nodes by VM size, their node-hours on the run's clock and their cost at the
/// snapshot's prices; a simulated estimate says so.
fn nodes_and_cost(md: &mut String, report: &ScenarioReport, cost: &edw_twin::cost::CostEstimate) {
    let _ = writeln!(
        md,
        "\n### Nodes by size and estimated cost\n\n| VM size | NodeClaims | Node-hours ({}) | USD per hour ({} snapshot of {}) | Estimated USD |\n|---|---:|---:|---:|---:|",
        report.target.clock.unit(),
        cost.price_region,
        cost.price_date
    );
    for size in &cost.sizes {
        let price = match size.usd_per_hour {
            Some(p) if size.price_quoted => format!("{p}"),
            Some(p) => format!("{p} (proportional to vCPU, not quoted)"),
            None => format!("no price for {}", size.size),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.3} | {} | {} |",
            cell(&clean_line(&size.size)),
            size.nodes,
            size.node_hours,
            cell(&clean_line(&price)),
            size.usd.map_or("n/a".to_owned(), |u| format!("{u:.4}")),
        );
    }
    if cost.sizes.is_empty() {
        md.push_str("| _no Karpenter NodeClaim was seen_ | 0 | 0.000 | | 0.0000 |\n");
    }
    let simulated = if report.target.simulated {
        "**SIMULATED estimate** (the twin chose the sizes): "
    } else {
        ""
    };
    let _ = writeln!(
        md,
        "\n{simulated}**Total:** {}. Node-hours are {} from when the run first saw each NodeClaim of its NodePool until it saw it gone; {}.",
        inline(&clean_line(&cost.describe_total())),
        report.target.clock.describe(),
        inline(&clean_line(&cost.describe_prices()))
    );
}

fn findings(md: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    md.push_str(
        "\n### Findings\n\n| Severity | Finding | Subject | Message | Consequence | Fix |\n|---|---|---|---|---|---|\n",
    );
    for f in findings {
        let severity = match f.severity {
            Severity::Risk => "❗ risk",
            Severity::Warning => "⚠️ warning",
            Severity::Info => "ℹ️ info",
        };
        let _ = writeln!(
            md,
            "| {severity} | `{}` | {} | {} | {} | {} |",
            code(&clean_line(&f.id)).replace('|', "\\|"),
            cell(&clean(&f.subject)),
            cell(&clean(&f.message)),
            cell(&clean(&f.consequence)),
            cell(&clean(&f.fix)),
        );
    }
}

fn step_row(md: &mut String, step: &StepReport, prefix: &str) {
    let (result, message) = match &step.outcome {
        StepStatus::Passed if step.warned() => (
            "⚠️ passed with warning",
            cell(&clean(&step.warnings.join("\n"))),
        ),
        StepStatus::Passed => ("✅ passed", String::new()),
        StepStatus::Failed { message } => ("❌ failed", cell(&clean(message))),
        StepStatus::Skipped { reason } => ("⏭ skipped", cell(&clean(reason))),
    };
    let _ = writeln!(
        md,
        "| {}{} | {result} | {} | {message} |",
        prefix,
        cell(&clean_line(&step.name)),
        human_duration(step.duration),
    );
}

/// Text for a table cell: HTML and the cell separator escaped, lines joined with `<br>`.
fn cell(text: &str) -> String {
    text.trim()
        .lines()
        .map(inline)
        .collect::<Vec<_>>()
        .join("<br>")
        .replace('|', "\\|")
}

/// Text for running Markdown: the characters that would become HTML or emphasis, links or
/// code escaped.
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '*' | '_' | '[' | ']' | '`' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text for an inline code span: backticks would end it.
fn code(text: &str) -> String {
    text.replace('`', "'")
}

fn longest_backtick_run(text: &str) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_stay_in_their_column() {
        assert_eq!(cell("a | b\n<c>\n"), "a \\| b<br>&lt;c&gt;");
        assert_eq!(inline("*a_b* [c](d) `e`"), "\\*a\\_b\\* \\[c\\](d) \\`e\\`");
        assert_eq!(longest_backtick_run("a ``` b ` c"), 3);
    }
}
