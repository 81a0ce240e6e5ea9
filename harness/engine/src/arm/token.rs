//! Where ARM bearer tokens come from: the [`TokenSource`] trait, [`DefaultCredentialToken`]
//! (the Entra ID credential `edw_engine::storage` chooses, [`crate::storage::EntraSignIn`]) and [`StaticToken`]
//! (tests, a pasted token).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::secrets::Secret;
use crate::storage::EntraCredential;

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

/// Entra ID through the credential [`crate::storage::EntraSignIn`] chooses (GitHub Actions OIDC federation,
/// a federated token file, else `DefaultAzureCredential`), as for storage.
#[derive(Debug, Clone)]
pub struct DefaultCredentialToken {
    credential: EntraCredential,
    scope: String,
}

impl DefaultCredentialToken {
    /// For the public-cloud Resource Manager ([`ARM_SCOPE`]).
    pub fn new() -> Result<Self, String> {
        Self::with_scope(ARM_SCOPE)
    }

    /// For another cloud's Resource Manager (`https://management.usgovcloudapi.net/.default`).
    pub fn with_scope(scope: &str) -> Result<Self, String> {
        let credential = EntraCredential::from_process_env().map_err(|e| e.to_string())?;
        Ok(Self::from_credential(credential, scope))
    }

    /// Tokens for `scope` from `credential`.
    pub fn from_credential(credential: EntraCredential, scope: &str) -> Self {
        DefaultCredentialToken {
            credential,
            scope: scope.to_owned(),
        }
    }

    /// Which credential gives the tokens (never a secret).
    pub fn describe(&self) -> &str {
        self.credential.describe()
    }
}

impl TokenSource for DefaultCredentialToken {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            self.credential
                .token(&self.scope)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
