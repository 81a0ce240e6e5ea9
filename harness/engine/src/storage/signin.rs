//! Which Entra ID credential storage and Azure Resource Manager sign in with, chosen from the
//! environment ([`EntraSignIn`]): GitHub Actions OIDC federation when the job may request ID
//! tokens, else a federated token file re-read for every new token, else azure_identity's
//! `DefaultAzureCredential`; and [`EntraCredential`], the one handle both use.
//!
//! Why not `DefaultAzureCredential` alone: in CI it ends at the Azure CLI, which holds the
//! GitHub ID token `azure/login` got (valid about 5 minutes) and cannot renew it (AADSTS700024
//! once a run needs a token for a new scope later), and azure_identity 0.21's
//! `WorkloadIdentityCredential` reads `AZURE_FEDERATED_TOKEN_FILE` once, when it is created.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azure_core::auth::TokenCredential;
use azure_identity::{DefaultAzureCredential, TokenCredentialOptions};

use super::federated::FederatedCredential;
use crate::error_chain;
use crate::secrets::Secret;

/// The audience Entra ID expects in a federated assertion.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The public cloud's Entra ID, when `AZURE_AUTHORITY_HOST` is not set.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";

pub(super) const REQUEST_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
const REQUEST_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
const CLIENT_ID_VAR: &str = "AZURE_CLIENT_ID";
const TENANT_ID_VAR: &str = "AZURE_TENANT_ID";
pub(super) const TOKEN_FILE_VAR: &str = "AZURE_FEDERATED_TOKEN_FILE";
pub(super) const AUTHORITY_HOST_VAR: &str = "AZURE_AUTHORITY_HOST";

/// The Entra ID application (or user-assigned managed identity) a federated assertion signs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedIdentity {
    /// `AZURE_CLIENT_ID`.
    pub client_id: String,
    /// `AZURE_TENANT_ID`.
    pub tenant_id: String,
    /// `AZURE_AUTHORITY_HOST`, else [`DEFAULT_AUTHORITY_HOST`].
    pub authority_host: String,
}

/// Where a federated credential gets a fresh assertion (a JWT) each time it needs an Entra token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssertionSource {
    /// GitHub's OIDC provider: `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=api://AzureADTokenExchange`
    /// with `Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN` (GitHub sets both in a job
    /// with `permissions: id-token: write`; the request token lasts as long as the job).
    GithubActions {
        request_url: String,
        request_token: Secret,
    },
    /// A file someone else keeps fresh (AKS workload identity's projected service account
    /// token, or a refresher of one's own): read again for every new Entra token.
    TokenFile(PathBuf),
}

/// Which Entra ID credential to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntraSignIn {
    /// A federated assertion exchanged for an Entra token: see [`AssertionSource`].
    Federated {
        identity: FederatedIdentity,
        assertion: AssertionSource,
    },
    /// azure_identity's `DefaultAzureCredential`: environment (a federated token read once, or
    /// a client secret), managed identity, then the Azure CLI.
    DefaultChain,
}

impl EntraSignIn {
    /// The choice for the environment `var` describes (a name to its value; an empty value
    /// counts as unset): GitHub Actions federation when `ACTIONS_ID_TOKEN_REQUEST_URL`,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, `AZURE_CLIENT_ID` and `AZURE_TENANT_ID` are all set;
    /// else the token file when `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID` and
    /// `AZURE_TENANT_ID` are (what `DefaultAzureCredential` would use first, but read once);
    /// else `DefaultAzureCredential`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> EntraSignIn {
        let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let (Some(client_id), Some(tenant_id)) = (set(CLIENT_ID_VAR), set(TENANT_ID_VAR)) else {
            return EntraSignIn::DefaultChain;
        };
        let identity = FederatedIdentity {
            client_id: client_id.trim().to_owned(),
            tenant_id: tenant_id.trim().to_owned(),
            authority_host: set(AUTHORITY_HOST_VAR).map_or_else(
                || DEFAULT_AUTHORITY_HOST.to_owned(),
                |h| h.trim().to_owned(),
            ),
        };
        let assertion = match (
            set(REQUEST_URL_VAR),
            set(REQUEST_TOKEN_VAR),
            set(TOKEN_FILE_VAR),
        ) {
            (Some(request_url), Some(request_token), _) => AssertionSource::GithubActions {
                request_url: request_url.trim().to_owned(),
                request_token: Secret::new(request_token.trim()),
            },
            (_, _, Some(path)) => AssertionSource::TokenFile(PathBuf::from(path.trim())),
            _ => return EntraSignIn::DefaultChain,
        };
        EntraSignIn::Federated {
            identity,
            assertion,
        }
    }

    /// The choice for this process's environment.
    pub fn from_process_env() -> EntraSignIn {
        Self::from_env(|name| std::env::var(name).ok())
    }

    /// One line for `edw config`, `edw doctor` and logs: which credential, and for a
    /// federated one the client and tenant ids (never a token).
    pub fn describe(&self) -> String {
        match self {
            EntraSignIn::Federated {
                identity,
                assertion: AssertionSource::GithubActions { .. },
            } => format!(
                "GitHub Actions OIDC federation (a fresh GitHub ID token for each Entra ID token; \
                 {REQUEST_URL_VAR}, client {}, tenant {})",
                identity.client_id, identity.tenant_id
            ),
            EntraSignIn::Federated {
                identity,
                assertion: AssertionSource::TokenFile(path),
            } => format!(
                "federated token file {} ({TOKEN_FILE_VAR}, read again for each Entra ID token; \
                 client {}, tenant {})",
                path.display(),
                identity.client_id,
                identity.tenant_id
            ),
            EntraSignIn::DefaultChain => "DefaultAzureCredential (environment, managed identity, \
                 then the Azure CLI's sign-in)"
                .to_owned(),
        }
    }
}

/// Token lifetimes and HTTP limits of a federated credential.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialOptions {
    /// A cached Entra token is replaced this long before it expires.
    pub refresh_before_expiry: Duration,
    /// One HTTP request's time limit (GitHub's OIDC provider, Entra ID).
    pub request_timeout: Duration,
    /// Further attempts at GitHub's OIDC provider after a 429, a 5xx or no answer.
    pub transient_retries: u32,
}

impl Default for CredentialOptions {
    fn default() -> Self {
        CredentialOptions {
            refresh_before_expiry: Duration::from_secs(5 * 60),
            request_timeout: Duration::from_secs(30),
            transient_retries: 2,
        }
    }
}

/// Why no Entra ID token could be had. Every message has gone through [`crate::secrets::redact`]: it names
/// settings, files and endpoints, never a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignInError {
    /// A setting cannot be used as it is.
    #[error("{setting} is not usable: {reason}")]
    Setting {
        setting: &'static str,
        reason: String,
    },
    /// GitHub's OIDC provider gave no ID token.
    #[error("cannot get a GitHub Actions ID token from {REQUEST_URL_VAR} ({endpoint}): {reason}")]
    GithubToken { endpoint: String, reason: String },
    /// The federated token file could not be read.
    #[error("cannot read the federated token file {path} ({TOKEN_FILE_VAR}): {reason}")]
    TokenFile { path: String, reason: String },
    /// Entra ID did not exchange the assertion for a token.
    #[error(
        "Entra ID at {token_endpoint} did not exchange the {assertion} for a token for {scope} \
         (client {client_id}): {reason}"
    )]
    Exchange {
        assertion: &'static str,
        token_endpoint: String,
        client_id: String,
        scope: String,
        reason: String,
    },
    /// `DefaultAzureCredential` failed.
    #[error("DefaultAzureCredential: {reason}")]
    DefaultChain { reason: String },
}

/// The Entra ID credential chosen by [`EntraSignIn`], shared by storage and Azure Resource
/// Manager. Cheap to clone; clones share the token cache.
#[derive(Clone)]
pub struct EntraCredential {
    credential: Arc<dyn TokenCredential>,
    description: String,
}

impl fmt::Debug for EntraCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraCredential")
            .field("credential", &self.description)
            .finish_non_exhaustive()
    }
}

impl EntraCredential {
    /// The credential `sign_in` names. Nothing is sent until a token is asked for.
    pub fn new(
        sign_in: &EntraSignIn,
        options: &CredentialOptions,
    ) -> Result<EntraCredential, SignInError> {
        let credential: Arc<dyn TokenCredential> = match sign_in {
            EntraSignIn::Federated {
                identity,
                assertion,
            } => Arc::new(FederatedCredential::new(identity, assertion, options)?),
            EntraSignIn::DefaultChain => Arc::new(
                DefaultAzureCredential::create(TokenCredentialOptions::default()).map_err(|e| {
                    SignInError::DefaultChain {
                        reason: error_chain::text(&e),
                    }
                })?,
            ),
        };
        Ok(EntraCredential {
            credential,
            description: sign_in.describe(),
        })
    }

    /// The credential this process's environment chooses, with the default options.
    pub fn from_process_env() -> Result<EntraCredential, SignInError> {
        Self::new(
            &EntraSignIn::from_process_env(),
            &CredentialOptions::default(),
        )
    }

    /// A current token for `scope` (`https://storage.azure.com/.default`, …): the cached one
    /// while it is fresh, else a new one.
    pub async fn token(&self, scope: &str) -> Result<Secret, SignInError> {
        match self.credential.get_token(&[scope]).await {
            Ok(token) => Ok(Secret::new(token.token.secret())),
            Err(error) => Err(error
                .into_downcast::<SignInError>()
                .unwrap_or_else(|other| SignInError::DefaultChain {
                    reason: error_chain::text(&other),
                })),
        }
    }

    /// Which credential this is (as [`EntraSignIn::describe`]).
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The SDK credential, for the storage clients.
    pub(super) fn token_credential(&self) -> Arc<dyn TokenCredential> {
        self.credential.clone()
    }
}
