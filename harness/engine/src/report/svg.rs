//! A self-contained SVG chart of a run's timeline: queue depth on the left axis, desired
//! replicas, running pods and nodes on the right axis, phases as dashed vertical lines, and a
//! tick on the time axis where each NodeClaim's node became Ready.

use std::fmt::Write as _;

use super::{clean_line, human_duration, load_start_offset, phase_times};
use edw_model::report::{Observation, Read, ScenarioReport};

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 600.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = WIDTH - 80.0;
const TOP: f64 = 80.0;
const BOTTOM: f64 = 450.0;
/// Where the top value tick sits: below the frame, so a series at its maximum stays visible.
const PLOT_TOP: f64 = TOP + 14.0;
/// Horizontal grid divisions, shared by both value axes so their ticks line up.
const DIVISIONS: u32 = 5;
/// Names longer than this are shortened in the title.
const MAX_NAME: usize = 60;

/// One plotted series.
struct Series {
    id: &'static str,
    label: &'static str,
    color: &'static str,
    dash: Option<&'static str>,
    width: f64,
    /// Plotted against the right axis (counts) rather than the left (queue depth).
    right_axis: bool,
    /// Drawn as steps (the value holds until the next observation).
    steps: bool,
    value: fn(&Observation) -> Option<u64>,
}

const SERIES: [Series; 4] = [
    Series {
        id: "series-queue",
        label: "queue depth (left axis)",
        color: "#1f77b4",
        dash: None,
        width: 2.5,
        right_axis: false,
        steps: false,
        value: |o| o.queue,
    },
    Series {
        id: "series-desired",
        label: "desired replicas",
        color: "#ff7f0e",
        dash: Some("7 4"),
        width: 2.5,
        right_axis: true,
        steps: true,
        value: |o| o.read(Read::Deployment).then_some(o.desired),
    },
    Series {
        id: "series-running",
        label: "running pods",
        color: "#2ca02c",
        dash: None,
        width: 1.75,
        right_axis: true,
        steps: true,
        value: |o| o.read(Read::Pods).then_some(o.running),
    },
    Series {
        id: "series-nodes",
        label: "nodes (all NodePools)",
        color: "#9467bd",
        dash: None,
        width: 2.0,
        right_axis: true,
        steps: true,
        value: |o| o.read(Read::Nodes).then_some(o.total_nodes()),
    },
];

/// How phase latencies map onto the timeline's clock (see [`super::phase_times`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartClock {
    /// When the load started, in seconds since the run started (the timeline's `t`).
    pub load_start: f64,
    /// Target seconds per timeline second: 1 for a real cluster, the clock scale on the twin.
    pub time_scale: f64,
}

impl ChartClock {
    /// The clock [`svg_chart`] uses: the load starts at [`super::load_start_offset`] and
    /// phase latencies are in timeline seconds.
    pub fn from_report(report: &ScenarioReport) -> Self {
        ChartClock {
            load_start: load_start_offset(report),
            time_scale: 1.0,
        }
    }
}

/// The run's timeline as a self-contained SVG document (no scripts, fonts or images from
/// elsewhere), 1000×600, with [`ChartClock::from_report`]: each phase marker is at the load
/// start (the `after_load` of the phase named `load start`, else 0) plus its latency.
///
/// The title names the scenario and the target and says `SIMULATED` for a simulated target.
/// Time runs along the x axis in seconds since the run started, the axis naming the clock
/// (simulated or real seconds: the target's [`edw_model::report::MeasuredClock`]); queue depth is on the left
/// axis, desired replicas, running pods and nodes (all NodePools) on the right one; each
/// phase that happened is a dashed vertical line; each NodeClaim whose node became Ready is a
/// short tick on the time axis, titled with its name and time. All names are redacted.
pub fn svg_chart(report: &ScenarioReport) -> String {
    svg_chart_with(report, ChartClock::from_report(report))
}

/// [`svg_chart`] with the phase markers placed by `clock`, for a caller that knows when the
/// load started on the timeline's clock and the target's clock scale.
pub fn svg_chart_with(report: &ScenarioReport, clock: ChartClock) -> String {
    let mut svg = String::with_capacity(16 * 1024);
    let title = title(report);
    let points: Vec<&Observation> = report.timeline.iter().filter(|o| o.t.is_finite()).collect();
    let markers = phase_times(report, clock.load_start, clock.time_scale);
    // The lifecycle is on the timeline's clock, as the observations are.
    let node_ready: Vec<(&str, f64)> = report
        .lifecycle
        .iter()
        .flat_map(|l| &l.nodeclaims)
        .filter_map(|c| Some((c.name.as_str(), c.node_ready.filter(|t| t.is_finite())?)))
        .collect();

    // x range: every observation and every marker.
    let times = points
        .iter()
        .map(|o| o.t)
        .chain(markers.iter().map(|(_, t)| *t))
        .chain(node_ready.iter().map(|(_, t)| *t));
    let (mut x_min, mut x_max) = times.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| {
        (lo.min(t), hi.max(t))
    });
    if !x_min.is_finite() || !x_max.is_finite() {
        (x_min, x_max) = (0.0, 1.0);
    }
    x_min = x_min.clamp(-1e12, 0.0);
    x_max = x_max.min(1e12);
    if x_max - x_min < 1e-9 {
        x_max = x_min + 1.0;
    }
    let x_step = nice_step((x_max - x_min) / 8.0, false);
    let x_of = |t: f64| LEFT + (t - x_min) / (x_max - x_min) * (RIGHT - LEFT);

    let max_left = points.iter().filter_map(|o| o.queue).max().unwrap_or(0);
    let max_right = points
        .iter()
        .flat_map(|o| [o.desired, o.running, o.total_nodes()])
        .max()
        .unwrap_or(0);
    let left_step = nice_step(max_left as f64 / f64::from(DIVISIONS), true);
    let right_step = nice_step(max_right as f64 / f64::from(DIVISIONS), true);
    let left_max = left_step * f64::from(DIVISIONS);
    let right_max = right_step * f64::from(DIVISIONS);
    let y_of = |v: f64, axis_max: f64| BOTTOM - v / axis_max * (BOTTOM - PLOT_TOP);

    let _ = writeln!(
        svg,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="12">
<title>{}</title>
<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##,
        esc(&title)
    );
    let simulated_fill = if report.target.simulated {
        "#b00020"
    } else {
        "#222222"
    };
    let _ = writeln!(
        svg,
        r##"<text id="title" x="{}" y="30" text-anchor="middle" font-size="18" font-weight="bold" fill="{simulated_fill}">{}</text>"##,
        WIDTH / 2.0,
        esc(&title)
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="52" text-anchor="middle" fill="#555555">{}</text>"##,
        WIDTH / 2.0,
        esc(&subtitle(report))
    );

    // Grid and value axes.
    let _ = writeln!(svg, r##"<g id="axes" stroke="#000000" stroke-width="1">"##);
    for i in 0..=DIVISIONS {
        let y = y_of(f64::from(i) * left_step, left_max);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#e3e3e3"/>"##
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{}" y1="{y:.1}" x2="{LEFT}" y2="{y:.1}"/><text x="{}" y="{:.1}" text-anchor="end" stroke="none" fill="{}">{}</text>"##,
            LEFT - 5.0,
            LEFT - 8.0,
            y + 4.0,
            SERIES[0].color,
            fmt_count(f64::from(i) * left_step)
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{RIGHT}" y1="{y:.1}" x2="{}" y2="{y:.1}"/><text x="{}" y="{:.1}" text-anchor="start" stroke="none" fill="#333333">{}</text>"##,
            RIGHT + 5.0,
            RIGHT + 8.0,
            y + 4.0,
            fmt_count(f64::from(i) * right_step)
        );
    }
    // Time ticks.
    let first_tick = (x_min / x_step).ceil();
    for k in 0..=200u32 {
        let t = (first_tick + f64::from(k)) * x_step;
        if t > x_max + x_step * 1e-6 {
            break;
        }
        let x = x_of(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{BOTTOM}" x2="{x:.1}" y2="{}"/><text x="{x:.1}" y="{}" text-anchor="middle" stroke="none" fill="#333333">{}</text>"##,
            BOTTOM + 5.0,
            BOTTOM + 20.0,
            fmt_time(t, x_step)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none"/>"##,
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(
        svg,
        r##"<text id="time-axis" x="{}" y="{}" text-anchor="middle" fill="#333333">time since the run started ({})</text>"##,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 42.0,
        esc(report.target.clock.describe())
    );
    let mid_y = (TOP + BOTTOM) / 2.0;
    let _ = writeln!(
        svg,
        r##"<text x="22" y="{mid_y}" text-anchor="middle" fill="{}" transform="rotate(-90 22 {mid_y})">queue depth (messages)</text>"##,
        SERIES[0].color
    );
    let rx = WIDTH - 22.0;
    let _ = writeln!(
        svg,
        r##"<text x="{rx}" y="{mid_y}" text-anchor="middle" fill="#333333" transform="rotate(90 {rx} {mid_y})">replicas / pods / nodes</text>"##
    );

    // Phase markers, labels hanging from the top edge, nudged apart when close.
    let _ = writeln!(svg, r##"<g id="phases">"##);
    let mut sorted = markers.clone();
    sorted.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut last_label_x = f64::NEG_INFINITY;
    for (phase, t) in &sorted {
        let x = x_of(*t);
        // Rotated text extends to the left of its anchor: keep it off the left axis.
        let mut label_x = if x - 16.0 < LEFT { x + 13.0 } else { x - 4.0 };
        if label_x - last_label_x < 14.0 {
            label_x = last_label_x + 14.0;
        }
        last_label_x = label_x;
        let after = phase.after_load.unwrap_or(0.0);
        let label = format!(
            "{} (+{after:.1} {})",
            clean_line(&phase.name),
            report.target.clock.unit()
        );
        let _ = writeln!(
            svg,
            r##"<line class="phase-marker" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="#555555" stroke-width="1" stroke-dasharray="5 4"/><text x="{label_x:.1}" y="{}" text-anchor="end" font-size="11" fill="#555555" transform="rotate(-90 {label_x:.1} {})">{}</text>"##,
            TOP + 6.0,
            TOP + 6.0,
            esc(&label)
        );
    }
    let _ = writeln!(svg, "</g>");

    // Node Ready ticks, standing on the time axis, each titled with its NodeClaim.
    let _ = writeln!(svg, r##"<g id="node-ready">"##);
    for (claim, t) in &node_ready {
        let x = x_of(*t);
        let _ = writeln!(
            svg,
            r##"<line class="node-ready-marker" x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{BOTTOM}" stroke="{}" stroke-width="2"><title>{}</title></line>"##,
            BOTTOM - 10.0,
            SERIES[3].color,
            esc(&format!(
                "NodeClaim {}: node Ready at {t:.1} {}",
                clean_line(claim),
                report.target.clock.unit()
            ))
        );
    }
    let _ = writeln!(svg, "</g>");

    // Series.
    let _ = writeln!(svg, r##"<g id="series" fill="none">"##);
    for series in &SERIES {
        let axis_max = if series.right_axis {
            right_max
        } else {
            left_max
        };
        let mut pts = String::new();
        let mut prev_y: Option<f64> = None;
        for o in &points {
            let Some(v) = (series.value)(o) else { continue };
            let (x, y) = (x_of(o.t), y_of(v as f64, axis_max));
            if series.steps {
                if let Some(py) = prev_y {
                    let _ = write!(pts, "{x:.1},{py:.1} ");
                }
            }
            let _ = write!(pts, "{x:.1},{y:.1} ");
            prev_y = Some(y);
        }
        let dash = series
            .dash
            .map(|d| format!(r##" stroke-dasharray="{d}""##))
            .unwrap_or_default();
        let _ = writeln!(
            svg,
            r##"<polyline id="{}" points="{}" stroke="{}" stroke-width="{}" stroke-linejoin="round"{dash}/>"##,
            series.id,
            pts.trim_end(),
            series.color,
            series.width
        );
    }
    let _ = writeln!(svg, "</g>");

    if points.is_empty() {
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" font-size="16" fill="#888888">no observations recorded</text>"##,
            (LEFT + RIGHT) / 2.0,
            mid_y
        );
    }

    // Legend.
    let _ = writeln!(svg, r##"<g id="legend">"##);
    const PHASE_LABEL: &str = "phase (after load start)";
    let item_width = |label: &str| 32.0 + label.chars().count() as f64 * 6.6 + 22.0;
    let legend_width: f64 =
        SERIES.iter().map(|s| item_width(s.label)).sum::<f64>() + item_width(PHASE_LABEL) - 22.0;
    let mut x = ((WIDTH - legend_width) / 2.0).max(4.0);
    let y = BOTTOM + 75.0;
    for series in &SERIES {
        let dash = series
            .dash
            .map(|d| format!(r##" stroke-dasharray="{d}""##))
            .unwrap_or_default();
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="{}"{dash}/><text x="{}" y="{y}" fill="#222222">{}</text>"##,
            y - 4.0,
            x + 26.0,
            y - 4.0,
            series.color,
            series.width,
            x + 32.0,
            series.label
        );
        x += item_width(series.label);
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{x}" y1="{}" x2="{}" y2="{}" stroke="#555555" stroke-width="1" stroke-dasharray="5 4"/><text x="{}" y="{y}" fill="#222222">{PHASE_LABEL}</text>"##,
        y - 4.0,
        x + 26.0,
        y - 4.0,
        x + 32.0
    );
    let _ = writeln!(svg, "</g>");

    let missing: Vec<String> = report
        .phases
        .iter()
        .filter(|p| !p.after_load.is_some_and(f64::is_finite))
        .map(|p| clean_line(&p.name))
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="#b00020">did not happen: {}</text>"##,
            WIDTH / 2.0,
            BOTTOM + 110.0,
            esc(&missing.join(", "))
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// `<scenario> on <target>`, with the simulation stated.
fn title(report: &ScenarioReport) -> String {
    let scenario = shorten(&clean_line(&report.scenario), MAX_NAME);
    let target = shorten(&clean_line(&report.target.name), MAX_NAME);
    if report.target.simulated {
        format!("{scenario} on {target} — SIMULATED (twin), not a cluster result")
    } else {
        format!("{scenario} on {target}")
    }
}

fn subtitle(report: &ScenarioReport) -> String {
    let started = report
        .started_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "?".to_owned());
    let verdict = if report.passed() { "passed" } else { "FAILED" };
    format!(
        "{} · started {started} · {} ({}) · {verdict}",
        shorten(&clean_line(&report.target.description), 2 * MAX_NAME),
        human_duration(report.duration),
        edw_model::report::STEP_CLOCK
    )
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The smallest of 1, 2, 5 × 10^k that is at least `raw` (at least 1 for counts).
fn nice_step(raw: f64, integer: bool) -> f64 {
    let floor = if integer { 1.0 } else { 1e-3 };
    let raw = if raw.is_finite() {
        raw.max(floor)
    } else {
        floor
    };
    let mut magnitude = 10f64.powf(raw.log10().floor());
    if !magnitude.is_finite() || magnitude <= 0.0 {
        magnitude = floor;
    }
    for m in [1.0, 2.0, 5.0, 10.0] {
        let step = m * magnitude;
        if step >= raw * (1.0 - 1e-9) {
            return step;
        }
    }
    10.0 * magnitude
}

fn fmt_count(v: f64) -> String {
    format!("{}", v.round() as i64)
}

fn fmt_time(t: f64, step: f64) -> String {
    let t = if t.abs() < step * 1e-6 { 0.0 } else { t };
    if step >= 1.0 {
        format!("{t:.0}")
    } else if step >= 0.1 {
        format!("{t:.1}")
    } else {
        format!("{t:.2}")
    }
}

/// Text escaped for XML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.0, true), 1.0);
        assert_eq!(nice_step(1.4, true), 2.0);
        assert_eq!(nice_step(3.0, true), 5.0);
        assert_eq!(nice_step(200.0, true), 200.0);
        assert_eq!(nice_step(201.0, true), 500.0);
        assert_eq!(nice_step(0.03, false), 0.05);
        assert_eq!(nice_step(f64::NAN, false), 1e-3);
        assert_eq!(nice_step(f64::INFINITY, true), 1.0);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(esc(r##"<a & "b">"##), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
