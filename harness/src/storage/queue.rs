//! Queue operations: create/delete a queue, send, receive a batch with a visibility timeout,
//! delete by pop receipt, peek, approximate count and clear.

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

/// One queue of the storage account.
#[derive(Debug, Clone)]
pub struct Queue {
    client: QueueClient,
    name: String,
    endpoint: String,
}

impl Queue {
    pub(super) fn new(client: QueueClient, name: &str, endpoint: &str) -> Self {
        Queue {
            client,
            name: name.to_owned(),
            endpoint: endpoint.to_owned(),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn failed(&self, operation: &'static str) -> Failed<'_> {
        Failed {
            operation,
            resource: &self.name,
            endpoint: &self.endpoint,
        }
    }

    /// Creates the queue; an existing queue is fine.
    pub async fn create(&self) -> Result<(), StorageError> {
        self.failed("create queue")
            .tolerate(self.client.create().await, StorageError::is_conflict)
    }

    /// Deletes the queue; a missing queue is fine.
    pub async fn delete(&self) -> Result<(), StorageError> {
        self.failed("delete queue")
            .tolerate(self.client.delete().await, StorageError::is_not_found)
    }

    /// True when the queue exists.
    pub async fn exists(&self) -> Result<bool, StorageError> {
        match self.client.get_metadata().await {
            Ok(_) => Ok(true),
            Err(e) => match self.failed("get queue properties").classify(e) {
                missing if missing.is_not_found() => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Puts one message; returns its id.
    pub async fn send(&self, text: &str) -> Result<String, StorageError> {
        self.client
            .put_message(text)
            .await
            .map(|r| r.queue_message.message_id)
            .map_err(|e| self.failed("send message").classify(e))
    }

    /// Receives up to `max` (1 to 32) messages and hides them for `visibility`
    /// (at least 1 s, whole seconds).
    pub async fn receive(
        &self,
        max: u8,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, StorageError> {
        let response = self
            .client
            .get_messages()
            .number_of_messages(NumberOfMessages::new(max.clamp(1, MAX_BATCH)))
            .visibility_timeout(VisibilityTimeout::new(
                visibility.max(Duration::from_secs(1)),
            ))
            .await
            .map_err(|e| self.failed("receive messages").classify(e))?;
        Ok(response
            .messages
            .into_iter()
            .map(|m| ReceivedMessage {
                id: m.message_id,
                pop_receipt: m.pop_receipt,
                dequeue_count: m.dequeue_count,
                text: m.message_text,
                insertion_time: m.insertion_time,
            })
            .collect())
    }

    /// Deletes a received message. A message that is already gone (deleted by another
    /// receiver after its visibility timeout) gives [`StorageError::NotFound`].
    pub async fn delete_message(&self, message: &ReceivedMessage) -> Result<(), StorageError> {
        self.client
            .pop_receipt_client(PopReceipt::new(
                message.id.clone(),
                message.pop_receipt.clone(),
            ))
            .delete()
            .await
            .map(|_| ())
            .map_err(|e| self.failed("delete message").classify(e))
    }

    /// Looks at up to `max` (1 to 32) visible messages without taking them.
    pub async fn peek(&self, max: u8) -> Result<Vec<PeekedMessage>, StorageError> {
        let response = self
            .client
            .peek_messages()
            .number_of_messages(NumberOfMessages::new(max.clamp(1, MAX_BATCH)))
            .await
            .map_err(|e| self.failed("peek messages").classify(e))?;
        Ok(response
            .messages
            .into_iter()
            .map(|m| PeekedMessage {
                id: m.message_id,
                dequeue_count: m.dequeue_count,
                text: m.message_text,
            })
            .collect())
    }

    /// The service's approximate message count (visible and in-flight), as KEDA reads it.
    pub async fn approximate_count(&self) -> Result<u64, StorageError> {
        self.client
            .get_metadata()
            .await
            .map(|r| r.approximate_messages_count as u64)
            .map_err(|e| self.failed("get queue properties").classify(e))
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
        self.client
            .clear_messages()
            .await
            .map(|_| ())
            .map_err(|e| self.failed("clear messages").classify(e))
    }
}
