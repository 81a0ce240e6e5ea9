//! The storage checks of `edw doctor`: where the configured storage is, and whether its queue
//! and table endpoints can be reached.

use std::ffi::OsStr;
use std::time::Duration;

use super::tools::find_on_path;
use super::{names, Finding};
use crate::args::GlobalArgs;
use crate::session;
use edw_engine::config::StorageChoice;
use edw_engine::storage::{Storage, StorageAuth};
use edw_engine::target::TargetKind;

/// One TCP connection to a storage endpoint.
const TCP_WITHIN: Duration = Duration::from_secs(3);

/// Host and port of a storage endpoint URL (the scheme's port when none is given).
pub(crate) fn endpoint_address(url: &str) -> Result<(String, u16), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| format!("{url:?} has no port"))?;
    Ok((host, port))
}

/// Where the configured storage is, and whether it can be reached: TCP connections to the
/// queue and table endpoints, or, for the embedded Azurite, node and npm on PATH.
pub(super) async fn storage_findings(
    target: TargetKind,
    global: &GlobalArgs,
    path: Option<&OsStr>,
) -> Vec<Finding> {
    let name = names::STORAGE;
    let config = match session::load_config(global) {
        Ok(config) => config,
        Err(failure) => {
            return vec![Finding::fail(
                name,
                format!("the configuration is not usable: {:#}", failure.error),
                "correct the value, variable or deploy.state line named (`edw config` shows where each comes from)",
            )]
        }
    };
    let half_set = ["EDW_AZURITE_QUEUE_ENDPOINT", "EDW_AZURITE_TABLE_ENDPOINT"]
        .map(|key| config.get(key).is_some_and(|v| !v.is_empty()));
    if half_set[0] != half_set[1] {
        return vec![Finding::fail(
            name,
            "only one of EDW_AZURITE_QUEUE_ENDPOINT and EDW_AZURITE_TABLE_ENDPOINT is set, so neither is used",
            "set both (`edw azurite` prints them), or neither",
        )];
    }
    let choice = match config.storage() {
        Ok(choice) => choice,
        Err(e) => {
            return vec![Finding::fail(
                name,
                format!("the storage configuration is not usable: {e}"),
                "set what the message names (`edw config` shows the resolved values)",
            )]
        }
    };
    let storage_target = match choice {
        StorageChoice::EmbeddedAzurite if target == TargetKind::Local => {
            return vec![embedded_azurite(path)];
        }
        StorageChoice::EmbeddedAzurite => {
            let fix = if target == TargetKind::Aks {
                "pass --state-file with the deploy.state deploy.sh wrote (it names AZURE_STORAGE_ACCOUNT_NAME), or set AZURE_STORAGE_ACCOUNT_NAME"
            } else {
                "run Azurite where the cluster reaches it (`ci/kind-up.sh` prints the variables) and export EDW_AZURITE_QUEUE_ENDPOINT and EDW_AZURITE_TABLE_ENDPOINT, or set AZURE_STORAGE_ACCOUNT_NAME"
            };
            return vec![Finding::fail(
                name,
                format!(
                    "no storage configured; the {} target needs storage the cluster can reach (the embedded Azurite is for the local target only)",
                    target.name()
                ),
                fix,
            )];
        }
        StorageChoice::Target(storage_target) => storage_target,
    };
    let storage = match Storage::connect(&storage_target) {
        Ok(storage) => storage,
        Err(e) => {
            return vec![Finding::fail(
                name,
                format!("cannot set up storage: {e}"),
                "correct the storage settings (`edw config` shows them)",
            )]
        }
    };
    let what = match storage_target.auth {
        StorageAuth::DevelopmentAccount => "Azurite",
        _ => "storage account",
    };
    let (queue, table) = tokio::join!(
        tcp_finding(names::STORAGE_QUEUE, what, storage.queue_endpoint()),
        tcp_finding(names::STORAGE_TABLE, what, storage.table_endpoint()),
    );
    vec![queue, table]
}

/// The embedded Azurite's needs: node and npm on PATH.
fn embedded_azurite(path: Option<&OsStr>) -> Finding {
    let node = find_on_path("node", path);
    let npm = find_on_path("npm", path);
    let fix = "install Node.js 18 or newer with npm (Debian/Ubuntu: `apt-get install nodejs npm`), \
               or run Azurite yourself and set EDW_AZURITE_QUEUE_ENDPOINT and EDW_AZURITE_TABLE_ENDPOINT";
    match (node, npm) {
        (Some(node), Some(npm)) => Finding::ok(
            names::STORAGE,
            format!(
                "embedded Azurite (azurite@{}): installed into the cache on first use and started by each command (node {}, npm {})",
                edw_engine::azurite::AZURITE_VERSION,
                node.display(),
                npm.display()
            ),
        ),
        (node, npm) => {
            let missing: Vec<&str> = [("node", node.is_none()), ("npm", npm.is_none())]
                .into_iter()
                .filter_map(|(program, missing)| missing.then_some(program))
                .collect();
            Finding::fail(
                names::STORAGE,
                format!(
                    "the embedded Azurite needs Node.js and npm, and {} not on PATH",
                    missing.join(" and ")
                ),
                fix,
            )
        }
    }
}

/// A TCP connection to the endpoint's host and port.
async fn tcp_finding(name: &str, what: &str, endpoint: &str) -> Finding {
    let (host, port) = match endpoint_address(endpoint) {
        Ok(address) => address,
        Err(e) => {
            return Finding::fail(
                name,
                e,
                "correct the endpoint (`edw config` shows where it comes from)",
            )
        }
    };
    let fix = if what == "Azurite" {
        "start Azurite (`edw azurite` prints the variables to export) or correct EDW_AZURITE_QUEUE_ENDPOINT / EDW_AZURITE_TABLE_ENDPOINT"
    } else {
        "check the account name and the network path to it (firewall, private endpoint, proxy)"
    };
    match tokio::time::timeout(
        TCP_WITHIN,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Finding::ok(name, format!("{what} {endpoint} accepts connections")),
        Ok(Err(e)) => Finding::fail(
            name,
            format!("{what} {endpoint}: cannot connect to {host}:{port}: {e}"),
            fix,
        ),
        Err(_) => Finding::fail(
            name,
            format!("{what} {endpoint}: no connection to {host}:{port} within {TCP_WITHIN:?}"),
            fix,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_addresses_use_the_scheme_port_by_default() {
        assert_eq!(
            endpoint_address("http://127.0.0.1:10001/devstoreaccount1"),
            Ok(("127.0.0.1".into(), 10001))
        );
        assert_eq!(
            endpoint_address("https://acct.queue.core.windows.net"),
            Ok(("acct.queue.core.windows.net".into(), 443))
        );
        assert_eq!(
            endpoint_address("http://[::1]:10002/devstoreaccount1"),
            Ok(("::1".into(), 10002))
        );
        assert!(endpoint_address("not a url").is_err());
        assert!(endpoint_address("unix:/tmp/socket").is_err());
    }
}
