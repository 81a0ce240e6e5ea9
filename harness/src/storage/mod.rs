//! Every use of the Azure Storage SDK lives here: queue and table operations against real
//! Azure Storage or Azurite, with the three ways to authenticate the suite supports and retries
//! of transient failures (408, 429, 5xx, connection resets) that honour `Retry-After`.
//!
//! The rest of the harness sees only the plain types of this module ([`Queue`], [`Table`],
//! [`ReceivedMessage`], [`StorageError`]); no SDK type crosses its boundary.

mod connect;
mod error;
mod queue;
mod table;

pub use connect::{RetrySettings, Storage, StorageAuth, StorageTarget, DEVELOPMENT_ACCOUNT};
pub use error::StorageError;
pub use queue::{PeekedMessage, Queue, QueueStats, ReceivedMessage, MAX_BATCH};
pub use table::{InsertOutcome, Table};
