//! `edw config`: the resolved configuration with the origin of each value.

use crate::args::GlobalArgs;
use crate::{exit, session, Failure};
use edw_engine::config::StorageChoice;

pub fn run(global: &GlobalArgs) -> Result<u8, Failure> {
    let config = session::load_config(global)?;
    match &config.state_file {
        Some(path) => println!("deploy.state: {}", path.display()),
        None => println!("deploy.state: none"),
    }
    for (key, value, source) in config.entries() {
        println!("{key}={value}    # {source}");
    }
    let storage = match config.storage().map_err(Failure::usage)? {
        StorageChoice::EmbeddedAzurite => "embedded Azurite (no account configured)".to_owned(),
        StorageChoice::Target(target) => {
            format!(
                "account {:?} with {}",
                target.account,
                target.auth.describe()
            )
        }
    };
    let (_, why) = config.storage_mode().map_err(Failure::usage)?;
    println!("storage: {storage}");
    println!("  because {why}");
    // Storage with EDW_STORAGE_AUTH=entra and Azure Resource Manager both sign in so.
    println!(
        "entra sign-in: {}",
        edw_engine::storage::EntraSignIn::from_process_env().describe()
    );
    Ok(exit::OK)
}
