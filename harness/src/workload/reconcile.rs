//! Reconciliation: compares what the producer sent with the rows in the table and the poison
//! queue, and says what was processed once, duplicated, lost or unexpected.

use std::collections::BTreeMap;

use super::message::{label, ProcessedEntity};
use super::producer::ProduceReport;
use crate::storage::{Queue, StorageError, Table};

/// The outcome of a produce-and-consume run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reconciliation {
    /// Messages the producer sent.
    pub sent: u64,
    /// Sent messages with exactly one row.
    pub processed_once: u64,
    /// Sent messages with more than one row: (message, rows).
    pub duplicated: Vec<(String, u64)>,
    /// Numbers of sent messages with no row (one that ended in the poison queue is among
    /// them: see `poisoned`).
    pub lost: Vec<u64>,
    /// Messages in the poison queue.
    pub poisoned: u64,
    /// Rows whose message the producer did not send in this run.
    pub unexpected: u64,
}

impl Reconciliation {
    /// True when every sent message has exactly one row.
    pub fn is_exact(&self) -> bool {
        self.processed_once == self.sent && self.duplicated.is_empty() && self.lost.is_empty()
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        format!(
            "sent {}, processed once {}, duplicated {}, lost {}, poisoned {}, unexpected rows {}",
            self.sent,
            self.processed_once,
            self.duplicated.len(),
            self.lost.len(),
            self.poisoned,
            self.unexpected
        )
    }
}

/// Reads `table` and `poison` and reconciles them with `produced`.
pub async fn reconcile(
    produced: &ProduceReport,
    table: &Table,
    poison: &Queue,
) -> Result<Reconciliation, StorageError> {
    let rows: Vec<ProcessedEntity> = table.query(None).await?;
    let mut rows_per_message: BTreeMap<String, u64> = BTreeMap::new();
    for row in rows {
        *rows_per_message.entry(row.data).or_default() += 1;
    }
    let poisoned = if poison.exists().await? {
        poison.approximate_count().await?
    } else {
        0
    };
    let mut result = Reconciliation {
        sent: produced.sent_count(),
        poisoned,
        ..Reconciliation::default()
    };
    for &index in &produced.sent {
        match rows_per_message.remove(&label(index)) {
            Some(1) => result.processed_once += 1,
            Some(n) => result.duplicated.push((label(index), n)),
            None => result.lost.push(index),
        }
    }
    result.unexpected = rows_per_message.values().sum();
    Ok(result)
}
