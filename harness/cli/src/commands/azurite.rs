//! `edw azurite`: embedded Azurite in the foreground, for other commands and tools to share.

use tokio_util::sync::CancellationToken;

use crate::args::GlobalArgs;
use crate::session::load_config;
use crate::{exit, Failure};
use edw_engine::azurite::{Azurite, AzuriteOptions, AZURITE_VERSION};

pub async fn run(global: &GlobalArgs, cancel: &CancellationToken) -> Result<u8, Failure> {
    let config = load_config(global)?;
    let options = AzuriteOptions {
        queue_partitions: config.azurite_queue_partitions(),
        ..AzuriteOptions::default()
    };
    let azurite = Azurite::start_with(&options)
        .await
        .map_err(Failure::environment)?;
    println!(
        "Azurite {AZURITE_VERSION} is running until Ctrl-C (queues in a temporary directory, \
         tables in memory)."
    );
    println!("For edw in another shell:");
    println!(
        "  export EDW_AZURITE_QUEUE_ENDPOINT={}",
        azurite.queue_endpoints().join(",")
    );
    println!(
        "  export EDW_AZURITE_TABLE_ENDPOINT={}",
        azurite.table_endpoint()
    );
    if azurite.queue_endpoints().len() > 1 {
        println!(
            "(the queues are partitioned over {} queue services; other tools see the first only)",
            azurite.queue_endpoints().len()
        );
    }
    println!("For other tools (the published development key):");
    println!(
        "  AZURE_STORAGE_CONNECTION_STRING='{}'",
        azurite.connection_string()
    );
    cancel.cancelled().await;
    azurite.stop().await;
    Ok(exit::OK)
}
