//! What the twin's pods did that no API object records: the lines each pod's program wrote
//! (what `kubectl logs` shows, bounded per pod like a kubelet's rotated log) and how many
//! messages a consumer pod processed (what the metrics API turns into CPU: its recent rate,
//! from per-second counts of the last [`RATE_HORIZON`]). The store holds one; pod programs
//! write to it through a [`PodJournal`]. On the virtual clock no program runs: the engine sets
//! the queue model's rate per consumer pod here instead ([`PodActivity::set_modelled_rate`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use crate::clock::Clock;
use crate::store::ObjectKey;

/// The most lines kept per pod (older ones are dropped, as log rotation would).
pub const MAX_LINES_PER_POD: usize = 2_000;

/// The most pods whose activity is kept (the oldest journal goes first).
const MAX_PODS: usize = 4_096;

/// How far back a pod's processed messages are kept, second by second, for its recent rate
/// (the longest window [`PodActivity::processed_rate`] can be asked about).
pub const RATE_HORIZON: Duration = Duration::from_secs(120);

/// One line a pod's container wrote, on the twin's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub at: OffsetDateTime,
    pub text: String,
}

#[derive(Debug, Default)]
struct PodRecord {
    lines: VecDeque<LogLine>,
    /// Lines dropped for the bound.
    dropped: u64,
    processed: u64,
    /// Messages processed per whole simulated second, oldest first, within [`RATE_HORIZON`].
    recent: VecDeque<(u64, u64)>,
    /// When the record was made, for evicting the oldest.
    order: u64,
}

#[derive(Debug, Default)]
struct Inner {
    pods: HashMap<ObjectKey, PodRecord>,
    next_order: u64,
    /// Messages per second each Running consumer pod processes in the queue model (virtual
    /// clock); `None` when real programs count their messages.
    modelled_rate: Option<f64>,
}

/// Every pod's log lines and processed-message counts.
#[derive(Debug, Clone)]
pub struct PodActivity {
    inner: Arc<Mutex<Inner>>,
    clock: Arc<dyn Clock>,
}

impl PodActivity {
    /// Activity timestamped on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> PodActivity {
        PodActivity {
            inner: Arc::default(),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_record<R>(&self, pod: &ObjectKey, change: impl FnOnce(&mut PodRecord) -> R) -> R {
        let mut inner = self.lock();
        if !inner.pods.contains_key(pod) {
            if inner.pods.len() >= MAX_PODS {
                let oldest = inner
                    .pods
                    .iter()
                    .min_by_key(|(_, r)| r.order)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    inner.pods.remove(&oldest);
                }
            }
            inner.next_order += 1;
            let order = inner.next_order;
            inner.pods.insert(
                pod.clone(),
                PodRecord {
                    order,
                    ..PodRecord::default()
                },
            );
        }
        change(inner.pods.get_mut(pod).expect("inserted above"))
    }

    /// Pod `pod` wrote `text` (one line) now.
    pub fn log(&self, pod: &ObjectKey, text: impl Into<String>) {
        let line = LogLine {
            at: self.clock.wall(),
            text: text.into(),
        };
        self.with_record(pod, |record| {
            if record.lines.len() >= MAX_LINES_PER_POD {
                record.lines.pop_front();
                record.dropped += 1;
            }
            record.lines.push_back(line);
        });
    }

    /// Pod `pod` processed one more message.
    pub fn processed(&self, pod: &ObjectKey) {
        let second = self.clock.now().as_secs();
        self.with_record(pod, |record| {
            record.processed += 1;
            match record.recent.back_mut() {
                Some((at, count)) if *at == second => *count += 1,
                _ => record.recent.push_back((second, 1)),
            }
            while record
                .recent
                .front()
                .is_some_and(|(at, _)| at + RATE_HORIZON.as_secs() < second)
            {
                record.recent.pop_front();
            }
        });
    }

    /// Messages per simulated second pod `pod` processed over the last `window` (at most
    /// [`RATE_HORIZON`]; whole seconds, the current one included), or `None` when it never
    /// processed one (its program counts nothing, or there is none).
    pub fn processed_rate(&self, pod: &ObjectKey, window: Duration) -> Option<f64> {
        let now = self.clock.now().as_secs();
        let seconds = window.min(RATE_HORIZON).as_secs().max(1);
        let inner = self.lock();
        let record = inner.pods.get(pod).filter(|r| r.processed > 0)?;
        let in_window: u64 = record
            .recent
            .iter()
            .filter(|(at, _)| at + seconds > now)
            .map(|(_, count)| count)
            .sum();
        Some(in_window as f64 / seconds as f64)
    }

    /// Sets how many messages per second each Running consumer pod processes in the queue
    /// model (`None`: no model, the pods' programs count what they process).
    pub fn set_modelled_rate(&self, rate: Option<f64>) {
        self.lock().modelled_rate = rate;
    }

    /// What [`PodActivity::set_modelled_rate`] last set.
    pub fn modelled_rate(&self) -> Option<f64> {
        self.lock().modelled_rate
    }

    /// The lines pod `pod` wrote that are still kept, oldest first.
    pub fn lines(&self, pod: &ObjectKey) -> Vec<LogLine> {
        self.lock()
            .pods
            .get(pod)
            .map(|r| r.lines.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The lines pod `pod` wrote after its first `written` lines (those still kept), and how
    /// many it has written in all: a follower passes the total back to get only new lines.
    pub fn lines_after(&self, pod: &ObjectKey, written: u64) -> (Vec<LogLine>, u64) {
        let inner = self.lock();
        let Some(record) = inner.pods.get(pod) else {
            return (Vec::new(), 0);
        };
        let total = record.dropped + record.lines.len() as u64;
        let skip = written.saturating_sub(record.dropped) as usize;
        (record.lines.iter().skip(skip).cloned().collect(), total)
    }

    /// How many messages pod `pod` processed.
    pub fn processed_count(&self, pod: &ObjectKey) -> u64 {
        self.lock().pods.get(pod).map_or(0, |r| r.processed)
    }

    /// A journal for pod `pod`'s program to write to.
    pub fn journal(&self, pod: &ObjectKey) -> PodJournal {
        PodJournal {
            activity: self.clone(),
            pod: pod.clone(),
        }
    }
}

/// Where one pod's program writes its lines and counts its messages.
#[derive(Debug, Clone)]
pub struct PodJournal {
    activity: PodActivity,
    pod: ObjectKey,
}

impl PodJournal {
    /// Writes one line to the pod's log.
    pub fn log(&self, text: impl Into<String>) {
        self.activity.log(&self.pod, text);
    }

    /// Counts one processed message.
    pub fn processed(&self) {
        self.activity.processed(&self.pod);
    }
}

impl PartialEq for PodJournal {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.activity.inner, &other.activity.inner) && self.pod == other.pod
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;

    fn activity() -> PodActivity {
        PodActivity::new(Arc::new(VirtualClock::new(
            time::macros::datetime!(2026-01-01 00:00 UTC),
        )))
    }

    #[test]
    fn a_pods_lines_are_kept_in_order_and_bounded() {
        let activity = activity();
        let pod = ObjectKey::new("pods", "aqs-demo", "aqs-app-1");
        let journal = activity.journal(&pod);
        for i in 0..MAX_LINES_PER_POD + 5 {
            journal.log(format!("line {i}"));
        }
        let lines = activity.lines(&pod);
        assert_eq!(lines.len(), MAX_LINES_PER_POD);
        assert_eq!(lines[0].text, "line 5");
        assert_eq!(
            lines.last().unwrap().text,
            format!("line {}", MAX_LINES_PER_POD + 4)
        );
        assert!(activity
            .lines(&ObjectKey::new("pods", "aqs-demo", "other"))
            .is_empty());
    }

    #[test]
    fn processed_messages_are_counted_per_pod() {
        let activity = activity();
        let a = ObjectKey::new("pods", "ns", "a");
        let b = ObjectKey::new("pods", "ns", "b");
        for _ in 0..3 {
            activity.journal(&a).processed();
        }
        activity.journal(&b).processed();
        assert_eq!(activity.processed_count(&a), 3);
        assert_eq!(activity.processed_count(&b), 1);
    }

    #[test]
    fn the_processed_rate_counts_the_last_window_only() {
        let clock = Arc::new(VirtualClock::new(
            time::macros::datetime!(2026-01-01 00:00 UTC),
        ));
        let activity = PodActivity::new(clock.clone());
        let busy = ObjectKey::new("pods", "ns", "busy");
        let window = Duration::from_secs(20);
        assert_eq!(activity.processed_rate(&busy, window), None);
        // Two messages a second for 30 s: the last 20 s hold 40 of them.
        for second in 0..30 {
            clock.advance_to(Duration::from_secs(second));
            activity.processed(&busy);
            activity.processed(&busy);
        }
        assert_eq!(activity.processed_rate(&busy, window), Some(2.0));
        // 10 s without a message: half the window is idle.
        clock.advance_to(Duration::from_secs(39));
        assert_eq!(activity.processed_rate(&busy, window), Some(1.0));
        // Long idle: the rate falls to zero, and the kept seconds stay bounded.
        clock.advance_to(Duration::from_secs(500));
        assert_eq!(activity.processed_rate(&busy, window), Some(0.0));
        activity.processed(&busy);
        assert_eq!(activity.lock().pods[&busy].recent.len(), 1);
        assert_eq!(activity.processed_count(&busy), 61);
    }

    #[test]
    fn the_modelled_rate_is_what_the_engine_last_set() {
        let activity = activity();
        assert_eq!(activity.modelled_rate(), None);
        activity.set_modelled_rate(Some(1.0));
        assert_eq!(activity.modelled_rate(), Some(1.0));
    }
}
