//! Run history: one JSON line per run (its scenario, target, outcome, phase times and latency
//! quantiles), read back tolerantly (a bad line is reported with its number, the rest still
//! read), and the regression rule: a night slower than the rolling median of the nights
//! before it by more than 3 MADs and more than 20 %.

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

/// One night of one metric, against its baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub line: usize,
    pub started_at: String,
    pub passed: bool,
    pub value: f64,
    /// The rolling median and MAD of the nights before (none for the first nights).
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
/// (line, entry, value) of one night of a series.
type Night<'a> = (usize, &'a HistoryEntry, f64);

/// Every (scenario, target, metric) series in night order, each night judged by `rule`; a
/// simulated target (`kube [SIMULATED]`) is a series of its own.
pub fn series(entries: &[(usize, HistoryEntry)], rule: &Rule) -> Vec<Series> {
    let mut grouped: BTreeMap<SeriesKey, Vec<Night>> = BTreeMap::new();
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
                    .push((*line, entry, *value));
            }
        }
    }
    grouped
        .into_iter()
        .map(|((scenario, target, metric), mut nights)| {
            nights.sort_by(|a, b| a.1.started_at.cmp(&b.1.started_at).then(a.0.cmp(&b.0)));
            let points = nights
                .iter()
                .enumerate()
                .map(|(i, (line, entry, value))| {
                    // The baseline: the passed runs among the nights before (a failed run's
                    // times say nothing about the usual).
                    let mut before: Vec<f64> = nights[..i]
                        .iter()
                        .filter(|n| n.1.passed)
                        .map(|n| n.2)
                        .collect();
                    let before = &before.split_off(before.len().saturating_sub(rule.window))[..];
                    let baseline = (before.len() >= rule.min_nights.max(1)).then(|| {
                        let m = median(&mut before.to_vec());
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

/// The start of the latest run of each (scenario, target as in [`series`]).
pub fn latest_runs(entries: &[(usize, HistoryEntry)]) -> BTreeMap<(String, String), String> {
    let mut latest: BTreeMap<(String, String), String> = BTreeMap::new();
    for (_, entry) in entries {
        let target = if entry.simulated {
            format!("{} [SIMULATED]", entry.target)
        } else {
            entry.target.clone()
        };
        let slot = latest.entry((entry.scenario.clone(), target)).or_default();
        if entry.started_at > *slot {
            *slot = entry.started_at.clone();
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
            latest_runs(&entries)[&("flow::burst".to_owned(), "aks".to_owned())],
            "2026-11-08T02:23:00Z"
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
