//! Opening storage for a command: load the configuration, start embedded Azurite when no
//! account is configured, connect.

use crate::azurite::{Azurite, AzuriteOptions};
use crate::config::{Config, ConfigInputs, StorageChoice};
use crate::storage::Storage;

use super::args::GlobalArgs;
use super::Failure;

/// Storage plus the embedded Azurite that serves it (kept alive as long as this is).
pub struct Session {
    pub config: Config,
    pub storage: Storage,
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
    let storage = Storage::connect(&target).map_err(Failure::environment)?;
    Ok(Session {
        config,
        storage,
        azurite,
    })
}
