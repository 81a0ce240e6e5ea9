//! [`FederatedCredential`]: an Entra ID credential (azure_core's `TokenCredential`) that gets a
//! fresh federated assertion (a GitHub Actions ID token, or a token file's contents) each time
//! it needs a new Entra token, exchanges it through azure_identity's client-credentials flow,
//! and keeps each scope's token until shortly before it expires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use azure_core::auth::{AccessToken, TokenCredential};
use azure_core::error::ErrorKind;
use azure_core::{HttpClient, Request, Response, Url};
use azure_identity::federated_credentials_flow;
use time::OffsetDateTime;

use super::signin::{
    AssertionSource, CredentialOptions, FederatedIdentity, SignInError, AUTHORITY_HOST_VAR,
    REQUEST_URL_VAR, TOKEN_EXCHANGE_AUDIENCE,
};
use crate::error_chain;
use crate::secrets::{redact, Secret};

/// How much of an error answer's body a message quotes.
const QUOTED_BODY_CHARS: usize = 300;

/// Where the assertion comes from, with its URL parsed.
#[derive(Debug)]
enum Assertion {
    GithubActions {
        request_url: Url,
        request_token: Secret,
    },
    TokenFile(std::path::PathBuf),
}

impl Assertion {
    /// What the assertion is, for messages.
    fn name(&self) -> &'static str {
        match self {
            Assertion::GithubActions { .. } => "GitHub Actions ID token",
            Assertion::TokenFile(_) => "federated token file's token",
        }
    }
}

/// Exchanges a fresh federated assertion for each new Entra ID token (see the module docs).
#[derive(Debug)]
pub(super) struct FederatedCredential {
    client_id: String,
    tenant_id: String,
    authority_host: Url,
    assertion: Assertion,
    http: reqwest::Client,
    entra: Arc<EntraTransport>,
    refresh_before_expiry: Duration,
    transient_retries: u32,
    /// Scopes (joined by spaces) to their latest token. Held while a token is fetched, so that
    /// concurrent requests for a token wait for one fetch instead of each starting their own.
    cache: tokio::sync::Mutex<HashMap<String, AccessToken>>,
}

impl FederatedCredential {
    pub(super) fn new(
        identity: &FederatedIdentity,
        source: &AssertionSource,
        options: &CredentialOptions,
    ) -> Result<FederatedCredential, SignInError> {
        let authority_host =
            Url::parse(&identity.authority_host).map_err(|e| SignInError::Setting {
                setting: AUTHORITY_HOST_VAR,
                reason: format!("{:?} is not a URL: {e}", identity.authority_host),
            })?;
        let assertion = match source {
            AssertionSource::GithubActions {
                request_url,
                request_token,
            } => Assertion::GithubActions {
                request_url: Url::parse(request_url).map_err(|e| SignInError::Setting {
                    setting: REQUEST_URL_VAR,
                    reason: format!("not a URL: {e}"),
                })?,
                request_token: request_token.clone(),
            },
            AssertionSource::TokenFile(path) => Assertion::TokenFile(path.clone()),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(options.request_timeout.min(Duration::from_secs(10)))
            .timeout(options.request_timeout)
            .build()
            .map_err(|e| SignInError::Setting {
                setting: "the HTTP client",
                reason: error_chain::text(&e),
            })?;
        Ok(FederatedCredential {
            client_id: identity.client_id.clone(),
            tenant_id: identity.tenant_id.clone(),
            authority_host,
            assertion,
            entra: Arc::new(EntraTransport {
                http: http.clone(),
                refusal: std::sync::Mutex::new(None),
            }),
            http,
            refresh_before_expiry: options.refresh_before_expiry,
            transient_retries: options.transient_retries,
            cache: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// A new Entra token for `scopes`, from a new assertion.
    async fn fresh_token(&self, scopes: &[&str]) -> Result<AccessToken, SignInError> {
        let assertion = match &self.assertion {
            Assertion::GithubActions {
                request_url,
                request_token,
            } => self.github_id_token(request_url, request_token).await?,
            Assertion::TokenFile(path) => read_token_file(path).await?,
        };
        let answer = federated_credentials_flow::perform(
            self.entra.clone(),
            &self.client_id,
            assertion.expose(),
            scopes,
            &self.tenant_id,
            &self.authority_host,
        )
        .await
        .map_err(|error| self.exchange_error(scopes, &error))?;
        crate::secrets::register(answer.access_token().secret());
        let expires_on = answer
            .expires_on
            .unwrap_or_else(|| OffsetDateTime::now_utc() + Duration::from_secs(answer.expires_in));
        Ok(AccessToken::new(answer.access_token().clone(), expires_on))
    }

    /// A GitHub Actions ID token for Entra ID's audience, retried after a 429, a 5xx or no answer.
    async fn github_id_token(
        &self,
        request_url: &Url,
        request_token: &Secret,
    ) -> Result<Secret, SignInError> {
        let mut url = request_url.clone();
        url.query_pairs_mut()
            .append_pair("audience", TOKEN_EXCHANGE_AUDIENCE);
        let endpoint = request_url.origin().ascii_serialization();
        let failed = |reason: String| SignInError::GithubToken {
            endpoint: endpoint.clone(),
            reason: redact(&reason),
        };
        let mut attempt = 0;
        loop {
            let (transient, reason) = match self.github_request(&url, request_token).await {
                Ok(token) => return Ok(token),
                Err(failure) => failure,
            };
            if !transient || attempt >= self.transient_retries {
                let tries = match attempt {
                    0 => String::new(),
                    n => format!(" (after {} attempts)", n + 1),
                };
                return Err(failed(format!("{reason}{tries}")));
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(500) * 2u32.pow(attempt - 1)).await;
        }
    }

    /// One request to GitHub's OIDC provider: the token, or (whether to retry, why not).
    async fn github_request(
        &self,
        url: &Url,
        request_token: &Secret,
    ) -> Result<Secret, (bool, String)> {
        let answer = self
            .http
            .get(url.clone())
            .bearer_auth(request_token.expose())
            .header(reqwest::header::ACCEPT, "application/json; api-version=2.0")
            .send()
            .await
            .map_err(|e| {
                (
                    true,
                    format!("no answer: {}", error_chain::text(&e.without_url())),
                )
            })?;
        let status = answer.status();
        let body = answer
            .bytes()
            .await
            .map_err(|e| (true, format!("the answer broke off: {}", e.without_url())))?;
        if !status.is_success() {
            let transient = status.is_server_error() || status.as_u16() == 429;
            let hint = match status.as_u16() {
                401 | 403 => {
                    "; the job needs `permissions: id-token: write`, and ACTIONS_ID_TOKEN_REQUEST_TOKEN \
                     is valid only while its job runs"
                }
                _ => "",
            };
            return Err((
                transient,
                format!("HTTP {status}{hint}; the answer: {}", quote(&body)),
            ));
        }
        #[derive(serde::Deserialize)]
        struct IdTokenAnswer {
            value: Option<String>,
        }
        let parsed: IdTokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            (
                false,
                format!("the answer is not the expected JSON {{\"value\": \"<token>\"}}: {e}"),
            )
        })?;
        match parsed.value.filter(|token| !token.trim().is_empty()) {
            Some(token) => Ok(Secret::new(token.trim())),
            None => Err((false, "the answer has no token in `value`".to_owned())),
        }
    }

    /// Why Entra ID did not exchange the assertion, with what to check.
    fn exchange_error(&self, scopes: &[&str], error: &azure_core::Error) -> SignInError {
        let reason = match error.kind() {
            ErrorKind::HttpResponse { status, .. } => {
                let explanation = self
                    .entra
                    .take_refusal()
                    .unwrap_or_else(|| "no explanation in the answer".to_owned());
                let check = match &self.assertion {
                    Assertion::GithubActions { .. } => format!(
                        "check that identity {} has a federated credential with issuer \
                         https://token.actions.githubusercontent.com, the job's subject \
                         (repo:<owner>/<repo>:environment:<environment>) and audience \
                         {TOKEN_EXCHANGE_AUDIENCE}",
                        self.client_id
                    ),
                    Assertion::TokenFile(path) => format!(
                        "check that {} holds a current token and that identity {} has a \
                         federated credential for its issuer and subject",
                        path.display(),
                        self.client_id
                    ),
                };
                format!("HTTP {}: {explanation}; {check}", u16::from(*status))
            }
            _ => error_chain::text(error),
        };
        SignInError::Exchange {
            assertion: self.assertion.name(),
            token_endpoint: self
                .authority_host
                .join(&format!("/{}/oauth2/v2.0/token", self.tenant_id))
                .map_or_else(|_| self.authority_host.to_string(), |url| url.to_string()),
            client_id: self.client_id.clone(),
            scope: scopes.join(" "),
            reason: redact(&reason),
        }
    }
}

/// The HTTP transport of the token exchange: reqwest, keeping what Entra ID says when it
/// refuses (`error_description`, `AADSTS700024: …`), which azure_identity's flow only logs.
#[derive(Debug)]
struct EntraTransport {
    http: reqwest::Client,
    refusal: std::sync::Mutex<Option<String>>,
}

impl EntraTransport {
    /// The explanation of the last refusal, if one came since the last call.
    fn take_refusal(&self) -> Option<String> {
        self.refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

#[async_trait::async_trait]
impl HttpClient for EntraTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<Response> {
        let response = self.http.execute_request(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let (status, headers, body) = response.deconstruct();
        let body = body.collect().await?;
        #[derive(serde::Deserialize)]
        struct Refusal {
            error: Option<String>,
            error_description: Option<String>,
        }
        let explanation = match serde_json::from_slice::<Refusal>(&body) {
            Ok(Refusal {
                error_description: Some(description),
                error,
            }) => {
                // The first line: the trace and correlation ids follow on their own lines.
                let first = description.lines().next().unwrap_or_default().trim();
                match error {
                    Some(error) => format!("{error}: {first}"),
                    None => first.to_owned(),
                }
            }
            _ => quote(&body),
        };
        *self
            .refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(explanation);
        let replay = futures::stream::once(futures::future::ready(Ok(body)));
        Ok(Response::new(status, headers, Box::pin(replay)))
    }
}

#[async_trait::async_trait]
impl TokenCredential for FederatedCredential {
    async fn get_token(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let key = scopes.join(" ");
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.get(&key) {
            if token.expires_on > OffsetDateTime::now_utc() + self.refresh_before_expiry {
                return Ok(token.clone());
            }
        }
        let token = self
            .fresh_token(scopes)
            .await
            .map_err(|e| azure_core::Error::new(ErrorKind::Credential, e))?;
        cache.insert(key, token.clone());
        Ok(token)
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        self.cache.lock().await.clear();
        Ok(())
    }
}

/// The token in a federated token file, read now (the file may have been replaced since).
async fn read_token_file(path: &std::path::Path) -> Result<Secret, SignInError> {
    let failed = |reason: String| SignInError::TokenFile {
        path: path.display().to_string(),
        reason,
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| failed(e.to_string()))?;
    match text.trim() {
        "" => Err(failed("the file is empty".to_owned())),
        token => Ok(Secret::new(token)),
    }
}

/// The start of an error answer's body, for a message (redacted by the caller).
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty)".to_owned();
    }
    match text.char_indices().nth(QUOTED_BODY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
