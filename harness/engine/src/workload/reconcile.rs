//! Reconciliation: compares what the producer sent with the rows in the table, the poison
//! queue and (for a stranded tail) the queue, and puts every sent message in one class:
//! processed once, duplicated, poisoned, stranded or lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::message::{label, parse_message, ProcessedEntity};
use super::producer::ProduceReport;
use crate::storage::{Queue, StorageError, Table, MAX_BATCH};

/// The outcome of a produce-and-consume run. Every sent message is in exactly one of
/// `processed_once`, `duplicated`, `poisoned`, `stranded` and `lost`:
/// `sent = processed once + duplicated + poisoned + stranded + lost`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reconciliation {
    /// Messages the producer sent.
    pub sent: u64,
    /// Sent messages with exactly one row.
    pub processed_once: u64,
    /// Sent messages with more than one row: (message, rows).
    pub duplicated: Vec<(String, u64)>,
    /// Numbers of sent messages with no row that are nowhere else either: not in the poison
    /// queue, not (see [`Reconciliation::strand`]) still on the queue.
    pub lost: Vec<u64>,
    /// Numbers of sent messages with no row that are still on the queue (found by peeking, see
    /// [`Reconciliation::strand`]): not processed, not lost.
    pub stranded: Vec<u64>,
    /// Sent messages with no row that are in the poison queue (found by content).
    pub poisoned: u64,
    /// Messages in the poison queue that are not among the sent messages without a row (a
    /// scenario's own malformed input, say).
    pub poisoned_other: u64,
    /// Rows whose message the producer did not send in this run.
    pub unexpected: u64,
}

impl Reconciliation {
    /// True when every sent message has exactly one row.
    pub fn is_exact(&self) -> bool {
        self.processed_once == self.sent
            && self.duplicated.is_empty()
            && self.lost.is_empty()
            && self.stranded.is_empty()
    }

    /// True when nothing was lost or duplicated: sent = processed once + stranded + poisoned.
    pub fn accounted(&self) -> bool {
        self.duplicated.is_empty() && self.lost.is_empty()
    }

    /// Moves the lost messages that `on_queue` names (by number) to `stranded`.
    pub fn strand(&mut self, on_queue: impl Fn(u64) -> bool) {
        let (stranded, lost) = std::mem::take(&mut self.lost)
            .into_iter()
            .partition(|i| on_queue(*i));
        self.lost = lost;
        self.stranded.extend::<Vec<u64>>(stranded);
        self.stranded.sort_unstable();
    }

    /// One line for people, every count stated (zeros too): `sent 10, processed once 0,
    /// duplicated 0, lost 0, stranded 10, poisoned 0`, then the poison queue's other messages
    /// and unexpected rows when there are any.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "sent {}, processed once {}, duplicated {}, lost {}, stranded {}, poisoned {}",
            self.sent,
            self.processed_once,
            self.duplicated.len(),
            self.lost.len(),
            self.stranded.len(),
            self.poisoned
        );
        if self.poisoned_other > 0 {
            line.push_str(&format!(
                " (the poison queue also holds {} message(s) the load did not send)",
                self.poisoned_other
            ));
        }
        if self.unexpected > 0 {
            line.push_str(&format!(", unexpected rows {}", self.unexpected));
        }
        line
    }

    /// The counts as report properties: `messages.sent`, `messages.processed_once`,
    /// `messages.duplicated`, `messages.lost`, `messages.stranded`, `messages.poisoned` (and
    /// `messages.poisoned_other`, `messages.unexpected`).
    pub fn properties(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("messages.sent", self.sent),
            ("messages.processed_once", self.processed_once),
            ("messages.duplicated", self.duplicated.len() as u64),
            ("messages.lost", self.lost.len() as u64),
            ("messages.stranded", self.stranded.len() as u64),
            ("messages.poisoned", self.poisoned),
            ("messages.poisoned_other", self.poisoned_other),
            ("messages.unexpected", self.unexpected),
        ]
    }
}

/// Reads `table` and `poison` and reconciles them with `produced`. A sent message without a
/// row is `lost` unless it is in the poison queue (`poisoned`); a caller that can see the queue
/// moves the ones still there to `stranded` ([`Reconciliation::strand`]).
pub async fn reconcile(
    produced: &ProduceReport,
    table: &Table,
    poison: &Queue,
) -> Result<Reconciliation, StorageError> {
    reconcile_since(produced, table, poison, "").await
}

/// [`reconcile`] counting only the rows whose `srcStamp` is at or after `since` (the sample's
/// `%Y-%m-%d %H:%M:%S.%f`, which sorts as it reads): in a table that also holds earlier traffic
/// (the team's, with `--use-deployed`), only the messages stamped since this run's load began.
pub async fn reconcile_since(
    produced: &ProduceReport,
    table: &Table,
    poison: &Queue,
    since: &str,
) -> Result<Reconciliation, StorageError> {
    let rows: Vec<ProcessedEntity> = table.query(None).await?;
    let mut rows_per_message: BTreeMap<String, u64> = BTreeMap::new();
    for row in rows.into_iter().filter(|r| r.src_stamp.as_str() >= since) {
        *rows_per_message.entry(row.data).or_default() += 1;
    }
    let in_poison = if poison.exists().await? {
        poison.approximate_count().await?
    } else {
        0
    };
    let mut result = Reconciliation {
        sent: produced.sent_count(),
        ..Reconciliation::default()
    };
    let mut without_row = Vec::new();
    for &index in &produced.sent {
        match rows_per_message.remove(&label(index)) {
            Some(1) => result.processed_once += 1,
            Some(n) => result.duplicated.push((label(index), n)),
            None => without_row.push(index),
        }
    }
    result.unexpected = rows_per_message.values().sum();
    // The poison queue is read by content only when a sent message has no row.
    let poisoned: BTreeSet<String> = if without_row.is_empty() || in_poison == 0 {
        BTreeSet::new()
    } else {
        message_labels(poison, in_poison).await?
    };
    let (poisoned, lost): (Vec<u64>, Vec<u64>) = without_row
        .into_iter()
        .partition(|i| poisoned.contains(&label(*i)));
    result.poisoned = poisoned.len() as u64;
    result.poisoned_other = in_poison.saturating_sub(result.poisoned);
    result.lost = lost;
    Ok(result)
}

/// The `msg` of every well-formed message on `queue` (about `count` of them): peeked when they
/// fit in one peek, else received (hidden for a minute, never deleted) until each was seen.
async fn message_labels(queue: &Queue, count: u64) -> Result<BTreeSet<String>, StorageError> {
    let texts: Vec<String> = if count <= u64::from(MAX_BATCH) {
        queue
            .peek(MAX_BATCH)
            .await?
            .into_iter()
            .map(|m| m.text)
            .collect()
    } else {
        let mut seen = BTreeMap::new();
        // Bounded: each round sees up to 32 new messages, or the queue has none left to give.
        for _ in 0..count.div_ceil(u64::from(MAX_BATCH)) * 2 + 2 {
            let batch = queue.receive(MAX_BATCH, Duration::from_secs(60)).await?;
            if batch.is_empty() {
                break;
            }
            seen.extend(batch.into_iter().map(|m| (m.id, m.text)));
            if seen.len() as u64 >= count {
                break;
            }
        }
        seen.into_values().collect()
    };
    Ok(texts
        .iter()
        .filter_map(|t| parse_message(t).ok())
        .map(|m| m.msg)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::Reconciliation;

    #[test]
    fn every_count_is_stated_and_stranding_moves_messages_out_of_lost() {
        let mut r = Reconciliation {
            sent: 10,
            processed_once: 6,
            lost: vec![3, 5, 7, 9],
            poisoned: 0,
            ..Reconciliation::default()
        };
        r.strand(|i| i != 7);
        assert_eq!(
            (r.lost.clone(), r.stranded.clone()),
            (vec![7], vec![3, 5, 9])
        );
        assert_eq!(
            r.summary(),
            "sent 10, processed once 6, duplicated 0, lost 1, stranded 3, poisoned 0"
        );
        assert!(!r.accounted() && !r.is_exact());
        let sum: u64 = r
            .properties()
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    *k,
                    "messages.sent" | "messages.poisoned_other" | "messages.unexpected"
                )
            })
            .map(|(_, v)| v)
            .sum();
        assert_eq!(sum, r.sent, "every sent message counted once");
    }
}
