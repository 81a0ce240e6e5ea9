//! Run history: one JSON line per run (its scenario, target, outcome, phase times and latency
//! quantiles), read back tolerantly (a bad line is reported with its number, the rest still
//! read), and the regression rule: a night slower than the rolling median of the nights
//! before it by more than 3 MADs and more than 20 %. A night is a UTC date: the nightly adds
//! the gate's runs and the trials' of the same scenarios, and the window counts nights, not
//! runs (counted in runs, a window of 7 was three and a half nights).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The history line format's version.
pub const HISTORY_SCHEMA: u32 = 1;

/// One run in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub schema: u32,
    pub scenario: String,
    pub target: String,
    pub simulated: bool,
    /// RFC 3339: the night's position in the series.
    pub started_at: String,
    pub passed: bool,
    pub duration_seconds: f64,
    /// Where the run's reports were when it was added.
    pub run_dir: String,
    /// Seconds: `phase.<name>` after the load start, `latency.<key>.p50|p90`.
    pub metrics: BTreeMap<String, f64>,
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

/// Every readable entry with its line number, and the lines that are not.
pub fn parse(text: &str) -> (Vec<(usize, HistoryEntry)>, Vec<BadLine>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<HistoryEntry>(line) {
            Ok(entry) if entry.schema == HISTORY_SCHEMA => entries.push((index + 1, entry)),
            Ok(entry) => bad.push(BadLine {
                line: index + 1,
                reason: format!(
                    "history schema {} (this edw reads {HISTORY_SCHEMA})",
                    entry.schema
                ),
            }),
            Err(e) => bad.push(BadLine {
                line: index + 1,
                reason: e.to_string(),
            }),
        }
    }
    (entries, bad)
}

/// The regression rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rule {
    /// Nights before this one that make its baseline.
    pub window: usize,
    /// The fewest earlier nights a baseline needs.
    pub min_nights: usize,
    /// Slower than the median by more than this many MADs…
    pub mads: f64,
    /// …and by more than this fraction of it.
    pub fraction: f64,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            window: 7,
            min_nights: 3,
            mads: 3.0,
            fraction: 0.20,
        }
    }
}

impl Rule {
    pub fn describe(&self) -> String {
        format!(
            "slower than the median of the previous {} nights (at least {}) by more than {} MADs and more than {:.0} %",
            self.window,
            self.min_nights,
            self.mads,
            self.fraction * 100.0
        )
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The night of a run started at `started_at` (RFC 3339): its UTC date, `YYYY-MM-DD`. A stamp
/// that does not parse is its own night (the text itself).
pub fn night_of(started_at: &str) -> String {
    time::OffsetDateTime::parse(started_at, &time::format_description::well_known::Rfc3339)
        .map(|t| {
            let date = t.to_offset(time::UtcOffset::UTC).date();
            format!(
                "{:04}-{:02}-{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            )
        })
        .unwrap_or_else(|_| started_at.to_owned())
}

/// One run of one metric, against the baseline of the nights before its own.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub line: usize,
    pub started_at: String,
    /// [`night_of`] `started_at`.
    pub night: String,
    pub passed: bool,
    pub value: f64,
    /// The median and MAD of the passed runs of the `window` nights before this run's night
    /// (none for the first nights).
    pub baseline: Option<(f64, f64)>,
    pub regression: bool,
}

/// A metric's series for one scenario on one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub scenario: String,
    pub target: String,
    pub metric: String,
    pub points: Vec<Point>,
}

/// (scenario, target, metric).
type SeriesKey = (String, String, String);
/// (line, entry, value, night) of one run of a series.
type Run<'a> = (usize, &'a HistoryEntry, f64, String);

/// Every (scenario, target, metric) series in run order, each run judged by `rule` against the
/// nights before its own (the runs of its own night never judge each other); a simulated
/// target (`kube [SIMULATED]`) is a series of its own.
pub fn series(entries: &[(usize, HistoryEntry)], rule: &Rule) -> Vec<Series> {
    let mut grouped: BTreeMap<SeriesKey, Vec<Run>> = BTreeMap::new();
    for (line, entry) in entries {
        // A simulated run is never a night of a cluster's series.
        let target = if entry.simulated {
            format!("{} [SIMULATED]", entry.target)
        } else {
            entry.target.clone()
        };
        for (metric, value) in &entry.metrics {
            if value.is_finite() {
                grouped
                    .entry((entry.scenario.clone(), target.clone(), metric.clone()))
                    .or_default()
                    .push((*line, entry, *value, night_of(&entry.started_at)));
            }
        }
    }
    grouped
        .into_iter()
        .map(|((scenario, target, metric), mut runs)| {
            runs.sort_by(|a, b| a.1.started_at.cmp(&b.1.started_at).then(a.0.cmp(&b.0)));
            let points = runs
                .iter()
                .map(|(line, entry, value, night)| {
                    // The baseline: the passed runs of the `window` nights before this one (a
                    // failed run's times say nothing about the usual).
                    let passed_before: Vec<&Run> =
                        runs.iter().filter(|r| r.1.passed && r.3 < *night).collect();
                    let mut nights: Vec<&str> =
                        passed_before.iter().map(|r| r.3.as_str()).collect();
                    nights.sort_unstable();
                    nights.dedup();
                    let nights = &nights[nights.len().saturating_sub(rule.window)..];
                    let before: Vec<f64> = passed_before
                        .iter()
                        .filter(|r| nights.contains(&r.3.as_str()))
                        .map(|r| r.2)
                        .collect();
                    let baseline = (nights.len() >= rule.min_nights.max(1)).then(|| {
                        let m = median(&mut before.clone());
                        let mut deviations: Vec<f64> =
                            before.iter().map(|v| (v - m).abs()).collect();
                        (m, median(&mut deviations))
                    });
                    let regression = baseline.is_some_and(|(m, mad)| {
                        *value > m + rule.mads * mad && *value > m * (1.0 + rule.fraction)
                    });
                    Point {
                        line: *line,
                        started_at: entry.started_at.clone(),
                        night: night.clone(),
                        passed: entry.passed,
                        value: *value,
                        baseline,
                        regression,
                    }
                })
                .collect();
            Series {
                scenario,
                target,
                metric,
                points,
            }
        })
        .collect()
}

/// The latest night ([`night_of`]) of each (scenario, target as in [`series`]).
pub fn latest_nights(entries: &[(usize, HistoryEntry)]) -> BTreeMap<(String, String), String> {
    let mut latest: BTreeMap<(String, String), String> = BTreeMap::new();
    for (_, entry) in entries {
        let target = if entry.simulated {
            format!("{} [SIMULATED]", entry.target)
        } else {
            entry.target.clone()
        };
        let night = night_of(&entry.started_at);
        let slot = latest.entry((entry.scenario.clone(), target)).or_default();
        if night > *slot {
            *slot = night;
        }
    }
    latest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(night: usize, drained: f64, node: f64) -> HistoryEntry {
        HistoryEntry {
            schema: HISTORY_SCHEMA,
            scenario: "flow::burst".into(),
            target: "aks".into(),
            simulated: false,
            started_at: format!("2026-11-{:02}T02:23:00Z", night + 1),
            passed: true,
            duration_seconds: 600.0,
            run_dir: format!("reports/night-{night}"),
            metrics: BTreeMap::from([
                ("phase.drained".to_owned(), drained),
                ("phase.first_new_node".to_owned(), node),
            ]),
        }
    }

    /// Ten nights with the usual jitter; night 8's first new node takes twice as long.
    #[test]
    fn a_planted_slowdown_is_flagged_on_exactly_its_metric_and_night() {
        let mut entries = Vec::new();
        for night in 0..10 {
            let jitter = [0.0, 3.0, -2.0, 4.0, -1.0, 2.0, -3.0, 1.0, 0.5, -0.5][night];
            let node = if night == 8 { 180.0 } else { 90.0 + jitter };
            entries.push((night + 1, entry(night, 210.0 + 2.0 * jitter, node)));
        }
        let text: String = entries
            .iter()
            .map(|(_, e)| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        let (read, bad) = parse(&text);
        assert!(bad.is_empty());
        let flagged: Vec<(String, String)> = series(&read, &Rule::default())
            .iter()
            .flat_map(|s| {
                s.points
                    .iter()
                    .filter(|p| p.regression)
                    .map(|p| (s.metric.clone(), p.started_at.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            flagged,
            vec![(
                "phase.first_new_node".to_owned(),
                "2026-11-09T02:23:00Z".to_owned()
            )]
        );
    }

    #[test]
    fn bad_lines_are_named_and_the_rest_is_read() {
        let good = serde_json::to_string(&entry(0, 200.0, 90.0)).unwrap();
        let partial = &good[..good.len() / 2];
        let text = format!("{good}\n{partial}\n\n{{\"schema\": 9}}\n{good}\n");
        let (read, bad) = parse(&text);
        assert_eq!(read.iter().map(|(l, _)| *l).collect::<Vec<_>>(), vec![1, 5]);
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![2, 4]);
    }

    #[test]
    fn failed_runs_are_not_part_of_a_baseline() {
        let mut entries: Vec<(usize, HistoryEntry)> =
            (0..4).map(|n| (n + 1, entry(n, 200.0, 90.0))).collect();
        // Three failed nights, very slow: the next passed night at 200 s is not "fast", and
        // a later 300 s is still judged against the passed nights (200 s).
        for n in 4..7 {
            let mut failed = entry(n, 900.0, 90.0);
            failed.passed = false;
            entries.push((n + 1, failed));
        }
        entries.push((8, entry(7, 300.0, 90.0)));
        let drained = series(&entries, &Rule::default())
            .into_iter()
            .find(|s| s.metric == "phase.drained")
            .unwrap();
        let last = drained.points.last().unwrap();
        assert_eq!(last.baseline.map(|b| b.0), Some(200.0));
        assert!(last.regression);
        assert_eq!(
            latest_nights(&entries)[&("flow::burst".to_owned(), "aks".to_owned())],
            "2026-11-08"
        );
    }

    #[test]
    fn simulated_runs_are_a_series_of_their_own() {
        let mut twin = entry(3, 900.0, 900.0);
        twin.simulated = true;
        let entries: Vec<(usize, HistoryEntry)> = (0..3)
            .map(|n| (n + 1, entry(n, 200.0, 90.0)))
            .chain([(4, twin)])
            .collect();
        let all = series(&entries, &Rule::default());
        assert!(all.iter().any(|s| s.target == "aks [SIMULATED]"));
        assert!(all.iter().all(|s| s.points.iter().all(|p| !p.regression)));
    }

    /// The nightly adds the gate's run and the trial's of the same scenario: two runs a night.
    fn gate_and_trial(night: usize, gate: f64, trial: f64) -> [HistoryEntry; 2] {
        let mut first = entry(night, gate, 90.0);
        let mut second = entry(night, trial, 90.0);
        first.started_at = format!("2026-11-{:02}T02:23:00Z", night + 1);
        second.started_at = format!("2026-11-{:02}T03:41:00+01:00", night + 1);
        first.run_dir = format!("reports/gate/night-{night}");
        [first, second]
    }

    fn drained_points(entries: &[HistoryEntry]) -> Vec<Point> {
        let numbered: Vec<(usize, HistoryEntry)> = entries
            .iter()
            .cloned()
            .zip(1..)
            .map(|(e, l)| (l, e))
            .collect();
        series(&numbered, &Rule::default())
            .into_iter()
            .find(|s| s.metric == "phase.drained")
            .unwrap()
            .points
    }

    #[test]
    fn the_window_counts_nights_not_runs_and_a_night_never_judges_itself() {
        // Seven nights at 100 s, three at 200 s, two runs each; then a night at 230 s. Its
        // baseline is the seven nights before it (8 runs at 100, 6 at 200: median 100), so it
        // is a regression; counted in runs, the last seven (200, …) would have hidden it.
        let mut entries: Vec<HistoryEntry> = (0..10)
            .flat_map(|n| {
                let v = if n < 7 { 100.0 } else { 200.0 };
                gate_and_trial(n, v, v)
            })
            .collect();
        entries.extend(gate_and_trial(10, 230.0, 230.0));
        let points = drained_points(&entries);
        let last_night: Vec<&Point> = points.iter().filter(|p| p.night == "2026-11-11").collect();
        assert_eq!(last_night.len(), 2);
        for point in last_night {
            assert_eq!(point.baseline.map(|b| b.0), Some(100.0), "{point:?}");
            assert!(point.regression, "{point:?}");
        }
        // A stamp with an offset is on its UTC night (03:41+01:00 is 02:41Z).
        assert!(points.iter().all(|p| p.night.starts_with("2026-11-")));

        // Three nights, then a night whose second run is slow: both of that night's runs have
        // the same baseline (the three nights before), the first never judges the second.
        let mut entries: Vec<HistoryEntry> = (0..3)
            .flat_map(|n| gate_and_trial(n, 100.0, 100.0))
            .collect();
        entries.extend(gate_and_trial(3, 100.0, 300.0));
        let points = drained_points(&entries);
        let night: Vec<&Point> = points.iter().filter(|p| p.night == "2026-11-04").collect();
        assert_eq!(night[0].baseline, night[1].baseline);
        assert_eq!(night[1].baseline.map(|b| b.0), Some(100.0));
        assert!(!night[0].regression && night[1].regression);
        // Both runs of the latest night are the latest night's.
        assert_eq!(
            latest_nights(&entries.iter().cloned().map(|e| (0, e)).collect::<Vec<_>>())
                [&("flow::burst".to_owned(), "aks".to_owned())],
            "2026-11-04"
        );
    }

    #[test]
    fn night_of_is_the_utc_date() {
        assert_eq!(night_of("2026-11-04T02:23:00Z"), "2026-11-04");
        assert_eq!(night_of("2026-11-04T00:30:00+01:00"), "2026-11-03");
        assert_eq!(night_of("2026-11-04T23:30:00-02:00"), "2026-11-05");
        assert_eq!(night_of("not a time"), "not a time");
    }

    #[test]
    fn small_wobbles_and_short_series_are_not_regressions() {
        // +15 %: over 3 MADs of a flat series, under 20 %.
        let mut entries: Vec<(usize, HistoryEntry)> =
            (0..5).map(|n| (n + 1, entry(n, 200.0, 90.0))).collect();
        entries.push((6, entry(5, 230.0, 90.0)));
        assert!(series(&entries, &Rule::default())
            .iter()
            .all(|s| s.points.iter().all(|p| !p.regression)));
        // Two earlier nights are no baseline.
        let short = vec![
            (1, entry(0, 100.0, 90.0)),
            (2, entry(1, 100.0, 90.0)),
            (3, entry(2, 400.0, 90.0)),
        ];
        assert!(series(&short, &Rule::default())
            .iter()
            .all(|s| s.points.iter().all(|p| !p.regression)));
    }
}
