//! Building SDK clients from a [`StorageTarget`]: which account, which endpoints, which
//! credential (Azurite development account, connection string or account key, Entra ID), and
//! the HTTP transport with connection reuse, timeouts and the retry policy.

use std::sync::Arc;
use std::time::Duration;

use azure_core::{ClientOptions, ExponentialRetryOptions, RetryOptions, TransportOptions};
use azure_data_tables::prelude::TableServiceClient;
use azure_storage::{CloudLocation, ConnectionString, StorageCredentials};
use azure_storage_queues::QueueServiceClient;

use super::{EntraCredential, EntraSignIn, Queue, SignInError, StorageError, Table};
use crate::secrets::Secret;

/// The Azurite (and Storage Emulator) development account name.
pub const DEVELOPMENT_ACCOUNT: &str = "devstoreaccount1";

/// How the suite authenticates to the storage account.
#[derive(Debug, Clone)]
pub enum StorageAuth {
    /// Azurite's published, well-known development account and key.
    DevelopmentAccount,
    /// A storage connection string (account name, key or SAS, and endpoints).
    ConnectionString(Secret),
    /// The account's shared key; the account name comes from [`StorageTarget::account`].
    AccountKey(Secret),
    /// Entra ID, with the credential [`EntraSignIn`] chooses from the environment: GitHub
    /// Actions OIDC federation, a federated token file, else `DefaultAzureCredential`
    /// (environment, managed identity, then the Azure CLI).
    EntraId,
}

impl StorageAuth {
    /// A short name for logs and reports (never the secret).
    pub fn kind(&self) -> &'static str {
        match self {
            StorageAuth::DevelopmentAccount => "azurite development account",
            StorageAuth::ConnectionString(_) => "connection string",
            StorageAuth::AccountKey(_) => "account key",
            StorageAuth::EntraId => "Entra ID",
        }
    }

    /// [`StorageAuth::kind`], and for Entra ID the credential this process's environment
    /// chooses (never a secret).
    pub fn describe(&self) -> String {
        match self {
            StorageAuth::EntraId => {
                format!("Entra ID: {}", EntraSignIn::from_process_env().describe())
            }
            other => other.kind().to_owned(),
        }
    }
}

/// Retry and timeout settings for every storage request.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// The first backoff; it doubles (with jitter) up to `max_delay`.
    pub initial_delay: Duration,
    /// The longest backoff between two attempts (a longer `Retry-After` still wins).
    pub max_delay: Duration,
    /// Give up retrying once this much time has passed since the first attempt.
    pub max_total_elapsed: Duration,
    /// One attempt's time limit. Generous: Azurite's in-memory sweep can stall for seconds.
    pub request_timeout: Duration,
    /// How many times faster than real time the client's clock runs (1 everywhere but the
    /// twin's consumer pods, see [`RetrySettings::in_simulated_time`]): a `Retry-After` the
    /// service sends is waited for in that clock's time.
    pub clock_scale: f64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_retries: 6,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(8),
            max_total_elapsed: Duration::from_secs(60),
            request_timeout: Duration::from_secs(120),
            clock_scale: 1.0,
        }
    }
}

impl RetrySettings {
    /// These settings for a client that lives on a clock running `scale` times faster than real
    /// time (the twin's consumer pods): the backoff between attempts, and a `Retry-After` the
    /// service sends, are waited for in that clock's time (`scale` times shorter in real time),
    /// so a retried call costs the simulated system what it costs a real one, and the twin's
    /// governed clock ([`crate::twin_governor`]) slows down only for storage that is really slow.
    /// What protects against real storage (one attempt's time limit, the total budget, the
    /// number of attempts) stays real.
    pub fn in_simulated_time(&self, scale: f64) -> RetrySettings {
        let scale = if scale.is_finite() && scale > 1.0 {
            scale
        } else {
            return self.clone();
        };
        RetrySettings {
            initial_delay: self.initial_delay.div_f64(scale),
            max_delay: self.max_delay.div_f64(scale),
            clock_scale: scale,
            ..self.clone()
        }
    }
}

/// Where the queue and table live and how to reach them.
#[derive(Debug, Clone)]
pub struct StorageTarget {
    /// The storage account name (ignored for a connection string, which names its own).
    pub account: String,
    pub auth: StorageAuth,
    /// Base URL of the queue service, including the account path for path-style endpoints
    /// (`http://127.0.0.1:10001/devstoreaccount1`). `None`: the public cloud endpoint.
    pub queue_endpoint: Option<String>,
    /// Base URL of the table service, as `queue_endpoint`.
    pub table_endpoint: Option<String>,
    /// More queue services (Azurite's development account only) over which every queue is
    /// partitioned, for backlogs one Azurite process cannot carry: see [`Queue`]. Empty: the
    /// queue lives on `queue_endpoint` alone.
    pub queue_partitions: Vec<String>,
    pub retry: RetrySettings,
}

impl StorageTarget {
    /// The Azurite development account on the given service base URLs.
    pub fn development(queue_endpoint: &str, table_endpoint: &str) -> Self {
        StorageTarget {
            account: DEVELOPMENT_ACCOUNT.to_owned(),
            auth: StorageAuth::DevelopmentAccount,
            queue_endpoint: Some(queue_endpoint.trim_end_matches('/').to_owned()),
            table_endpoint: Some(table_endpoint.trim_end_matches('/').to_owned()),
            queue_partitions: Vec::new(),
            retry: RetrySettings::default(),
        }
    }

    /// The development account with its queues partitioned over several queue services
    /// (the first is `queue_endpoints[0]`).
    pub fn development_partitioned(queue_endpoints: &[String], table_endpoint: &str) -> Self {
        let first = queue_endpoints.first().map_or("", String::as_str);
        StorageTarget {
            queue_partitions: queue_endpoints
                .iter()
                .skip(1)
                .map(|e| e.trim_end_matches('/').to_owned())
                .collect(),
            ..Self::development(first, table_endpoint)
        }
    }
}

/// Connected queue and table service clients for one account.
#[derive(Debug, Clone)]
pub struct Storage {
    /// One queue service, or several that partition every queue: (client, endpoint).
    queues: Vec<(QueueServiceClient, String)>,
    tables: TableServiceClient,
    table_endpoint: String,
    /// How the clients authenticate, for [`Storage::describe`].
    auth: String,
}

impl Storage {
    /// Builds the clients. No request is sent: a wrong key or an unreachable endpoint shows
    /// at the first operation, as a [`StorageError`] that names it.
    pub fn connect(target: &StorageTarget) -> Result<Storage, StorageError> {
        Self::connect_with(target, client_options(&target.retry)?)
    }

    /// Like [`Storage::connect`], with the SDK's own HTTP transport instead of ours (no
    /// connection reuse): the "before" of `edw bench`'s transport figure.
    pub fn connect_with_sdk_transport(target: &StorageTarget) -> Result<Storage, StorageError> {
        Self::connect_with(
            target,
            ClientOptions::default().retry(retry_options(&target.retry)),
        )
    }

    fn connect_with(
        target: &StorageTarget,
        options: ClientOptions,
    ) -> Result<Storage, StorageError> {
        if !target.queue_partitions.is_empty()
            && !matches!(target.auth, StorageAuth::DevelopmentAccount)
        {
            return Err(StorageError::Config(
                "queue partitions are for Azurite's development account only".to_owned(),
            ));
        }
        let resolved = resolve(target)?;
        let mut queue_locations = vec![resolved.queue_location.clone()];
        if !target.queue_partitions.is_empty() {
            queue_locations.extend(target.queue_partitions.iter().map(|uri| {
                CloudLocation::Custom {
                    account: DEVELOPMENT_ACCOUNT.to_owned(),
                    uri: uri.trim_end_matches('/').to_owned(),
                }
            }));
        }
        let queues = queue_locations
            .into_iter()
            .map(|location| {
                let endpoint = location_url(&location, "queue");
                let client = azure_storage_queues::QueueServiceClientBuilder::with_location(
                    location,
                    resolved.credentials.clone(),
                )
                .client_options(options.clone())
                .build();
                (client, endpoint)
            })
            .collect();
        let tables = azure_data_tables::clients::TableServiceClientBuilder::with_location(
            resolved.table_location.clone(),
            resolved.credentials,
        )
        .client_options(options)
        .build();
        Ok(Storage {
            queues,
            tables,
            table_endpoint: location_url(&resolved.table_location, "table"),
            auth: resolved.auth,
        })
    }

    /// A handle on queue `name` (nothing is sent until an operation is called).
    pub fn queue(&self, name: &str) -> Queue {
        let services = self
            .queues
            .iter()
            .map(|(service, endpoint)| (service.queue_client(name), endpoint.clone()))
            .collect();
        Queue::new(services, name)
    }

    /// A handle on table `name` (nothing is sent until an operation is called).
    pub fn table(&self, name: &str) -> Table {
        Table::new(self.tables.table_client(name), name, &self.table_endpoint)
    }

    /// The queue service base URL (no secret in it); the first one of a partitioned queue.
    pub fn queue_endpoint(&self) -> &str {
        self.queues.first().map_or("", |(_, endpoint)| endpoint)
    }

    /// The table service base URL (no secret in it).
    pub fn table_endpoint(&self) -> &str {
        &self.table_endpoint
    }

    /// Reads queue `queue` and table `table` without creating or changing anything: a refused
    /// credential, a missing data role or an unreachable service shows here, before a command
    /// creates anything. A queue or table that does not exist yet is fine.
    pub async fn check_access(&self, queue: &str, table: &str) -> Result<(), StorageError> {
        self.queue(queue).exists().await?;
        self.table(table)
            .get::<serde_json::Value>(ACCESS_CHECK_KEY, ACCESS_CHECK_KEY)
            .await?;
        Ok(())
    }

    /// One line for logs: endpoints and how the suite authenticates.
    pub fn describe(&self) -> String {
        let partitions = match self.queues.len() {
            0 | 1 => String::new(),
            n => format!(" (partitioned over {n} queue services)"),
        };
        format!(
            "queue {}{partitions} and table {} ({})",
            self.queue_endpoint(),
            self.table_endpoint,
            self.auth
        )
    }
}

/// The partition and row key [`Storage::check_access`] reads (an entity nobody writes).
const ACCESS_CHECK_KEY: &str = "edw-access-check";

struct Resolved {
    credentials: StorageCredentials,
    /// How `credentials` authenticate (never a secret).
    auth: String,
    queue_location: CloudLocation,
    table_location: CloudLocation,
}

fn resolve(target: &StorageTarget) -> Result<Resolved, StorageError> {
    let location = |endpoint: &Option<String>, account: &str| match endpoint {
        Some(uri) => CloudLocation::Custom {
            account: account.to_owned(),
            uri: uri.trim_end_matches('/').to_owned(),
        },
        None => CloudLocation::Public {
            account: account.to_owned(),
        },
    };
    let check_account = |account: &str| {
        if account.is_empty() {
            Err(StorageError::Config(
                "no storage account name (set AZURE_STORAGE_ACCOUNT_NAME)".to_owned(),
            ))
        } else {
            Ok(())
        }
    };
    match &target.auth {
        StorageAuth::DevelopmentAccount => {
            let (Some(_), Some(_)) = (&target.queue_endpoint, &target.table_endpoint) else {
                return Err(StorageError::Config(
                    "the development account needs both a queue and a table endpoint".to_owned(),
                ));
            };
            Ok(Resolved {
                credentials: StorageCredentials::emulator(),
                auth: target.auth.kind().to_owned(),
                queue_location: location(&target.queue_endpoint, DEVELOPMENT_ACCOUNT),
                table_location: location(&target.table_endpoint, DEVELOPMENT_ACCOUNT),
            })
        }
        StorageAuth::AccountKey(key) => {
            check_account(&target.account)?;
            Ok(Resolved {
                credentials: StorageCredentials::access_key(
                    target.account.clone(),
                    key.expose().to_owned(),
                ),
                auth: target.auth.kind().to_owned(),
                queue_location: location(&target.queue_endpoint, &target.account),
                table_location: location(&target.table_endpoint, &target.account),
            })
        }
        StorageAuth::EntraId => {
            check_account(&target.account)?;
            let credential = EntraCredential::from_process_env().map_err(|e| match e {
                // A setting that cannot work is the user's to fix, like any other.
                SignInError::Setting { .. } => StorageError::Config(e.to_string()),
                _ => StorageError::Credential {
                    detail: e.to_string(),
                },
            })?;
            Ok(Resolved {
                credentials: StorageCredentials::token_credential(credential.token_credential()),
                auth: format!("Entra ID: {}", credential.describe()),
                queue_location: location(&target.queue_endpoint, &target.account),
                table_location: location(&target.table_endpoint, &target.account),
            })
        }
        StorageAuth::ConnectionString(secret) => from_connection_string(secret, target),
    }
}

fn from_connection_string(
    secret: &Secret,
    target: &StorageTarget,
) -> Result<Resolved, StorageError> {
    let invalid = |why: &str| {
        StorageError::Config(format!(
            "the storage connection string (AZURE_STORAGE_CONNECTION_STRING) is not valid: {why}"
        ))
    };
    let parsed = ConnectionString::new(secret.expose())
        .map_err(|e| invalid(&crate::secrets::redact(&e.to_string())))?;
    if parsed.use_development_storage == Some(true) {
        return resolve(&StorageTarget {
            auth: StorageAuth::DevelopmentAccount,
            queue_endpoint: Some(format!("http://127.0.0.1:10001/{DEVELOPMENT_ACCOUNT}")),
            table_endpoint: Some(format!("http://127.0.0.1:10002/{DEVELOPMENT_ACCOUNT}")),
            ..target.clone()
        });
    }
    let account = parsed
        .account_name
        .ok_or_else(|| invalid("it has no AccountName"))?
        .to_owned();
    let credentials = parsed
        .storage_credentials()
        .map_err(|_| invalid("it has neither AccountKey nor SharedAccessSignature"))?;
    let endpoint = |explicit: Option<&str>, service: &str| match explicit {
        Some(uri) => Ok(CloudLocation::Custom {
            account: account.clone(),
            uri: uri.trim_end_matches('/').to_owned(),
        }),
        None => match parsed.endpoint_suffix {
            Some(suffix) => {
                let scheme = match parsed.default_endpoints_protocol {
                    Some(azure_storage::EndpointProtocol::Http) => "http",
                    _ => "https",
                };
                Ok(CloudLocation::Custom {
                    account: account.clone(),
                    uri: format!("{scheme}://{account}.{service}.{suffix}"),
                })
            }
            None => Ok::<_, StorageError>(CloudLocation::Public {
                account: account.clone(),
            }),
        },
    };
    Ok(Resolved {
        auth: target.auth.kind().to_owned(),
        queue_location: endpoint(parsed.queue_endpoint, "queue")?,
        table_location: endpoint(parsed.table_endpoint, "table")?,
        credentials,
    })
}

fn location_url(location: &CloudLocation, service: &str) -> String {
    match location {
        CloudLocation::Custom { uri, .. } => uri.clone(),
        CloudLocation::Public { account } => {
            format!("https://{account}.{service}.core.windows.net")
        }
        CloudLocation::China { account } => {
            format!("https://{account}.{service}.core.chinacloudapi.cn")
        }
        CloudLocation::Emulator { address, port } => {
            format!("http://{address}:{port}/{DEVELOPMENT_ACCOUNT}")
        }
    }
}

/// The SDK's HTTP transport with connection reuse (the SDK default opens a new connection per
/// request), idle connections closed before Azurite's 5 s keep-alive ends, and time limits.
fn client_options(retry: &RetrySettings) -> Result<ClientOptions, StorageError> {
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(4))
        .pool_max_idle_per_host(64)
        .connect_timeout(Duration::from_secs(10))
        .timeout(retry.request_timeout)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| StorageError::Config(format!("cannot build the HTTP client: {e}")))?;
    let mut options =
        ClientOptions::new(TransportOptions::new(Arc::new(http))).retry(retry_options(retry));
    if retry.clock_scale > 1.0 {
        options
            .per_retry_policies_mut()
            .push(Arc::new(ScaledRetryAfter {
                scale: retry.clock_scale,
            }));
    }
    Ok(options)
}

/// Turns a response's `Retry-After` (seconds, or `retry-after-ms`) into `retry-after-ms` on a
/// clock `scale` times faster than real time: the SDK's retry policy reads `retry-after-ms`
/// first, so it waits the service's delay in the client's clock's time.
#[derive(Debug)]
struct ScaledRetryAfter {
    scale: f64,
}

impl ScaledRetryAfter {
    /// The delay `headers` ask for, in real milliseconds on the scaled clock.
    fn scaled_ms(&self, headers: &azure_core::headers::Headers) -> Option<u64> {
        use azure_core::headers::{RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS};
        let ms = [RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS]
            .iter()
            .find_map(|h| headers.get_optional_str(h)?.trim().parse::<f64>().ok())
            .or_else(|| {
                let seconds = headers
                    .get_optional_str(&RETRY_AFTER)?
                    .trim()
                    .parse::<f64>();
                seconds.ok().map(|s| s * 1000.0)
            })?;
        (ms.is_finite() && ms >= 0.0).then(|| (ms / self.scale).ceil() as u64)
    }
}

#[async_trait::async_trait]
impl azure_core::Policy for ScaledRetryAfter {
    async fn send(
        &self,
        ctx: &azure_core::Context,
        request: &mut azure_core::Request,
        next: &[Arc<dyn azure_core::Policy>],
    ) -> azure_core::PolicyResult {
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let Some(ms) = self.scaled_ms(response.headers()) else {
            return Ok(response);
        };
        let (status, mut headers, body) = response.deconstruct();
        headers.insert(azure_core::headers::RETRY_AFTER_MS, ms.to_string());
        Ok(azure_core::Response::new(status, headers, Box::pin(body)))
    }
}

fn retry_options(retry: &RetrySettings) -> RetryOptions {
    if retry.max_retries == 0 {
        RetryOptions::none()
    } else {
        RetryOptions::exponential(
            ExponentialRetryOptions::default()
                .max_retries(retry.max_retries)
                .initial_delay(retry.initial_delay)
                .max_delay(retry.max_delay)
                .max_total_elapsed(retry.max_total_elapsed),
        )
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn in_simulated_time_shortens_the_backoff_only() {
        let real = RetrySettings::default();
        let pods = real.in_simulated_time(20.0);
        assert_eq!(pods.initial_delay, Duration::from_millis(10));
        assert_eq!(pods.max_delay, Duration::from_millis(400));
        // What protects against real storage stays real.
        assert_eq!(pods.max_retries, real.max_retries);
        assert_eq!(pods.max_total_elapsed, real.max_total_elapsed);
        assert_eq!(pods.request_timeout, real.request_timeout);
        assert_eq!(pods.clock_scale, 20.0);
        // A clock at real time or slower, or a nonsense scale, changes nothing.
        for scale in [1.0, 0.5, 0.0, f64::NAN, f64::INFINITY] {
            assert_eq!(real.in_simulated_time(scale), real, "{scale}");
        }
    }
}

#[cfg(test)]
mod scaled_retry_after_tests {
    use azure_core::headers::{Headers, RETRY_AFTER, RETRY_AFTER_MS};

    use super::ScaledRetryAfter;

    #[test]
    fn a_retry_after_is_waited_for_on_the_scaled_clock() {
        let policy = ScaledRetryAfter { scale: 20.0 };
        let mut seconds = Headers::new();
        seconds.insert(RETRY_AFTER, "1");
        assert_eq!(policy.scaled_ms(&seconds), Some(50));
        let mut ms = Headers::new();
        ms.insert(RETRY_AFTER_MS, "3000");
        ms.insert(RETRY_AFTER, "9");
        assert_eq!(
            policy.scaled_ms(&ms),
            Some(150),
            "retry-after-ms wins, as in the SDK"
        );
        assert_eq!(policy.scaled_ms(&Headers::new()), None);
        let mut date = Headers::new();
        date.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(
            policy.scaled_ms(&date),
            None,
            "an HTTP date is left to the SDK"
        );
    }
}
