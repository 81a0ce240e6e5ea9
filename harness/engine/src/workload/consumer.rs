//! The consumer: receives messages, writes one table row per message and deletes the message;
//! moves malformed and repeatedly failing messages to the poison queue. Several workers share
//! one queue. It stops when cancelled, or with [`StopWhen::Empty`] once the queue is empty.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::message::{parse_message, ProcessedEntity};
use crate::storage::{InsertOutcome, Queue, ReceivedMessage, StorageError, Table};

/// When the consumer stops (besides cancellation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopWhen {
    /// Never: like the sample's consumer, it runs until cancelled.
    Cancelled,
    /// When the queue's approximate count (visible and in-flight) is 0.
    Empty,
}

/// How the consumer works.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerOptions {
    /// Workers receiving at once (pods, in the cluster picture).
    pub workers: usize,
    /// Messages per receive (1 to 32); the sample takes 1.
    pub batch: u8,
    /// How long a received message stays invisible to others; the sample uses 60 s.
    pub visibility_timeout: Duration,
    /// A pause after each message, per worker; the sample's loop makes it about 1 s.
    pub pace: Option<Duration>,
    /// Paces each message by another clock instead of `pace` (the twin's consumer pods), and
    /// tells that clock how long storage work takes.
    pub pacer: Option<Pacer>,
    /// A message received more often than this goes to the poison queue.
    pub max_dequeue: u64,
    /// The longest wait between two receives that found nothing.
    pub idle_poll: Duration,
    /// Consecutive failed storage calls after which the consumer gives up.
    pub max_consecutive_errors: u32,
    pub stop: StopWhen,
    /// Fault injection: the first N messages are written to the table and then the worker
    /// "dies" before deleting them, as a crashed pod would; they come back after the
    /// visibility timeout.
    pub crash_after_write: u64,
    /// Where a twin consumer pod's lines go (its `kubectl logs`) and its processed messages
    /// are counted (its CPU in the metrics API).
    pub journal: Option<edw_twin::activity::PodJournal>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            workers: 1,
            batch: 1,
            visibility_timeout: Duration::from_secs(60),
            pace: None,
            pacer: None,
            max_dequeue: 5,
            idle_poll: Duration::from_secs(1),
            max_consecutive_errors: 10,
            stop: StopWhen::Cancelled,
            crash_after_write: 0,
            journal: None,
        }
    }
}

impl ConsumerOptions {
    /// Checks the options before anything is received.
    pub fn validate(&self) -> Result<(), ConsumerError> {
        if self.workers == 0 {
            return Err(ConsumerError::Options("workers must be at least 1".into()));
        }
        if !(1..=crate::storage::MAX_BATCH).contains(&self.batch) {
            return Err(ConsumerError::Options(format!(
                "batch must be 1 to {}, not {}",
                crate::storage::MAX_BATCH,
                self.batch
            )));
        }
        if self.visibility_timeout < Duration::from_secs(1) {
            return Err(ConsumerError::Options(
                "the visibility timeout must be at least 1 s".into(),
            ));
        }
        Ok(())
    }
}

/// A clock that paces consumer workers and learns how long their storage work takes: the
/// twin's governed clock, for which one message cycle is one simulated second.
pub trait WorkClock: Send + Sync {
    /// Real time one whole message cycle (receive, write, delete, pause) should take now.
    fn cycle(&self) -> Duration;
    /// Storage work starts; the ticket goes back to [`WorkClock::finished`].
    fn started(&self) -> u64;
    /// The storage work `ticket` stands for has finished (or failed).
    fn finished(&self, ticket: u64);
}

/// A shared [`WorkClock`] (equal when it is the same clock).
#[derive(Clone)]
pub struct Pacer(pub Arc<dyn WorkClock>);

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pacer")
    }
}

impl PartialEq for Pacer {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Storage work in progress on a [`WorkClock`]; ends when dropped, whatever path the work took.
pub(super) struct WorkTicket<'a> {
    clock: &'a dyn WorkClock,
    ticket: u64,
}

impl<'a> WorkTicket<'a> {
    pub(super) fn start(pacer: Option<&'a Pacer>) -> Option<WorkTicket<'a>> {
        pacer.map(|p| WorkTicket {
            clock: p.0.as_ref(),
            ticket: p.0.started(),
        })
    }
}

impl Drop for WorkTicket<'_> {
    fn drop(&mut self) {
        self.clock.finished(self.ticket);
    }
}

/// What the consumer did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerReport {
    /// Messages written to the table and deleted.
    pub processed: u64,
    /// Deliveries whose row already existed (an earlier delivery wrote it): not written again.
    pub redeliveries: u64,
    /// Malformed messages moved to the poison queue.
    pub poisoned_malformed: u64,
    /// Messages moved to the poison queue because they were received too often.
    pub poisoned_dequeue_limit: u64,
    /// Deletes that found the message already handed to another receiver (its visibility
    /// timeout had ended); that receiver finishes it.
    pub lost_leases: u64,
    /// Deliveries abandoned by injected crashes.
    pub injected_crashes: u64,
    /// Storage calls that failed (after retries) and were tried again later.
    pub errors: u64,
    pub elapsed_ms: u64,
}

/// The consumer could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("invalid consumer options: {0}")]
    Options(String),
    #[error("the consumer stopped")]
    Storage {
        /// What it had done until then.
        report: Box<ConsumerReport>,
        #[source]
        source: Box<StorageError>,
    },
}

#[derive(Default)]
struct Counters {
    processed: AtomicU64,
    redeliveries: AtomicU64,
    poisoned_malformed: AtomicU64,
    poisoned_dequeue_limit: AtomicU64,
    lost_leases: AtomicU64,
    injected_crashes: AtomicU64,
    errors: AtomicU64,
}

struct Shared<'a> {
    queue: &'a Queue,
    table: &'a Table,
    poison: &'a Queue,
    options: &'a ConsumerOptions,
    counters: Counters,
    crashes_left: AtomicU64,
    done: AtomicBool,
    fatal: Mutex<Option<StorageError>>,
}

/// Consumes `queue` into `table`, poison messages into `poison`, until `options.stop` or
/// `cancel`. A refused credential, a missing queue or table, or too many consecutive
/// failures stop it with an error that carries what it had done.
pub async fn consume(
    queue: &Queue,
    table: &Table,
    poison: &Queue,
    options: &ConsumerOptions,
    cancel: &CancellationToken,
) -> Result<ConsumerReport, ConsumerError> {
    options.validate()?;
    let start = Instant::now();
    let shared = Shared {
        queue,
        table,
        poison,
        options,
        counters: Counters::default(),
        crashes_left: AtomicU64::new(options.crash_after_write),
        done: AtomicBool::new(false),
        fatal: Mutex::new(None),
    };
    let workers = (0..options.workers).map(|_| worker(&shared, cancel));
    futures::future::join_all(workers).await;

    let c = &shared.counters;
    let report = ConsumerReport {
        processed: c.processed.load(Ordering::SeqCst),
        redeliveries: c.redeliveries.load(Ordering::SeqCst),
        poisoned_malformed: c.poisoned_malformed.load(Ordering::SeqCst),
        poisoned_dequeue_limit: c.poisoned_dequeue_limit.load(Ordering::SeqCst),
        lost_leases: c.lost_leases.load(Ordering::SeqCst),
        injected_crashes: c.injected_crashes.load(Ordering::SeqCst),
        errors: c.errors.load(Ordering::SeqCst),
        elapsed_ms: start.elapsed().as_millis() as u64,
    };
    match shared.fatal.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(source) => Err(ConsumerError::Storage {
            report: Box::new(report),
            source: Box::new(source),
        }),
        None => Ok(report),
    }
}

/// What handling one message came to.
enum Handled {
    Done,
    /// The injected crash: the worker stops touching this batch.
    Crashed,
}

async fn worker(shared: &Shared<'_>, cancel: &CancellationToken) {
    let options = shared.options;
    let mut idle_wait = Duration::from_millis(50);
    let mut consecutive_errors = 0u32;
    while !shared.done.load(Ordering::SeqCst) && !cancel.is_cancelled() {
        let step = async {
            let mut cycle_started = Instant::now();
            let mut work = WorkTicket::start(options.pacer.as_ref());
            let batch = shared
                .queue
                .receive(options.batch, options.visibility_timeout)
                .await?;
            if batch.is_empty() {
                return Ok::<_, StorageError>(None);
            }
            for message in &batch {
                work = work.or_else(|| WorkTicket::start(options.pacer.as_ref()));
                let handled = handle(shared, message).await?;
                drop(work.take());
                if let Handled::Crashed = handled {
                    break;
                }
                let pause = match (&options.pacer, options.pace) {
                    // The rest of the cycle: the work itself counts towards it.
                    (Some(pacer), _) => pacer.0.cycle().saturating_sub(cycle_started.elapsed()),
                    (None, Some(pace)) => pace,
                    (None, None) => Duration::ZERO,
                };
                if !pause.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
                cycle_started = Instant::now();
            }
            Ok(Some(batch.len()))
        };
        match step.await {
            Ok(Some(_)) => {
                consecutive_errors = 0;
                idle_wait = Duration::from_millis(50);
            }
            Ok(None) => {
                consecutive_errors = 0;
                if options.stop == StopWhen::Empty {
                    match shared.queue.approximate_count().await {
                        Ok(0) => {
                            shared.done.store(true, Ordering::SeqCst);
                            return;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if give_up(shared, e, &mut consecutive_errors) {
                                return;
                            }
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(idle_wait) => {}
                    _ = cancel.cancelled() => return,
                }
                idle_wait = (idle_wait * 2).min(options.idle_poll);
            }
            Err(e) => {
                if give_up(shared, e, &mut consecutive_errors) {
                    return;
                }
                let backoff = Duration::from_millis(200) * consecutive_errors.min(10);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = cancel.cancelled() => return,
                }
            }
        }
    }
}

/// Records a failed call; true when the consumer must stop (for every worker).
fn give_up(shared: &Shared<'_>, error: StorageError, consecutive: &mut u32) -> bool {
    shared.counters.errors.fetch_add(1, Ordering::SeqCst);
    *consecutive += 1;
    let fatal = error.is_authentication()
        || error.is_not_found()
        || matches!(error, StorageError::Config(_))
        || *consecutive >= shared.options.max_consecutive_errors;
    journal(shared, || {
        if fatal {
            format!("storage call failed, giving up: {error}")
        } else {
            format!("storage call failed; trying again: {error}")
        }
    });
    if fatal {
        shared.done.store(true, Ordering::SeqCst);
        shared
            .fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(error);
    } else {
        tracing::warn!(error = %error, "storage call failed; trying again");
    }
    fatal
}

async fn handle(shared: &Shared<'_>, message: &ReceivedMessage) -> Result<Handled, StorageError> {
    let counters = &shared.counters;
    if message.dequeue_count > shared.options.max_dequeue {
        tracing::warn!(
            id = %message.id,
            dequeue_count = message.dequeue_count,
            limit = shared.options.max_dequeue,
            "message received too often; moving it to the poison queue"
        );
        to_poison(shared, message).await?;
        journal(shared, || {
            format!(
                "message {} received {} times (limit {}): moved to the poison queue",
                message.id, message.dequeue_count, shared.options.max_dequeue
            )
        });
        counters
            .poisoned_dequeue_limit
            .fetch_add(1, Ordering::SeqCst);
        return Ok(Handled::Done);
    }
    let parsed = match parse_message(&message.text) {
        Ok(parsed) => parsed,
        Err(malformed) => {
            tracing::warn!(id = %message.id, %malformed, "moving it to the poison queue");
            to_poison(shared, message).await?;
            journal(shared, || {
                format!(
                    "message {} is malformed ({malformed}): moved to the poison queue",
                    message.id
                )
            });
            counters.poisoned_malformed.fetch_add(1, Ordering::SeqCst);
            return Ok(Handled::Done);
        }
    };
    let text = format!(
        "processed message {}: {:?} (srcStamp {}) -> table {}",
        message.id,
        parsed.msg,
        parsed.src_stamp,
        shared.table.name()
    );
    let entity = ProcessedEntity::new(
        &message.id,
        message.insertion_time,
        parsed,
        OffsetDateTime::now_utc(),
    );
    if shared.table.insert(&entity).await? == InsertOutcome::AlreadyExists {
        counters.redeliveries.fetch_add(1, Ordering::SeqCst);
    }
    let crash = shared
        .crashes_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if crash {
        counters.injected_crashes.fetch_add(1, Ordering::SeqCst);
        return Ok(Handled::Crashed);
    }
    delete(shared, message).await?;
    counters.processed.fetch_add(1, Ordering::SeqCst);
    if let Some(journal) = &shared.options.journal {
        journal.processed();
        journal.log(text);
    }
    Ok(Handled::Done)
}

/// Writes a line to the pod's journal, when the consumer runs in a twin pod.
fn journal(shared: &Shared<'_>, line: impl FnOnce() -> String) {
    if let Some(journal) = &shared.options.journal {
        journal.log(line());
    }
}

/// Copies the message to the poison queue, then deletes it: never lost, at worst (if the
/// delete fails) in both queues until it is received again.
async fn to_poison(shared: &Shared<'_>, message: &ReceivedMessage) -> Result<(), StorageError> {
    shared.poison.send(&message.text).await?;
    delete(shared, message).await
}

async fn delete(shared: &Shared<'_>, message: &ReceivedMessage) -> Result<(), StorageError> {
    match shared.queue.delete_message(message).await {
        Ok(()) => Ok(()),
        // The visibility timeout ended and another receiver has it (404 MessageNotFound, or
        // 400 PopReceiptMismatch): that receiver finishes it.
        Err(e) if e.is_not_found() || e.code() == Some("PopReceiptMismatch") => {
            shared.counters.lost_leases.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        Err(e) => Err(e),
    }
}
