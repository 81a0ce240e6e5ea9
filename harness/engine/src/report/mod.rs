//! Report writers for scenario runs: JUnit XML, a JSON timeline, the JSON lifecycle (when each
//! pod and NodeClaim passed each stage), an SVG chart of the timeline and a Markdown summary
//! (for a GitHub step summary), all redacted.
//!
//! Every text that comes from a run (messages, details, properties, diagnostics, names)
//! passes through [`crate::secrets::redact`] before it is written, so a report never
//! carries an account key, a SAS signature, a token or a registered [`crate::secrets::Secret`].

mod junit;
mod latency;
mod lifecycle;
mod summary;
mod svg;
mod timeline;

use std::io;
use std::path::{Path, PathBuf};

use crate::secrets;
use edw_model::report::{Phase, ScenarioReport};

pub use self::junit::junit;
pub use self::lifecycle::lifecycle_json;
pub use self::summary::summary_markdown;
pub use self::svg::{svg_chart, svg_chart_with, ChartClock};
pub use self::timeline::timeline_json;

/// File names [`write_all`] writes into its directory.
pub const JUNIT_FILE: &str = "junit.xml";
/// See [`JUNIT_FILE`].
pub const TIMELINE_JSON_FILE: &str = "timeline.json";
/// See [`JUNIT_FILE`].
pub const TIMELINE_SVG_FILE: &str = "timeline.svg";
/// See [`JUNIT_FILE`].
pub const SUMMARY_FILE: &str = "summary.md";
/// See [`JUNIT_FILE`]; written only when the run recorded a lifecycle.
pub const LIFECYCLE_JSON_FILE: &str = "lifecycle.json";

/// The name of the phase that marks the start of the load (see [`load_start_offset`]).
pub const LOAD_START_PHASE: &str = "load start";

/// Why a report could not be produced or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// quick-junit could not serialize the JUnit report.
    #[error("could not serialize the JUnit XML")]
    Junit(#[source] quick_junit::SerializeError),
    /// The report directory could not be created.
    #[error("could not create the report directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The content of one report file could not be produced.
    #[error("could not render {}", path.display())]
    Render {
        path: PathBuf,
        #[source]
        source: Box<ReportError>,
    },
    /// One report file could not be written.
    #[error("could not write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The files [`write_all`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenReports {
    /// `junit.xml`: one testsuite, one testcase per step and per cleanup step.
    pub junit: PathBuf,
    /// `timeline.json`: scenario, target, phases and the observed timeline.
    pub timeline_json: PathBuf,
    /// `timeline.svg`: the timeline as a chart.
    pub timeline_svg: PathBuf,
    /// `summary.md`: the Markdown summary.
    pub summary: PathBuf,
    /// `lifecycle.json`: each pod's and NodeClaim's stages and the replica changes, when the
    /// run recorded them.
    pub lifecycle_json: Option<PathBuf>,
}

impl WrittenReports {
    /// Every written file, in the order they were written.
    pub fn paths(&self) -> Vec<&Path> {
        let mut paths: Vec<&Path> = vec![
            &self.junit,
            &self.timeline_json,
            &self.timeline_svg,
            &self.summary,
        ];
        paths.extend(self.lifecycle_json.as_deref());
        paths
    }
}

/// Creates `dir` (and its parents) and writes `junit.xml`, `timeline.json`, `timeline.svg`,
/// `summary.md` and, when the run recorded a lifecycle, `lifecycle.json` for `report` into it.
pub fn write_all(report: &ScenarioReport, dir: &Path) -> Result<WrittenReports, ReportError> {
    write_all_with(report, dir, ChartClock::from_report(report))
}

/// [`write_all`] with the chart's phase markers placed by `clock` (see [`svg_chart_with`]).
pub fn write_all_with(
    report: &ScenarioReport,
    dir: &Path,
    clock: ChartClock,
) -> Result<WrittenReports, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let written = WrittenReports {
        junit: dir.join(JUNIT_FILE),
        timeline_json: dir.join(TIMELINE_JSON_FILE),
        timeline_svg: dir.join(TIMELINE_SVG_FILE),
        summary: dir.join(SUMMARY_FILE),
        lifecycle_json: report
            .lifecycle
            .as_ref()
            .map(|_| dir.join(LIFECYCLE_JSON_FILE)),
    };
    let xml = junit(std::slice::from_ref(report)).map_err(|source| ReportError::Render {
        path: written.junit.clone(),
        source: Box::new(source),
    })?;
    write_file(&written.junit, &xml)?;
    write_file(&written.timeline_json, &timeline_json(report))?;
    write_file(&written.timeline_svg, &svg_chart_with(report, clock))?;
    write_file(
        &written.summary,
        &summary_markdown(std::slice::from_ref(report)),
    )?;
    if let (Some(path), Some(json)) = (&written.lifecycle_json, lifecycle_json(report)) {
        write_file(path, &json)?;
    }
    Ok(written)
}

fn write_file(path: &Path, content: &str) -> Result<(), ReportError> {
    std::fs::write(path, content).map_err(|source| ReportError::Write {
        path: path.to_owned(),
        source,
    })
}

/// `text` made safe for a report: control characters other than tab and newline removed
/// (XML cannot carry them; removing them first means no secret can be assembled by a
/// later writer dropping them), carriage returns turned into newlines, then redacted.
pub(crate) fn clean(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let text: String = text
        .chars()
        .map(|c| if c == '\r' { '\n' } else { c })
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .filter(|c| !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
        .collect();
    secrets::redact(&text)
}

/// [`clean`] for a one-line text (a name): newlines and tabs become spaces.
pub(crate) fn clean_line(text: &str) -> String {
    clean(text)
        .split(['\n', '\t'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A phase latency in seconds with millisecond precision, or `n/a` when the phase did not
/// happen (or its figure is not a number).
pub(crate) fn phase_value(phase: &Phase) -> String {
    match phase.after_load {
        Some(s) if s.is_finite() => format!("{s:.3}"),
        _ => "n/a".to_owned(),
    }
}

/// Where the load started on the timeline's clock (seconds since the run started).
///
/// The phase named [`LOAD_START_PHASE`] (compared without case) carries it in its
/// `after_load`; without such a phase (or when it has no finite figure) the load is taken
/// to start with the run, at 0.
pub fn load_start_offset(report: &ScenarioReport) -> f64 {
    report
        .load_started_at
        .filter(|t| t.is_finite())
        .or_else(|| {
            report
                .phases
                .iter()
                .find(|p| is_load_start(p))
                .and_then(|p| p.after_load)
                .filter(|s| s.is_finite())
        })
        .unwrap_or(0.0)
}

fn is_load_start(phase: &Phase) -> bool {
    phase.name.trim().eq_ignore_ascii_case(LOAD_START_PHASE)
}

/// Each phase that happened and its time on the timeline's clock: the load start at
/// `load_start`, every other phase at `load_start + after_load / time_scale` (phases are
/// measured in target seconds, the timeline in run seconds; on the twin one run second is
/// `time_scale` target seconds).
pub fn phase_times(
    report: &ScenarioReport,
    load_start: f64,
    time_scale: f64,
) -> Vec<(&Phase, f64)> {
    let scale = if time_scale.is_finite() && time_scale > 0.0 {
        time_scale
    } else {
        1.0
    };
    report
        .phases
        .iter()
        .filter_map(|p| {
            let after = p.after_load.filter(|s| s.is_finite())?;
            let t = if is_load_start(p) {
                load_start
            } else {
                load_start + after / scale
            };
            t.is_finite().then_some((p, t))
        })
        .collect()
}

/// A duration for people: `0.250 s`, `12.3 s`, `4m 05s`, `1h 02m 03s`.
pub(crate) fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{secs:.3} s")
    } else if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        let whole = d.as_secs();
        let (h, m, s) = (whole / 3600, (whole / 60) % 60, whole % 60);
        if h > 0 {
            format!("{h}h {m:02}m {s:02}s")
        } else {
            format!("{m}m {s:02}s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_drops_control_characters_before_redacting() {
        assert_eq!(clean("a\u{1b}[31mb\r\nc\u{0}d"), "a[31mb\ncd");
        assert_eq!(clean("AccountKey=abc;"), "AccountKey=***;");
        assert_eq!(clean_line("two\nlines\there"), "two lines here");
    }

    #[test]
    fn durations_for_people() {
        use std::time::Duration;
        assert_eq!(human_duration(Duration::from_millis(250)), "0.250 s");
        assert_eq!(human_duration(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(human_duration(Duration::from_secs(245)), "4m 05s");
        assert_eq!(human_duration(Duration::from_secs(3723)), "1h 02m 03s");
    }
}
