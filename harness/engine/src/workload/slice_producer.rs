//! The producer as one pod of an in-cluster load Job runs it: the command line the Job gives
//! its pods (`edw produce --count N --slices P ...`, each pod picking its slice by
//! `JOB_COMPLETION_INDEX`), and the one-line report each pod prints when it stops, which the
//! harness reads back from the pods' logs to say what was actually sent.

use std::time::Duration;

use edw_model::slices::{self, Slice, SliceError};

use tokio_util::sync::CancellationToken;

use super::consumer::Pacer;
use super::producer::{produce_paced, ProduceReport, ProducerError, ProducerPlan};
use crate::storage::Queue;

/// The line prefix of a pod's report in its log.
pub const REPORT_PREFIX: &str = "edw-produce-slice-report ";

/// What one pod of the Job runs: its slice of `count` messages numbered from `first`, split
/// over `slices` pods, at `rate_per_pod` messages per second (none: as fast as it goes).
#[derive(Debug, Clone, PartialEq)]
pub struct SliceCommand {
    pub count: u64,
    pub slices: u64,
    pub first: u64,
    pub rate_per_pod: Option<f64>,
    pub concurrency: usize,
}

impl SliceCommand {
    /// The container's command: `edw produce` with this split (the image carries `edw`).
    pub fn command(&self) -> Vec<String> {
        let mut command: Vec<String> = [
            "edw",
            "produce",
            "--count",
            &self.count.to_string(),
            "--slices",
            &self.slices.to_string(),
            "--first",
            &self.first.to_string(),
            "--concurrency",
            &self.concurrency.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(rate) = self.rate_per_pod {
            command.extend(["--rate".to_owned(), format!("{rate}")]);
        }
        command
    }

    /// Reads back what [`SliceCommand::command`] wrote (the twin runs Job pods by their
    /// command); `None` when `command` is not a sliced `edw produce`.
    pub fn parse(command: &[String]) -> Option<Result<SliceCommand, String>> {
        let produce = command.iter().position(|c| c == "produce")?;
        let mut parsed = SliceCommand {
            count: 0,
            slices: 0,
            first: 1,
            rate_per_pod: None,
            concurrency: 8,
        };
        let mut args = command[produce + 1..].iter();
        let mut sliced = false;
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} without a value"));
            let number = |value: Result<&String, String>| -> Result<u64, String> {
                let value = value?;
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{flag} {value:?} is not a whole number"))
            };
            let outcome = match flag.as_str() {
                "--count" => number(value).map(|n| parsed.count = n),
                "--slices" => {
                    sliced = true;
                    number(value).map(|n| parsed.slices = n)
                }
                "--first" => number(value).map(|n| parsed.first = n),
                "--concurrency" => number(value).map(|n| parsed.concurrency = n.max(1) as usize),
                "--rate" => value.and_then(|v| {
                    v.parse::<f64>()
                        .map(|r| parsed.rate_per_pod = Some(r))
                        .map_err(|_| format!("--rate {v:?} is not a number"))
                }),
                other => Err(format!("edw produce in a load Job: unknown flag {other}")),
            };
            if let Err(e) = outcome {
                return Some(Err(e));
            }
        }
        sliced.then_some(Ok(parsed))
    }

    /// Pod `index`'s slice.
    pub fn slice(&self, index: u64) -> Result<Slice, SliceError> {
        slices::slice_of(self.first, self.count, self.slices, index)
    }
}

/// What one pod sent, as it prints it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SliceReport {
    /// The pod's `JOB_COMPLETION_INDEX`.
    pub index: u64,
    pub slice: Slice,
    /// The messages the service accepted, as ranges (`1-500,502`), also when it stopped early.
    pub sent: Option<String>,
    pub sent_count: u64,
    /// Messages that could not be sent, with the error.
    pub failed: Vec<(u64, String)>,
    pub elapsed_seconds: f64,
    /// When the pod started sending, in seconds since the Unix epoch (its clock).
    #[serde(default)]
    pub started_at_unix: f64,
    /// Why the producer stopped before its slice was done.
    pub stopped: Option<String>,
}

impl SliceReport {
    /// The report of a producer that finished its slice (some messages possibly failed).
    pub fn finished(index: u64, slice: Slice, report: &ProduceReport) -> SliceReport {
        SliceReport {
            index,
            slice,
            sent: Some(slices::ranges(&report.sent)),
            sent_count: report.sent_count(),
            failed: report.failed.clone(),
            elapsed_seconds: report.elapsed.as_secs_f64(),
            started_at_unix: unix_now() - report.elapsed.as_secs_f64(),
            stopped: None,
        }
    }

    /// The report of a producer that stopped early.
    pub fn stopped(index: u64, slice: Slice, error: &ProducerError, elapsed: Duration) -> Self {
        let sent: &[u64] = match error {
            ProducerError::Storage { sent_numbers, .. } => sent_numbers,
            ProducerError::Plan(_) => &[],
        };
        SliceReport {
            index,
            slice,
            sent: Some(slices::ranges(sent)),
            sent_count: sent.len() as u64,
            failed: Vec::new(),
            elapsed_seconds: elapsed.as_secs_f64(),
            started_at_unix: unix_now() - elapsed.as_secs_f64(),
            stopped: Some(crate::error_chain::text(error)),
        }
    }

    /// The log line: the prefix and the report as one JSON line.
    pub fn line(&self) -> String {
        format!(
            "{REPORT_PREFIX}{}",
            serde_json::to_string(self).unwrap_or_default()
        )
    }

    /// The report a log line holds, if it is one.
    pub fn parse_line(line: &str) -> Option<Result<SliceReport, String>> {
        // `kubectl logs --timestamps` and the twin's lines may carry a prefix.
        let at = line.find(REPORT_PREFIX)?;
        Some(
            serde_json::from_str::<SliceReport>(&line[at + REPORT_PREFIX.len()..])
                .map_err(|e| e.to_string())
                .and_then(|report| report.check_sent().map(|()| report))
                .map_err(|e| format!("a malformed slice report: {e}")),
        )
    }

    /// Whether `sent` says what `sent_count` does, within the slice: a report whose numbers do
    /// not parse, fall outside its slice or disagree with its count is not read as "nothing
    /// sent" (its slice is then counted as not reported, with this reason).
    fn check_sent(&self) -> Result<(), String> {
        let numbers = match self.sent.as_deref().map(slices::parse_ranges) {
            None => return Ok(()),
            Some(Ok(numbers)) => numbers,
            Some(Err(e)) => return Err(format!("its `sent` field is {e}")),
        };
        let (first, last) = (
            self.slice.first,
            self.slice.first + self.slice.count.saturating_sub(1),
        );
        if let Some(outside) = numbers
            .iter()
            .find(|n| self.slice.count == 0 || **n < first || **n > last)
        {
            return Err(format!(
                "its `sent` field holds message {outside}, outside its slice {first}-{last}"
            ));
        }
        if numbers.len() as u64 != self.sent_count {
            return Err(format!(
                "its `sent` field holds {} message numbers but its `sent_count` says {}",
                numbers.len(),
                self.sent_count
            ));
        }
        Ok(())
    }

    /// The message numbers sent, when known.
    pub fn sent_numbers(&self) -> Option<Vec<u64>> {
        self.sent
            .as_deref()
            .map(|text| slices::parse_ranges(text).unwrap_or_default())
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Sends pod `index`'s slice of `command` to `queue` and says what was sent. `time_scale` is how
/// many times faster than real time the pod's clock runs (1 in a cluster; the twin's scale on
/// the twin, where the rate is per simulated second); `pacer` is the twin's governed clock,
/// which each send holds while in flight (`None` in a cluster). Only a bad split is an error: a
/// producer that stops early still reports how many it sent.
pub async fn send_slice(
    queue: &Queue,
    command: &SliceCommand,
    index: u64,
    time_scale: f64,
    pacer: Option<&Pacer>,
    cancel: &CancellationToken,
) -> Result<SliceReport, SliceError> {
    let slice = command.slice(index)?;
    let plan = ProducerPlan {
        count: Some(slice.count),
        rate: command.rate_per_pod.map(|rate| rate * time_scale.max(1e-9)),
        duration: None,
        concurrency: command.concurrency.max(1),
        first_index: slice.first,
    };
    let started = std::time::Instant::now();
    Ok(match produce_paced(queue, &plan, pacer, cancel).await {
        Ok(report) => SliceReport::finished(index, slice, &report),
        Err(error) => SliceReport::stopped(index, slice, &error, started.elapsed()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_round_trips() {
        let command = SliceCommand {
            count: 10_000,
            slices: 4,
            first: 1,
            rate_per_pod: Some(12.5),
            concurrency: 8,
        };
        let args = command.command();
        assert_eq!(&args[..2], ["edw", "produce"]);
        assert_eq!(SliceCommand::parse(&args), Some(Ok(command.clone())));
        assert_eq!(
            command.slice(3).unwrap(),
            Slice {
                first: 7501,
                count: 2500
            }
        );
        // Not a sliced producer: the consumer's entrypoint, a plain produce.
        assert_eq!(SliceCommand::parse(&[]), None);
        let plain: Vec<String> = ["edw", "produce", "--count", "5"]
            .map(String::from)
            .to_vec();
        assert_eq!(SliceCommand::parse(&plain), None);
        let bad: Vec<String> = ["edw", "produce", "--slices", "x"]
            .map(String::from)
            .to_vec();
        assert!(SliceCommand::parse(&bad)
            .unwrap()
            .unwrap_err()
            .contains("--slices \"x\""));
    }

    #[test]
    fn a_report_line_reads_back_from_a_log_line() {
        let mut report = SliceReport::finished(
            1,
            Slice { first: 6, count: 5 },
            &ProduceReport {
                sent: vec![6, 7, 8, 10],
                failed: vec![(9, "503".into())],
                elapsed: Duration::from_millis(1500),
            },
        );
        // A start time that JSON carries exactly: serde_json (without its float_roundtrip
        // feature) may read the last bit of the clock's own value back differently (CI saw
        // 1796610044.9565785 come back as …783), a nanosecond that nothing here uses.
        assert!(report.started_at_unix > 0.0);
        report.started_at_unix = 1_796_610_044.25;
        let line = format!("2026-12-06T22:00:00Z {}", report.line());
        let back = SliceReport::parse_line(&line).unwrap().unwrap();
        assert_eq!(back, report);
        assert_eq!(back.sent.as_deref(), Some("6-8,10"));
        assert_eq!(back.sent_numbers(), Some(vec![6, 7, 8, 10]));
        assert!(SliceReport::parse_line("processed message 3").is_none());
        // A `sent` that does not parse, leaves the slice or disagrees with the count is named,
        // never read as nothing sent.
        for (sent, count, why) in [
            ("6-8,x", 4, "not a list of message-number ranges"),
            ("6-8,12", 4, "message 12, outside its slice 6-10"),
            ("6-8,10", 3, "4 message numbers but its `sent_count` says 3"),
        ] {
            let mut bad = report.clone();
            bad.sent = Some(sent.to_owned());
            bad.sent_count = count;
            let error = SliceReport::parse_line(&bad.line()).unwrap().unwrap_err();
            assert!(
                error.starts_with("a malformed slice report: its `sent` field")
                    && error.contains(why),
                "{sent}: {error}"
            );
        }
        assert!(SliceReport::parse_line(&format!("{REPORT_PREFIX}{{"))
            .unwrap()
            .is_err());
    }
}
