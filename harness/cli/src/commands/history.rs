//! `edw history add RUN_DIR…` appends each run's outcome, phase times and latency quantiles
//! to an append-only history (one JSON line per run, under an exclusive lock so concurrent adds
//! lose nothing); `edw history report` writes history.md and history.svg: each metric's nights
//! against the rolling median of the nights before, regressions flagged by the stated rule.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::args::{HistoryAddArgs, HistoryCommand, HistoryReportArgs};
use crate::{exit, Failure};
use edw_model::gate::PredictionPolicy;
use edw_model::history::{self, HistoryEntry, Rule, Series, HISTORY_SCHEMA};
use edw_model::lifecycle::Lifecycle;

pub fn run(command: &HistoryCommand) -> Result<u8, Failure> {
    match command {
        HistoryCommand::Add(args) => add(args),
        HistoryCommand::Report(args) => report(args),
    }
}

/// What a run folder could not give.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct RunDirError {
    pub file: String,
    pub reason: String,
}

/// `phase.first_scale_out` for "first scale-out".
fn metric_name(phase: &str) -> String {
    phase
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .to_ascii_lowercase()
}

/// A run's history line from its report folder: timeline.json (required), lifecycle.json
/// (latencies, when the run recorded one).
pub fn entry_of(run_dir: &Path) -> Result<HistoryEntry, RunDirError> {
    let file = run_dir.join("timeline.json");
    let fail = |file: &Path, reason: String| RunDirError {
        file: file.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(&file).map_err(|e| fail(&file, e.to_string()))?;
    let timeline: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(&file, e.to_string()))?;
    let field = |pointer: &str| {
        timeline.pointer(pointer).ok_or_else(|| {
            fail(
                &file,
                format!("no {pointer} (not an edw run's timeline.json)"),
            )
        })
    };
    let text_of = |pointer: &str| -> Result<String, RunDirError> {
        field(pointer)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| fail(&file, format!("{pointer} is not a string")))
    };
    let mut metrics = BTreeMap::new();
    for phase in field("/phases")?.as_array().into_iter().flatten() {
        let (Some(name), Some(seconds)) = (
            phase.get("name").and_then(|n| n.as_str()),
            phase.get("after_load_seconds").and_then(|s| s.as_f64()),
        ) else {
            continue;
        };
        if name != "load start" {
            metrics.insert(format!("phase.{}", metric_name(name)), seconds);
        }
    }
    let lifecycle_file = run_dir.join("lifecycle.json");
    if lifecycle_file.exists() {
        let text = std::fs::read_to_string(&lifecycle_file)
            .map_err(|e| fail(&lifecycle_file, e.to_string()))?;
        let lifecycle: Lifecycle =
            serde_json::from_str(&text).map_err(|e| fail(&lifecycle_file, e.to_string()))?;
        for latency in lifecycle.latencies() {
            metrics.insert(
                format!("latency.{}.p50", latency.key),
                latency.quantiles.p50,
            );
            metrics.insert(
                format!("latency.{}.p90", latency.key),
                latency.quantiles.p90,
            );
        }
    }
    Ok(HistoryEntry {
        schema: HISTORY_SCHEMA,
        scenario: text_of("/scenario")?,
        target: text_of("/target/name")?,
        simulated: field("/target/simulated")?.as_bool().unwrap_or(true),
        started_at: text_of("/started_at")?,
        passed: field("/passed")?.as_bool().unwrap_or(false),
        duration_seconds: field("/duration_seconds")?.as_f64().unwrap_or(0.0),
        run_dir: run_dir.display().to_string(),
        metrics,
    })
}

/// Appends `entries` to `store` as whole lines under an exclusive lock: concurrent adds wait
/// for each other and never interleave; earlier lines are never rewritten.
fn append(store: &Path, entries: &[HistoryEntry]) -> std::io::Result<()> {
    if let Some(parent) = store.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(store)?;
    file.lock()?;
    let mut text = String::new();
    for entry in entries {
        text.push_str(&serde_json::to_string(entry).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_data());
    file.unlock()?;
    written
}

fn add(args: &HistoryAddArgs) -> Result<u8, Failure> {
    let mut entries = Vec::new();
    for dir in &args.run_dirs {
        entries.push(entry_of(dir).map_err(Failure::usage)?);
    }
    append(&args.store, &entries).map_err(|e| {
        Failure::environment(anyhow::anyhow!("history {}: {e}", args.store.display()))
    })?;
    for entry in &entries {
        println!(
            "added {} on {}{} ({}, {} metrics) from {} to {}",
            entry.scenario,
            entry.target,
            if entry.simulated { " [SIMULATED]" } else { "" },
            if entry.passed { "passed" } else { "failed" },
            entry.metrics.len(),
            entry.run_dir,
            args.store.display()
        );
    }
    Ok(exit::OK)
}

fn report(args: &HistoryReportArgs) -> Result<u8, Failure> {
    let text = std::fs::read_to_string(&args.store)
        .map_err(|e| Failure::usage(anyhow::anyhow!("history {}: {e}", args.store.display())))?;
    let (entries, bad) = history::parse(&text);
    for line in &bad {
        eprintln!(
            "warning: {} line {}: not read ({}); the other lines are",
            args.store.display(),
            line.line,
            line.reason
        );
    }
    let policy = match &args.profile {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(anyhow::anyhow!("profile {}: {e}", path.display())))?;
            super::gate::read_profile(&path.display().to_string(), &text)
                .map_err(Failure::usage)?
                .0
                .regressions
        }
        None => super::gate::shipped_profile().regressions,
    };
    let rule = Rule {
        window: args.window,
        ..Rule::default()
    };
    let all = history::series(&entries, &rule);
    // Only the runs of the latest night of each scenario on each target decide the exit (the
    // gate's and the trials'; a metric that is missing from them, e.g. a phase never reached,
    // is not a night of that metric: its run failed and says so in its own reports).
    let latest = history::latest_nights(&entries);
    let latest_regressions: Vec<(&Series, &history::Point)> = all
        .iter()
        .flat_map(|s| {
            let night = latest.get(&(s.scenario.clone(), s.target.clone()));
            s.points
                .iter()
                .filter(move |p| Some(&p.night) == night && p.regression)
                .map(move |p| (s, p))
        })
        .collect();
    std::fs::create_dir_all(&args.out).map_err(Failure::environment)?;
    let markdown = history_markdown(&args.store, &entries, &bad, &all, &rule);
    std::fs::write(args.out.join("history.md"), markdown).map_err(Failure::environment)?;
    std::fs::write(args.out.join("history.svg"), history_svg(&all))
        .map_err(Failure::environment)?;
    println!(
        "{} run(s), {} series; rule: {}",
        entries.len(),
        all.len(),
        rule.describe()
    );
    for (series, point) in &latest_regressions {
        let (median, mad) = point.baseline.unwrap_or_default();
        println!(
            "{}: {} on {} {}: {:.1} s against a median of {median:.1} s (MAD {mad:.1} s), {}",
            match policy {
                PredictionPolicy::Fail => "REGRESSION",
                PredictionPolicy::Warn => "WARNING regression",
            },
            series.metric,
            series.scenario,
            series.target,
            point.value,
            point.started_at
        );
    }
    println!(
        "written: {} and {}",
        args.out.join("history.md").display(),
        args.out.join("history.svg").display()
    );
    Ok(
        if policy == PredictionPolicy::Fail && !latest_regressions.is_empty() {
            exit::CHECK_FAILED
        } else {
            exit::OK
        },
    )
}

fn target_label(series: &Series) -> String {
    format!("{} on {}", series.scenario, series.target)
}

fn history_markdown(
    store: &Path,
    entries: &[(usize, HistoryEntry)],
    bad: &[history::BadLine],
    all: &[Series],
    rule: &Rule,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Run history\n");
    let _ = writeln!(
        md,
        "{} run(s) from `{}`. A night is flagged when it is {}.\n",
        entries.len(),
        store.display(),
        rule.describe()
    );
    for line in bad {
        let _ = writeln!(md, "- ⚠️ line {} not read: {}", line.line, line.reason);
    }
    let flagged: Vec<String> = all
        .iter()
        .flat_map(|s| {
            s.points.iter().filter(|p| p.regression).map(move |p| {
                format!(
                    "- 🔺 {} {}: {} ({:.1} s)",
                    target_label(s),
                    s.metric,
                    p.started_at,
                    p.value
                )
            })
        })
        .collect();
    let _ = writeln!(md, "\n## Regressions\n");
    if flagged.is_empty() {
        let _ = writeln!(md, "none");
    }
    for line in flagged {
        let _ = writeln!(md, "{line}");
    }
    for series in all {
        let _ = writeln!(
            md,
            "\n## {} — {}\n\n| night | seconds | median before | MAD | |\n|---|---|---|---|---|",
            target_label(series),
            series.metric
        );
        for point in &series.points {
            let (median, mad) = point
                .baseline
                .map_or(("–".to_owned(), "–".to_owned()), |(m, d)| {
                    (format!("{m:.1}"), format!("{d:.1}"))
                });
            let _ = writeln!(
                md,
                "| {} | {:.1} | {median} | {mad} | {} |",
                point.started_at,
                point.value,
                if point.regression {
                    "🔺 regression"
                } else {
                    ""
                }
            );
        }
    }
    md
}

/// One small chart per series: the nights' values, the rolling median (dashed), regressions in
/// red.
fn history_svg(all: &[Series]) -> String {
    let (w, h, pad) = (360.0_f64, 130.0_f64, 28.0_f64);
    let columns = 3usize;
    let rows = all.len().div_ceil(columns).max(1);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"10\">\n",
        w * columns as f64,
        h * rows as f64
    );
    for (i, series) in all.iter().enumerate() {
        let (x0, y0) = ((i % columns) as f64 * w, (i / columns) as f64 * h);
        let values: Vec<f64> = series.points.iter().map(|p| p.value).collect();
        let top = values
            .iter()
            .chain(
                series
                    .points
                    .iter()
                    .filter_map(|p| p.baseline.as_ref().map(|b| &b.0)),
            )
            .copied()
            .fold(1e-9, f64::max);
        let n = values.len().max(2) as f64 - 1.0;
        let x = |k: usize| x0 + pad + (w - 2.0 * pad) * k as f64 / n;
        let y = |v: f64| y0 + h - pad + -(h - 2.0 * pad) * v / top;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\">{} {} {} (max {top:.0} s)</text>",
            x0 + pad,
            y0 + 14.0,
            xml(&series.scenario),
            xml(&series.target),
            xml(&series.metric)
        );
        let line: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(k, v)| format!("{:.1},{:.1}", x(k), y(*v)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"#1f77b4\" points=\"{}\"/>",
            line.join(" ")
        );
        let medians: Vec<String> = series
            .points
            .iter()
            .enumerate()
            .filter_map(|(k, p)| p.baseline.map(|(m, _)| format!("{:.1},{:.1}", x(k), y(m))))
            .collect();
        if medians.len() > 1 {
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"#888\" stroke-dasharray=\"4 3\" points=\"{}\"/>",
                medians.join(" ")
            );
        }
        for (k, point) in series.points.iter().enumerate() {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{}\" fill=\"{}\"><title>{} {:.1} s{}</title></circle>",
                x(k),
                y(point.value),
                if point.regression { 4 } else { 2 },
                if point.regression { "#d62728" } else { "#1f77b4" },
                xml(&point.started_at),
                point.value,
                if point.regression { " regression" } else { "" }
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
