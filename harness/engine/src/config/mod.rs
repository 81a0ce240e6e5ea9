//! One [`Config`] for a run, layered in a fixed order: the sample's defaults
//! (environmentVariables.sh), then `deploy.state`, then environment variables, then CLI flags.
//! Every value remembers where it came from, so an invalid one is reported with its origin
//! (`deploy.state:4`, `environment variable AZURE_QUEUE_NAME`, `flag --queue`).

mod deploy_state;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use deploy_state::{load as load_deploy_state, parse as parse_deploy_state, parse_bytes};
pub use deploy_state::{DeployState, DeployStateError, StateEntry};
pub use edw_model::keys::{
    canonical_key, is_known_key, is_secret_key, known_keys, DEPLOY_STATE_KEYS, SAMPLE_DEFAULTS,
};
use edw_model::run::SampleNames;
use edw_model::walkthrough;
pub use validate::{
    account_name as validate_account_name, queue_name as validate_queue_name,
    table_name as validate_table_name,
};

use crate::secrets::Secret;
use crate::storage::{RetrySettings, StorageAuth, StorageTarget};

/// Where the sample's scripts keep deploy.state, relative to the sample's checkout.
pub const DEFAULT_STATE_FILE: &str = "deployment/deploy.state";

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    DeployState { path: PathBuf, line: usize },
    Environment(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("the sample's default"),
            Source::DeployState { path, line } => write!(f, "{}:{line}", path.display()),
            Source::Environment(var) => write!(f, "environment variable {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration problem, naming the key and where its value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    DeployState(#[from] DeployStateError),
    #[error("{key} (from {origin}) is invalid: {reason}")]
    Invalid {
        key: String,
        origin: Source,
        reason: String,
    },
    #[error("{key} is not set: {why}")]
    Missing { key: String, why: String },
}

/// What [`Config::load`] reads. Tests pass their own environment; the CLI passes the process's.
#[derive(Debug, Clone, Default)]
pub struct ConfigInputs {
    /// `--state-file`; when `None`, `EDW_DEPLOY_STATE` or `./deployment/deploy.state` if it exists.
    pub state_file: Option<PathBuf>,
    /// Environment variables (name, value).
    pub env: Vec<(String, String)>,
    /// Values from CLI flags: (key, value, flag name).
    pub flags: Vec<(String, String, String)>,
    /// The directory `./deployment/deploy.state` is looked for in.
    pub working_dir: Option<PathBuf>,
}

impl ConfigInputs {
    /// Inputs with the process's environment and working directory.
    pub fn from_process() -> Self {
        ConfigInputs {
            env: std::env::vars().collect(),
            working_dir: std::env::current_dir().ok(),
            ..ConfigInputs::default()
        }
    }

    /// Adds a flag's value for `key`.
    pub fn flag(mut self, key: &str, value: impl Into<String>, flag: &str) -> Self {
        self.flags
            .push((key.to_owned(), value.into(), flag.to_owned()));
        self
    }
}

/// Where the queue and table are: an embedded Azurite the harness starts, or a given target.
#[derive(Debug, Clone)]
// One value per configuration load: boxing the target would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum StorageChoice {
    /// Nothing configured: start real Azurite (see [`crate::azurite`]).
    EmbeddedAzurite,
    /// An account, a connection string or a running Azurite.
    Target(StorageTarget),
}

/// The configuration of one run.
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<String, (String, Source)>,
    /// The deploy.state that was read, if any.
    pub state_file: Option<PathBuf>,
    /// Non-fatal findings (unknown keys, aliases, repeated keys).
    pub warnings: Vec<String>,
}

impl Config {
    /// Layers defaults, deploy.state, environment and flags, then validates the result.
    pub fn load(inputs: &ConfigInputs) -> Result<Config, ConfigError> {
        let mut config = Config {
            values: SAMPLE_DEFAULTS
                .iter()
                .map(|(k, v)| (k.to_string(), (v.to_string(), Source::Default)))
                .collect(),
            state_file: None,
            warnings: Vec::new(),
        };
        if let Some(path) = state_file_path(inputs) {
            let state = deploy_state::load(&path)?;
            for entry in &state.entries {
                let source = Source::DeployState {
                    path: path.clone(),
                    line: entry.line,
                };
                config.set(&entry.key, &entry.value, source);
            }
            config.warnings.extend(state.warnings);
            config.state_file = Some(path);
        }
        for (name, value) in &inputs.env {
            if is_known_key(name) && !value.is_empty() {
                config.set(
                    canonical_key(name),
                    value,
                    Source::Environment(name.clone()),
                );
            }
        }
        for (key, value, flag) in &inputs.flags {
            config.set(canonical_key(key), value, Source::Flag(flag.clone()));
        }
        validate::validate(&config)?;
        Ok(config)
    }

    fn set(&mut self, key: &str, value: &str, source: Source) {
        if is_secret_key(key) {
            crate::secrets::register(value);
        }
        self.values
            .insert(key.to_owned(), (value.to_owned(), source));
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }

    /// Where the value of `key` came from.
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.values.get(key).map(|(_, s)| s)
    }

    /// Every value with its origin; secrets are shown as `***`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, String, &Source)> {
        self.values.iter().map(|(k, (v, s))| {
            let shown = if is_secret_key(k) {
                crate::secrets::REDACTED.to_owned()
            } else {
                v.clone()
            };
            (k.as_str(), shown, s)
        })
    }

    /// The queue the producer writes to (`AZURE_QUEUE_NAME`).
    pub fn queue_name(&self) -> &str {
        self.get("AZURE_QUEUE_NAME").unwrap_or(walkthrough::QUEUE)
    }

    /// The table the consumer writes to (`AZURE_TABLE_NAME`).
    pub fn table_name(&self) -> &str {
        self.get("AZURE_TABLE_NAME").unwrap_or(walkthrough::TABLE)
    }

    /// The sample's names as configured (`AQS_TARGET_NAMESPACE`, `AQS_TARGET_DEPLOYMENT`,
    /// `SERVICE_ACCOUNT`, the queue and the table), the walkthrough's where unset.
    pub fn sample_names(&self) -> SampleNames<'_> {
        SampleNames {
            namespace: self
                .get("AQS_TARGET_NAMESPACE")
                .unwrap_or(walkthrough::NAMESPACE),
            deployment: self
                .get("AQS_TARGET_DEPLOYMENT")
                .unwrap_or(walkthrough::DEPLOYMENT),
            service_account: self
                .get("SERVICE_ACCOUNT")
                .unwrap_or(walkthrough::SERVICE_ACCOUNT),
            queue: self.queue_name(),
            table: self.table_name(),
        }
    }

    /// Which storage access [`Config::storage`] uses and why, in words `edw config` prints:
    /// `EDW_STORAGE_AUTH` when set; else `EDW_AZURITE_*` endpoints (explicit endpoints win over
    /// the sample's `AZURE_STORAGE_ACCOUNT_NAME`, which `environmentVariables.sh` exports), else a
    /// connection string, else an account name with a key, else an account name alone (Entra
    /// ID), else an embedded Azurite.
    pub fn storage_mode(&self) -> Result<(&str, String), ConfigError> {
        let origin = |key: &str| match self.source(key) {
            Some(Source::Environment(_)) => format!("{key} (environment)"),
            Some(Source::Default) | None => key.to_owned(),
            Some(source) => format!("{key} ({source})"),
        };
        let set = |key: &str| self.get(key).is_some_and(|v| !v.is_empty());
        let (queue, table) = ("EDW_AZURITE_QUEUE_ENDPOINT", "EDW_AZURITE_TABLE_ENDPOINT");
        if set(queue) != set(table) {
            let (given, absent) = if set(queue) {
                (queue, table)
            } else {
                (table, queue)
            };
            return Err(ConfigError::Missing {
                key: absent.to_owned(),
                why: format!(
                    "{} is set: an Azurite needs both endpoints (`edw azurite` prints both lines)",
                    origin(given)
                ),
            });
        }
        if let Some(mode) = self.get("EDW_STORAGE_AUTH") {
            return Ok((mode, format!("{} asks for it", origin("EDW_STORAGE_AUTH"))));
        }
        let ignored = |winner: &str, others: &[&str]| {
            let others: Vec<String> = others
                .iter()
                .filter(|k| set(k))
                .map(|k| origin(k))
                .collect();
            if others.is_empty() {
                winner.to_owned()
            } else {
                format!(
                    "{winner}; {} ignored for storage (set EDW_STORAGE_AUTH to choose otherwise)",
                    others.join(", ")
                )
            }
        };
        let account_keys = [
            "AZURE_STORAGE_CONNECTION_STRING",
            "AZURE_STORAGE_ACCOUNT_NAME",
            "AZURE_STORAGE_KEY",
        ];
        Ok(if set(queue) {
            (
                "azurite",
                ignored(
                    &format!("{} and {} are set", origin(queue), origin(table)),
                    &account_keys,
                ),
            )
        } else if set("AZURE_STORAGE_CONNECTION_STRING") {
            (
                "connection-string",
                ignored(
                    &format!("{} is set", origin("AZURE_STORAGE_CONNECTION_STRING")),
                    &account_keys[1..],
                ),
            )
        } else if set("AZURE_STORAGE_ACCOUNT_NAME") && set("AZURE_STORAGE_KEY") {
            (
                "key",
                format!(
                    "{} and {} are set",
                    origin("AZURE_STORAGE_ACCOUNT_NAME"),
                    origin("AZURE_STORAGE_KEY")
                ),
            )
        } else if set("AZURE_STORAGE_ACCOUNT_NAME") {
            (
                "entra",
                format!(
                    "{} is set without a key or connection string",
                    origin("AZURE_STORAGE_ACCOUNT_NAME")
                ),
            )
        } else {
            (
                "azurite",
                "no account, connection string or EDW_AZURITE_* endpoints: an embedded Azurite"
                    .to_owned(),
            )
        })
    }

    /// Where the storage is and how to authenticate, as [`Config::storage_mode`] chooses.
    pub fn storage(&self) -> Result<StorageChoice, ConfigError> {
        let account = self.get("AZURE_STORAGE_ACCOUNT_NAME");
        let connection_string = self.get("AZURE_STORAGE_CONNECTION_STRING");
        let key = self.get("AZURE_STORAGE_KEY");
        let azurite = match (
            self.get("EDW_AZURITE_QUEUE_ENDPOINT"),
            self.get("EDW_AZURITE_TABLE_ENDPOINT"),
        ) {
            (Some(q), Some(t)) => Some((q, t)),
            _ => None,
        };
        let (mode, _) = self.storage_mode()?;
        let missing = |key: &str, why: &str| ConfigError::Missing {
            key: key.to_owned(),
            why: why.to_owned(),
        };
        let target = |auth: StorageAuth| StorageTarget {
            account: account.unwrap_or_default().to_owned(),
            auth,
            queue_endpoint: self.get("EDW_QUEUE_ENDPOINT").map(str::to_owned),
            table_endpoint: self.get("EDW_TABLE_ENDPOINT").map(str::to_owned),
            queue_partitions: Vec::new(),
            retry: self.retry_settings(),
        };
        let choice = match mode {
            "azurite" => match azurite {
                // Several queue endpoints, comma-separated: one queue partitioned over them.
                Some((queue, table)) => StorageChoice::Target(StorageTarget {
                    retry: self.retry_settings(),
                    ..StorageTarget::development_partitioned(&endpoint_list(queue), table)
                }),
                None => StorageChoice::EmbeddedAzurite,
            },
            "connection-string" => {
                let cs = connection_string.ok_or_else(|| {
                    missing(
                        "AZURE_STORAGE_CONNECTION_STRING",
                        "EDW_STORAGE_AUTH=connection-string needs it",
                    )
                })?;
                StorageChoice::Target(target(StorageAuth::ConnectionString(Secret::new(cs))))
            }
            "key" => {
                account.ok_or_else(|| {
                    missing("AZURE_STORAGE_ACCOUNT_NAME", "account-key access needs it")
                })?;
                let key = key.ok_or_else(|| {
                    missing(
                        "AZURE_STORAGE_KEY",
                        "EDW_STORAGE_AUTH=key needs the account key",
                    )
                })?;
                StorageChoice::Target(target(StorageAuth::AccountKey(Secret::new(key))))
            }
            "entra" => {
                account.ok_or_else(|| {
                    missing("AZURE_STORAGE_ACCOUNT_NAME", "Entra ID access needs it")
                })?;
                StorageChoice::Target(target(StorageAuth::EntraId))
            }
            other => {
                return Err(ConfigError::Invalid {
                    key: "EDW_STORAGE_AUTH".to_owned(),
                    origin: self
                        .source("EDW_STORAGE_AUTH")
                        .cloned()
                        .unwrap_or(Source::Default),
                    // Redacted like every invalid value: a secret never appears in an error
                    // (even one that happens to spell a mode's name).
                    reason: crate::secrets::redact(&format!(
                        "{other:?} is not one of azurite, connection-string, key, entra"
                    )),
                });
            }
        };
        Ok(choice)
    }

    /// How many queue services an embedded Azurite starts, each holding a partition of every
    /// queue (`EDW_AZURITE_QUEUE_PARTITIONS`, default 1): one Azurite process slows down as
    /// its backlog grows, so backlogs of many thousands need several.
    pub fn azurite_queue_partitions(&self) -> usize {
        self.get("EDW_AZURITE_QUEUE_PARTITIONS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// The local target's clock scale (`EDW_TWIN_SCALE`, validated from 1 to 1,000), if set.
    pub fn twin_scale(&self) -> Option<f64> {
        self.get("EDW_TWIN_SCALE").and_then(|v| v.parse().ok())
    }

    fn retry_settings(&self) -> RetrySettings {
        let mut retry = RetrySettings::default();
        if let Some(n) = self
            .get("EDW_STORAGE_MAX_RETRIES")
            .and_then(|v| v.parse().ok())
        {
            retry.max_retries = n;
        }
        retry
    }
}

/// The endpoints of a comma-separated list.
fn endpoint_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

fn state_file_path(inputs: &ConfigInputs) -> Option<PathBuf> {
    if let Some(path) = &inputs.state_file {
        return Some(path.clone());
    }
    if let Some((_, path)) = inputs.env.iter().find(|(k, _)| k == "EDW_DEPLOY_STATE") {
        if !path.is_empty() {
            return Some(PathBuf::from(path));
        }
    }
    let dir = inputs.working_dir.as_deref().unwrap_or(Path::new("."));
    let default = dir.join(DEFAULT_STATE_FILE);
    default.is_file().then_some(default)
}
