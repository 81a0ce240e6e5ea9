//! [`ArmClient`]: a small Resource Manager client over reqwest (rustls). Sends GET/PUT/DELETE
//! with `api-version` and a bearer token, retries 429 and 503 after `Retry-After` a bounded
//! number of times, turns error statuses into [`ArmError`]s and waits for long-running
//! operations (see `lro.rs`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde_json::Value;

use super::error::ArmError;
use super::token::TokenSource;
use crate::secrets::redact;

/// The public-cloud Resource Manager.
pub const DEFAULT_BASE_URL: &str = "https://management.azure.com";

/// Retry, polling and timeout settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    /// Retries of a request answered 429 or 503 (after the first attempt).
    pub max_retries: u32,
    /// The wait when a 429/503 has no usable `Retry-After`; doubles on each retry.
    pub default_backoff: Duration,
    /// The longest wait honoured for one `Retry-After`.
    pub max_retry_after: Duration,
    /// The wait between two polls of a long-running operation without `Retry-After`.
    pub poll_interval: Duration,
    /// How long a long-running operation (or a deletion) may take.
    pub operation_deadline: Duration,
    /// One request's time limit.
    pub request_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            max_retries: 5,
            default_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(60),
            poll_interval: Duration::from_secs(10),
            operation_deadline: Duration::from_secs(30 * 60),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A response whose status was not retried away.
#[derive(Debug, Clone)]
pub(crate) struct ArmResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A Resource Manager client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ArmClient {
    http: reqwest::Client,
    base: Url,
    tokens: Arc<dyn TokenSource>,
    settings: ClientSettings,
}

impl ArmClient {
    /// A client for `base_url` (e.g. [`DEFAULT_BASE_URL`], or a mock server in tests).
    pub fn new(base_url: &str, tokens: Arc<dyn TokenSource>) -> Result<Self, ArmError> {
        Self::with_settings(base_url, tokens, ClientSettings::default())
    }

    /// As [`ArmClient::new`], with explicit settings.
    pub fn with_settings(
        base_url: &str,
        tokens: Arc<dyn TokenSource>,
        settings: ClientSettings,
    ) -> Result<Self, ArmError> {
        let base = Url::parse(base_url.trim_end_matches('/'))
            .map_err(|e| ArmError::invalid(base_url, format!("not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(ArmError::invalid(
                base_url,
                "the base URL must be http(s)://host",
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .build()
            .map_err(|e| ArmError::transport(base_url, crate::error_chain::text(&e)))?;
        Ok(ArmClient {
            http,
            base,
            tokens,
            settings,
        })
    }

    /// A client for `base_url` with the token `EDW_ARM_TOKEN` supplies, else one from the
    /// Entra ID credential `edw_engine::storage::EntraSignIn` chooses (GitHub Actions OIDC
    /// federation, a federated token file, else environment, managed identity, Azure CLI), polling
    /// long-running operations every `EDW_ARM_POLL_INTERVAL` (e.g. `10s`, the default).
    pub fn from_env(base_url: &str) -> Result<Self, ArmError> {
        let mut settings = ClientSettings::default();
        if let Ok(text) = std::env::var("EDW_ARM_POLL_INTERVAL") {
            settings.poll_interval = humantime::parse_duration(text.trim()).map_err(|e| {
                ArmError::invalid(
                    base_url,
                    format!("EDW_ARM_POLL_INTERVAL {text:?} is not a duration: {e}"),
                )
            })?;
        }
        let tokens: Arc<dyn TokenSource> = match std::env::var("EDW_ARM_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
        {
            Some(token) => Arc::new(super::token::StaticToken::new(token)),
            None => Arc::new(super::token::DefaultCredentialToken::new().map_err(|e| {
                ArmError::invalid(
                    base_url,
                    format!("no Entra ID credential for Azure Resource Manager: {e}"),
                )
            })?),
        };
        Self::with_settings(base_url, tokens, settings)
    }

    /// The settings in use.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The base URL (scheme, host, port).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// GET `resource_id` and parse its JSON body.
    pub async fn get(&self, resource_id: &str, api_version: &str) -> Result<Value, ArmError> {
        self.get_with_query(resource_id, api_version, &[]).await
    }

    /// GET with extra query parameters (`$filter`), JSON body.
    pub async fn get_with_query(
        &self,
        resource_id: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, ArmError> {
        let url = self.url(resource_id, api_version, query)?;
        let response = self.send(Method::GET, url, None, resource_id).await?;
        let response = ensure_success(resource_id, response)?;
        parse_json(resource_id, &response)
    }

    /// GET a collection, following `nextLink`, and return every `value` item.
    pub async fn list(
        &self,
        collection_id: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, ArmError> {
        let mut url = self.url(collection_id, api_version, query)?;
        let mut items = Vec::new();
        for _page in 0..1000 {
            let response = self.send(Method::GET, url, None, collection_id).await?;
            let response = ensure_success(collection_id, response)?;
            let body = parse_json(collection_id, &response)?;
            match body.get("value").and_then(Value::as_array) {
                Some(values) => items.extend(values.iter().cloned()),
                None => {
                    return Err(ArmError::malformed(
                        collection_id,
                        response.status,
                        "no `value` array in the list response",
                    ))
                }
            }
            match body.get("nextLink").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => url = self.same_origin(collection_id, next)?,
                _ => return Ok(items),
            }
        }
        Err(ArmError::malformed(
            collection_id,
            200,
            "more than 1000 pages of nextLink",
        ))
    }

    /// PUT `body` to `resource_id`, wait for the long-running operation if ARM started one,
    /// and return the resource as it then is (the PUT's body, or a fresh GET after an
    /// operation).
    pub async fn put(
        &self,
        resource_id: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<Value, ArmError> {
        self.write(Method::PUT, resource_id, api_version, body)
            .await
    }

    /// PATCH `body` onto `resource_id` (a partial update: the fields it names replace the
    /// resource's), wait for the long-running operation if ARM started one, and return the
    /// resource as it then is.
    pub async fn patch(
        &self,
        resource_id: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<Value, ArmError> {
        self.write(Method::PATCH, resource_id, api_version, body)
            .await
    }

    /// A current bearer token of this client's identity, for reading its claims (never for
    /// printing).
    pub(crate) async fn bearer_token(&self) -> Result<crate::secrets::Secret, ArmError> {
        self.tokens.token().await.map_err(|reason| ArmError::Token {
            resource: self.base.to_string(),
            reason: redact(&reason),
        })
    }

    /// PUT or PATCH `body`, then the resource as it is once ARM says the write is done.
    async fn write(
        &self,
        method: Method,
        resource_id: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<Value, ArmError> {
        let url = self.url(resource_id, api_version, &[])?;
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ArmError::invalid(resource_id, format!("request body: {e}")))?;
        let response = self.send(method, url, Some(bytes), resource_id).await?;
        let response = ensure_success(resource_id, response)?;
        if super::lro::has_operation(&response.headers) {
            super::lro::wait(self, resource_id, &response).await?;
            return self.get(resource_id, api_version).await;
        }
        parse_json(resource_id, &response)
    }

    /// DELETE `resource_id` and wait for the long-running operation if ARM started one.
    /// A 404 is [`ArmError::NotFound`]; callers wanting idempotence treat it as done.
    pub async fn delete(&self, resource_id: &str, api_version: &str) -> Result<(), ArmError> {
        let url = self.url(resource_id, api_version, &[])?;
        let response = self.send(Method::DELETE, url, None, resource_id).await?;
        let response = ensure_success(resource_id, response)?;
        if super::lro::has_operation(&response.headers) {
            super::lro::wait(self, resource_id, &response).await?;
        }
        Ok(())
    }

    /// `base + resource_id ? api-version=… & query…`.
    pub(crate) fn url(
        &self,
        resource_id: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<Url, ArmError> {
        if !resource_id.starts_with('/') || resource_id.contains(['?', '#']) {
            return Err(ArmError::invalid(
                resource_id,
                "a resource id starts with '/' and has no '?' or '#'",
            ));
        }
        let mut url = self
            .base
            .join(resource_id)
            .map_err(|e| ArmError::invalid(resource_id, e.to_string()))?;
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("api-version", api_version);
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// `link` (a polling URL or nextLink from ARM) if it has the base URL's origin: the
    /// token is never sent anywhere else.
    pub(crate) fn same_origin(&self, resource_id: &str, link: &str) -> Result<Url, ArmError> {
        let url = Url::parse(link)
            .map_err(|e| ArmError::malformed(resource_id, 200, format!("bad link URL: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(ArmError::invalid(
                resource_id,
                format!(
                    "ARM pointed to {}, outside {}; the token is not sent there",
                    url.origin().ascii_serialization(),
                    self.base.origin().ascii_serialization()
                ),
            ));
        }
        Ok(url)
    }

    /// One request with retries of 429 and 503.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        resource_id: &str,
    ) -> Result<ArmResponse, ArmError> {
        let mut attempt: u32 = 0;
        loop {
            let token = self
                .tokens
                .token()
                .await
                .map_err(|reason| ArmError::Token {
                    resource: redact(resource_id),
                    reason: redact(&reason),
                })?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(bytes) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|e| ArmError::transport(resource_id, crate::error_chain::text(&e)))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| ArmError::transport(resource_id, crate::error_chain::text(&e)))?;
            if status == 429 || status == 503 {
                if attempt >= self.settings.max_retries {
                    let (code, _) = super::error::error_code_message(&bytes);
                    return Err(ArmError::Throttled {
                        resource: redact(resource_id),
                        status,
                        code,
                        attempts: attempt + 1,
                    });
                }
                let wait = retry_after(&headers)
                    .unwrap_or_else(|| {
                        self.settings
                            .default_backoff
                            .saturating_mul(2u32.saturating_pow(attempt))
                    })
                    .min(self.settings.max_retry_after);
                tracing::debug!(
                    resource = %redact(resource_id),
                    status,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "ARM throttled or unavailable; retrying"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return Ok(ArmResponse {
                status,
                headers,
                body: bytes,
            });
        }
    }
}

/// `Retry-After` in seconds, if present and numeric.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The response if its status is 2xx, else the [`ArmError`] it means.
pub(crate) fn ensure_success(
    resource_id: &str,
    response: ArmResponse,
) -> Result<ArmResponse, ArmError> {
    if (200..300).contains(&response.status) {
        Ok(response)
    } else {
        Err(ArmError::from_status(
            resource_id,
            response.status,
            &response.body,
        ))
    }
}

/// The JSON body, or [`ArmError::Malformed`] naming the resource.
pub(crate) fn parse_json(resource_id: &str, response: &ArmResponse) -> Result<Value, ArmError> {
    serde_json::from_slice(&response.body).map_err(|e| {
        ArmError::malformed(
            resource_id,
            response.status,
            format!(
                "not JSON ({e}); body starts: {}",
                super::error::excerpt(&response.body)
            ),
        )
    })
}
