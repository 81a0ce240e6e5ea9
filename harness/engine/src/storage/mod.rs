//! Every use of the Azure SDK lives here: queue and table operations against real Azure
//! Storage or Azurite, with the three ways to authenticate the suite supports and retries of
//! transient failures (408, 429, 5xx, connection resets) that honour `Retry-After`; and the
//! Entra ID sign-in ([`EntraSignIn`], [`EntraCredential`]) that storage and Azure Resource
//! Manager share.
//!
//! The rest of the harness sees only the plain types of this module ([`Queue`], [`Table`],
//! [`ReceivedMessage`], [`StorageError`], [`EntraCredential`]); no SDK type crosses its boundary.

mod connect;
mod error;
mod federated;
mod queue;
mod signin;
mod table;

pub use connect::{RetrySettings, Storage, StorageAuth, StorageTarget, DEVELOPMENT_ACCOUNT};
pub use error::StorageError;
pub use queue::{PeekedMessage, Queue, QueueStats, ReceivedMessage, MAX_BATCH};
pub use signin::{
    AssertionSource, CredentialOptions, EntraCredential, EntraSignIn, FederatedIdentity,
    SignInError, DEFAULT_AUTHORITY_HOST, TOKEN_EXCHANGE_AUDIENCE,
};
pub use table::{InsertOutcome, Table};
