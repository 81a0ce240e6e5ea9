//! Where ARM bearer tokens come from: the [`TokenSource`] trait, [`DefaultCredentialToken`]
//! (azure_identity's `DefaultAzureCredential`) and [`StaticToken`] (tests, a pasted token).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use azure_core::auth::TokenCredential;
use azure_identity::{DefaultAzureCredential, TokenCredentialOptions};

use crate::secrets::{redact, Secret};

/// The token scope of the public-cloud Resource Manager.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// What [`TokenSource::token`] returns: the token, or a reason (never containing a token).
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Secret, String>> + Send + 'a>>;

/// Gives a bearer token for ARM. Implementations cache as they see fit.
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// A current token.
    fn token(&self) -> TokenFuture<'_>;
}

/// A fixed token (tests, or a token from `az account get-access-token`).
#[derive(Debug, Clone)]
pub struct StaticToken(Secret);

impl StaticToken {
    /// Wraps `token` as a [`Secret`], so that it is redacted from every text.
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken(Secret::new(token))
    }
}

impl TokenSource for StaticToken {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// Entra ID through `DefaultAzureCredential`: environment (client secret or workload-identity
/// federated token), managed identity, then the Azure CLI, as for storage.
pub struct DefaultCredentialToken {
    credential: Arc<DefaultAzureCredential>,
    scope: String,
}

impl fmt::Debug for DefaultCredentialToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultCredentialToken")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl DefaultCredentialToken {
    /// For the public-cloud Resource Manager ([`ARM_SCOPE`]).
    pub fn new() -> Result<Self, String> {
        Self::with_scope(ARM_SCOPE)
    }

    /// For another cloud's Resource Manager (`https://management.usgovcloudapi.net/.default`).
    pub fn with_scope(scope: &str) -> Result<Self, String> {
        let credential = DefaultAzureCredential::create(TokenCredentialOptions::default())
            .map_err(|e| redact(&format!("DefaultAzureCredential: {e}")))?;
        Ok(DefaultCredentialToken {
            credential: Arc::new(credential),
            scope: scope.to_owned(),
        })
    }
}

impl TokenSource for DefaultCredentialToken {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let token = self
                .credential
                .get_token(&[self.scope.as_str()])
                .await
                .map_err(|e| redact(&format!("DefaultAzureCredential: {e}")))?;
            Ok(Secret::new(token.token.secret()))
        })
    }
}
