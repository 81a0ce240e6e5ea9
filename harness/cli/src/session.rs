//! Opening storage for a command: load the configuration, start embedded Azurite when no
//! account is configured, connect.

use edw_engine::azurite::{Azurite, AzuriteOptions};
use edw_engine::config::{Config, ConfigInputs, StorageChoice};
use edw_engine::storage::{Storage, StorageAuth, StorageTarget};
use edw_engine::target::{Target, TargetKind};

use super::args::GlobalArgs;
use super::Failure;

/// Storage plus the embedded Azurite that serves it (kept alive as long as this is).
pub struct Session {
    pub config: Config,
    pub storage: Storage,
    /// What `storage` was connected from (a served twin connects its pods with its own retry).
    pub storage_target: StorageTarget,
    pub azurite: Option<Azurite>,
}

/// The configuration from the process environment, deploy.state and the global flags.
pub fn load_config(global: &GlobalArgs) -> Result<Config, Failure> {
    let mut inputs = ConfigInputs::from_process();
    inputs.state_file = global.state_file.clone();
    let flags = [
        ("AZURE_QUEUE_NAME", &global.queue, "--queue"),
        ("AZURE_TABLE_NAME", &global.table, "--table"),
        ("AZURE_STORAGE_ACCOUNT_NAME", &global.account, "--account"),
        ("EDW_STORAGE_AUTH", &global.storage_auth, "--storage-auth"),
    ];
    for (key, value, flag) in flags {
        if let Some(value) = value {
            inputs = inputs.flag(key, value.clone(), flag);
        }
    }
    let config = Config::load(&inputs).map_err(Failure::usage)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    Ok(config)
}

/// Loads the configuration and connects to its storage.
pub async fn open(global: &GlobalArgs) -> Result<Session, Failure> {
    let config = load_config(global)?;
    let (target, azurite) = match config.storage().map_err(Failure::usage)? {
        StorageChoice::Target(target) => (target, None),
        StorageChoice::EmbeddedAzurite => {
            let options = AzuriteOptions {
                queue_partitions: config.azurite_queue_partitions(),
                ..AzuriteOptions::default()
            };
            let azurite = Azurite::start_with(&options)
                .await
                .map_err(Failure::environment)?;
            tracing::info!(
                queue = azurite.queue_endpoints().join(","),
                table = azurite.table_endpoint(),
                "started embedded Azurite (it stops with this command)"
            );
            (azurite.storage_target(), Some(azurite))
        }
    };
    let storage = Storage::connect(&target).map_err(Failure::storage)?;
    check_storage_access(&storage, &config).await?;
    Ok(Session {
        config,
        storage,
        storage_target: target,
        azurite,
    })
}

/// Opens the target of `edw run` and the phase commands, then checks its storage before any
/// step creates anything: a configuration error exits 2, a cluster or storage that does not
/// answer or refuses the credentials exits 3 (never a failed step, never a half deployment).
pub async fn open_target(kind: TargetKind, config: &Config) -> Result<Target, Failure> {
    let target = Target::open(kind, config).await.map_err(Failure::target)?;
    if let Err(failure) = check_storage_access(target.storage(), config).await {
        target.shutdown().await;
        return Err(failure);
    }
    Ok(target)
}

/// Reads the configured queue and table (creating nothing); a failure names the settings the
/// credentials came from.
async fn check_storage_access(storage: &Storage, config: &Config) -> Result<(), Failure> {
    storage
        .check_access(config.queue_name(), config.table_name())
        .await
        .map_err(|error| {
            Failure::storage(error).context(format!(
                "storage access check ({}; check {})",
                storage.describe(),
                credential_settings(config)
            ))
        })
}

/// Where the storage credentials of `config` come from, in the user's words.
fn credential_settings(config: &Config) -> &'static str {
    match config.storage() {
        Ok(StorageChoice::Target(target)) => match target.auth {
            StorageAuth::ConnectionString(_) => "AZURE_STORAGE_CONNECTION_STRING",
            StorageAuth::AccountKey(_) => {
                "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_KEY (and EDW_QUEUE_ENDPOINT / EDW_TABLE_ENDPOINT if set)"
            }
            StorageAuth::EntraId => {
                "AZURE_STORAGE_ACCOUNT_NAME and the Entra ID sign-in's data roles on it (Storage Queue / Table Data Contributor)"
            }
            StorageAuth::DevelopmentAccount => {
                "that the Azurite at EDW_AZURITE_QUEUE_ENDPOINT / EDW_AZURITE_TABLE_ENDPOINT is running"
            }
        },
        Ok(StorageChoice::EmbeddedAzurite) | Err(_) => "the embedded Azurite",
    }
}
