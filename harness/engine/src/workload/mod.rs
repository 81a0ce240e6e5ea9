//! The sample's workload in Rust: the message format, the producer, the consumer and the
//! reconciliation that says what was sent, processed, duplicated and lost.
//!
//! Deviations from the sample (`app/keda/aqs-*.py`), each deliberate:
//! - the table entity's keys derive from the queue message (PartitionKey = message id,
//!   RowKey = its insertion time), so a redelivered message cannot add a second row;
//! - a message that cannot be parsed, or that was received more than `max_dequeue` times, is
//!   copied to `<queue>-poison` and then deleted, instead of coming back forever;
//! - receives can be batched (up to 32), and the per-message pacing that makes the sample
//!   process about one message per second per pod is an option, not a fixed sleep.

mod consumer;
mod message;
mod producer;
mod reconcile;
mod slice_producer;

pub use consumer::{
    consume, ConsumerError, ConsumerOptions, ConsumerReport, Pacer, StopWhen, WorkClock,
};
pub use message::{
    format_stamp, label, message_text, parse_message, poison_queue_name, MalformedMessage,
    ProcessedEntity, ScaleMessage,
};
pub use producer::{produce, produce_paced, ProduceReport, ProducerError, ProducerPlan};
pub use reconcile::{reconcile, reconcile_since, Reconciliation};
pub use slice_producer::{send_slice, SliceCommand, SliceReport, REPORT_PREFIX};
