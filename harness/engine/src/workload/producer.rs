//! The producer: sends the sample's numbered messages, a fixed count, at a rate or for a
//! duration (the sample sends 1 per second until stopped), with several senders at once for
//! throughput.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::consumer::{Pacer, WorkTicket};
use super::message::message_text;
use crate::storage::{Queue, StorageError};

/// What to send.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerPlan {
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Messages per second across all senders; `None` sends as fast as possible.
    pub rate: Option<f64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Messages in flight at once.
    pub concurrency: usize,
    /// The number of the first message (the sample counts from 1).
    pub first_index: u64,
}

impl Default for ProducerPlan {
    /// The sample's producer: one message per second, until stopped.
    fn default() -> Self {
        ProducerPlan {
            count: None,
            rate: Some(1.0),
            duration: None,
            concurrency: 1,
            first_index: 1,
        }
    }
}

impl ProducerPlan {
    /// Checks the plan before anything is sent.
    pub fn validate(&self) -> Result<(), ProducerError> {
        if self.concurrency == 0 {
            return Err(ProducerError::Plan("concurrency must be at least 1".into()));
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(ProducerError::Plan(format!(
                    "rate must be a positive number of messages per second, not {rate}"
                )));
            }
        }
        Ok(())
    }

    /// `count` messages as fast as `concurrency` senders go.
    pub fn burst(count: u64, concurrency: usize) -> Self {
        ProducerPlan {
            count: Some(count),
            rate: None,
            duration: None,
            concurrency,
            first_index: 1,
        }
    }
}

/// What the producer did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProduceReport {
    /// Numbers of the messages the service accepted, ascending.
    pub sent: Vec<u64>,
    /// Numbers that could not be sent (after retries), with the error, ascending.
    pub failed: Vec<(u64, String)>,
    pub elapsed: Duration,
}

impl ProduceReport {
    /// How many messages were sent.
    pub fn sent_count(&self) -> u64 {
        self.sent.len() as u64
    }

    /// Messages per second over the run.
    pub fn rate(&self) -> f64 {
        self.sent.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The producer could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("invalid producer plan: {0}")]
    Plan(String),
    #[error("the producer stopped after {sent} messages")]
    Storage {
        sent: u64,
        /// The numbers of the messages it sent before it stopped, ascending.
        sent_numbers: Vec<u64>,
        #[source]
        source: Box<StorageError>,
    },
}

/// Sends messages by `plan` to `queue` until the plan is done or `cancel` fires.
/// A refused credential or a missing queue stops it at once; any other failed send is
/// recorded in [`ProduceReport::failed`] and the producer goes on.
pub async fn produce(
    queue: &Queue,
    plan: &ProducerPlan,
    cancel: &CancellationToken,
) -> Result<ProduceReport, ProducerError> {
    produce_paced(queue, plan, None, cancel).await
}

/// [`produce`], each send holding a ticket of `pacer` while it is in flight: a twin's load
/// pod, whose sends slow the governed clock when storage lags, as its consumer pods' calls do.
pub async fn produce_paced(
    queue: &Queue,
    plan: &ProducerPlan,
    pacer: Option<&Pacer>,
    cancel: &CancellationToken,
) -> Result<ProduceReport, ProducerError> {
    plan.validate()?;
    let shared = Shared {
        start: Instant::now(),
        next: AtomicU64::new(plan.first_index),
        stop: AtomicBool::new(false),
        outcome: Mutex::new(Outcome::default()),
    };
    let senders = (0..plan.concurrency).map(|_| send_loop(queue, plan, pacer, &shared, cancel));
    futures::future::join_all(senders).await;

    let elapsed = shared.start.elapsed();
    let mut outcome = shared
        .outcome
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    outcome.sent.sort_unstable();
    if let Some(source) = outcome.fatal.take() {
        return Err(ProducerError::Storage {
            sent: outcome.sent.len() as u64,
            sent_numbers: outcome.sent,
            source: Box::new(source),
        });
    }
    outcome.failed.sort_by_key(|(i, _)| *i);
    Ok(ProduceReport {
        sent: outcome.sent,
        failed: outcome.failed,
        elapsed,
    })
}

#[derive(Default)]
struct Outcome {
    sent: Vec<u64>,
    failed: Vec<(u64, String)>,
    fatal: Option<StorageError>,
}

struct Shared {
    start: Instant,
    next: AtomicU64,
    stop: AtomicBool,
    outcome: Mutex<Outcome>,
}

impl Shared {
    fn record(&self, update: impl FnOnce(&mut Outcome)) {
        update(&mut self.outcome.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

async fn send_loop(
    queue: &Queue,
    plan: &ProducerPlan,
    pacer: Option<&Pacer>,
    shared: &Shared,
    cancel: &CancellationToken,
) {
    let deadline = plan.duration.map(|d| shared.start + d);
    loop {
        if shared.stop.load(Ordering::SeqCst) || cancel.is_cancelled() {
            return;
        }
        let index = shared.next.fetch_add(1, Ordering::SeqCst);
        let position = index - plan.first_index;
        if plan.count.is_some_and(|count| position >= count) {
            return;
        }
        if let Some(rate) = plan.rate {
            let due = shared.start + Duration::from_secs_f64(position as f64 / rate);
            if deadline.is_some_and(|d| due >= d) {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = cancel.cancelled() => return,
            }
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
        let text = message_text(index, OffsetDateTime::now_utc());
        let sent = {
            let _work = WorkTicket::start(pacer);
            queue.send(&text).await
        };
        match sent {
            Ok(_) => shared.record(|o| o.sent.push(index)),
            Err(e) if e.is_authentication() || e.is_not_found() => {
                shared.stop.store(true, Ordering::SeqCst);
                shared.record(|o| {
                    o.fatal.get_or_insert(e);
                });
                return;
            }
            Err(e) => {
                tracing::warn!(index, error = %e, "message not sent");
                shared.record(|o| o.failed.push((index, e.to_string())));
            }
        }
    }
}
