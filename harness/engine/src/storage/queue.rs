//! Queue operations: create/delete a queue, send, receive a batch with a visibility timeout,
//! delete by pop receipt, peek, approximate count and clear. A queue may be partitioned over
//! several Azurite queue services (one Azurite process cannot carry a 10,000-message backlog:
//! its receive and delete cost grows with the messages it holds); it then behaves as one
//! queue: sends go round-robin, a receive tries each partition in turn, counts add up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use azure_storage_queues::prelude::{NumberOfMessages, PopReceipt, VisibilityTimeout};
use azure_storage_queues::QueueClient;
use time::OffsetDateTime;

use super::error::Failed;
use super::StorageError;

/// The most messages one receive or peek returns (a service limit).
pub const MAX_BATCH: u8 = 32;

/// A message taken from the queue; it is invisible to others until its visibility timeout
/// ends or it is deleted with its pop receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub id: String,
    pub pop_receipt: String,
    /// How many times it has been received, this time included.
    pub dequeue_count: u64,
    pub text: String,
    /// When it was first put on the queue; stays the same across redeliveries.
    pub insertion_time: OffsetDateTime,
    /// Which partition of a partitioned queue holds it (0 for a queue of one service).
    pub partition: usize,
}

/// A message seen without taking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekedMessage {
    pub id: String,
    pub dequeue_count: u64,
    pub text: String,
}

/// Counts for one queue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    pub queue: String,
    /// The service's approximate count: visible and in-flight (invisible) messages.
    pub approximate: u64,
    /// Visible messages, by peeking (exact below 32).
    pub visible: u64,
    /// True when `visible` is only a lower bound (a peek returns at most 32).
    pub visible_is_lower_bound: bool,
}

/// One queue of the storage account (on one queue service, or partitioned over several).
#[derive(Debug, Clone)]
pub struct Queue {
    partitions: Arc<[Partition]>,
    name: String,
    /// The partition the next send or receive starts at (shared by clones of the handle).
    cursor: Arc<AtomicUsize>,
}

/// The queue on one queue service.
#[derive(Debug)]
struct Partition {
    client: QueueClient,
    endpoint: String,
}

/// Spreads the first partition of new handles, so that consumers start on different ones.
static NEXT_HANDLE: AtomicUsize = AtomicUsize::new(0);

impl Queue {
    /// `services`: (client of this queue, its service's endpoint), one per partition.
    pub(super) fn new(services: Vec<(QueueClient, String)>, name: &str) -> Self {
        let partitions: Arc<[Partition]> = services
            .into_iter()
            .map(|(client, endpoint)| Partition { client, endpoint })
            .collect();
        Queue {
            cursor: Arc::new(AtomicUsize::new(
                NEXT_HANDLE.fetch_add(1, Ordering::Relaxed) % partitions.len().max(1),
            )),
            partitions,
            name: name.to_owned(),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many queue services the queue is spread over (1 unless partitioned).
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    fn failed<'a>(&'a self, partition: &'a Partition, operation: &'static str) -> Failed<'a> {
        Failed {
            operation,
            resource: &self.name,
            endpoint: &partition.endpoint,
        }
    }

    /// The partitions in the order the next send or receive tries them (each call moves on).
    fn rotation(&self) -> impl Iterator<Item = (usize, &Partition)> {
        let n = self.partitions.len();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..n).map(move |i| {
            let index = (start + i) % n;
            (index, &self.partitions[index])
        })
    }

    /// Creates the queue; an existing queue is fine.
    pub async fn create(&self) -> Result<(), StorageError> {
        for part in self.partitions.iter() {
            self.failed(part, "create queue")
                .tolerate(part.client.create().await, StorageError::is_conflict)?;
        }
        Ok(())
    }

    /// Deletes the queue; a missing queue is fine.
    pub async fn delete(&self) -> Result<(), StorageError> {
        for part in self.partitions.iter() {
            self.failed(part, "delete queue")
                .tolerate(part.client.delete().await, StorageError::is_not_found)?;
        }
        Ok(())
    }

    /// True when the queue exists (on any partition: a queue left on one is not gone, which is
    /// what a cleanup check needs to know).
    pub async fn exists(&self) -> Result<bool, StorageError> {
        for part in self.partitions.iter() {
            match part.client.get_metadata().await {
                Ok(_) => return Ok(true),
                Err(e) => match self.failed(part, "get queue properties").classify(e) {
                    missing if missing.is_not_found() => {}
                    other => return Err(other),
                },
            }
        }
        Ok(false)
    }

    /// Puts one message (on the next partition in turn); returns its id.
    pub async fn send(&self, text: &str) -> Result<String, StorageError> {
        let Some((_, part)) = self.rotation().next() else {
            return Err(StorageError::Config(format!(
                "queue {} has no queue service",
                self.name
            )));
        };
        part.client
            .put_message(text)
            .await
            .map(|r| r.queue_message.message_id)
            .map_err(|e| self.failed(part, "send message").classify(e))
    }

    /// Receives up to `max` (1 to 32) messages and hides them for `visibility`
    /// (at least 1 s, whole seconds). A partitioned queue answers from the first partition, in
    /// turn, that has a visible message.
    pub async fn receive(
        &self,
        max: u8,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, StorageError> {
        for (index, part) in self.rotation() {
            let received = self.receive_from(index, part, max, visibility).await?;
            if !received.is_empty() {
                return Ok(received);
            }
        }
        Ok(Vec::new())
    }

    async fn receive_from(
        &self,
        index: usize,
        part: &Partition,
        max: u8,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, StorageError> {
        let response = part
            .client
            .get_messages()
            .number_of_messages(NumberOfMessages::new(max.clamp(1, MAX_BATCH)))
            .visibility_timeout(VisibilityTimeout::new(
                visibility.max(Duration::from_secs(1)),
            ))
            .await
            .map_err(|e| self.failed(part, "receive messages").classify(e))?;
        Ok(response
            .messages
            .into_iter()
            .map(|m| ReceivedMessage {
                id: m.message_id,
                pop_receipt: m.pop_receipt,
                dequeue_count: m.dequeue_count,
                text: m.message_text,
                insertion_time: m.insertion_time,
                partition: index,
            })
            .collect())
    }

    /// Deletes a received message. A message that is already gone (deleted by another
    /// receiver after its visibility timeout) gives [`StorageError::NotFound`].
    pub async fn delete_message(&self, message: &ReceivedMessage) -> Result<(), StorageError> {
        let Some(part) = self.partitions.get(message.partition) else {
            return Err(StorageError::Config(format!(
                "message {} names partition {} of queue {}, which has {}",
                message.id,
                message.partition,
                self.name,
                self.partitions.len()
            )));
        };
        part.client
            .pop_receipt_client(PopReceipt::new(
                message.id.clone(),
                message.pop_receipt.clone(),
            ))
            .delete()
            .await
            .map(|_| ())
            .map_err(|e| self.failed(part, "delete message").classify(e))
    }

    /// Looks at up to `max` (1 to 32) visible messages without taking them (over the
    /// partitions in order).
    pub async fn peek(&self, max: u8) -> Result<Vec<PeekedMessage>, StorageError> {
        let max = max.clamp(1, MAX_BATCH);
        let mut peeked = Vec::new();
        for part in self.partitions.iter() {
            let wanted = usize::from(max) - peeked.len();
            if wanted == 0 {
                break;
            }
            let response = part
                .client
                .peek_messages()
                .number_of_messages(NumberOfMessages::new(wanted as u8))
                .await
                .map_err(|e| self.failed(part, "peek messages").classify(e))?;
            peeked.extend(response.messages.into_iter().map(|m| PeekedMessage {
                id: m.message_id,
                dequeue_count: m.dequeue_count,
                text: m.message_text,
            }));
        }
        Ok(peeked)
    }

    /// The service's approximate message count (visible and in-flight), as KEDA reads it
    /// (summed over the partitions).
    ///
    /// The partitions are read at once: a partitioned queue stands for one queue, whose count
    /// is one call; read one after the other, a read took the sum of the partitions' times
    /// (and a KEDA poll of eight partitions held the twin's governed clock at x2-x3 when few
    /// pods ran).
    pub async fn approximate_count(&self) -> Result<u64, StorageError> {
        let counts = futures::future::try_join_all(self.partitions.iter().map(|part| async move {
            part.client
                .get_metadata()
                .await
                .map(|r| r.approximate_messages_count as u64)
                .map_err(|e| self.failed(part, "get queue properties").classify(e))
        }))
        .await?;
        Ok(counts.iter().sum())
    }

    /// Approximate and visible counts.
    pub async fn stats(&self) -> Result<QueueStats, StorageError> {
        let approximate = self.approximate_count().await?;
        let visible = self.peek(MAX_BATCH).await?.len() as u64;
        Ok(QueueStats {
            queue: self.name.clone(),
            approximate,
            visible,
            visible_is_lower_bound: visible >= u64::from(MAX_BATCH),
        })
    }

    /// Deletes every message.
    pub async fn clear(&self) -> Result<(), StorageError> {
        for part in self.partitions.iter() {
            part.client
                .clear_messages()
                .await
                .map_err(|e| self.failed(part, "clear messages").classify(e))?;
        }
        Ok(())
    }
}
