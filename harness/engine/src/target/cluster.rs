//! The `kube` and `aks` targets: a real cluster from a kubeconfig (context `EDW_KUBE_CONTEXT`,
//! else the current one), with the configured storage (Azurite endpoints, a connection string
//! or key, or Entra ID for the account in deploy.state).

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::{Capabilities, TargetError, TargetKind};
use crate::config::{Config, StorageChoice};
use crate::storage::{Storage, StorageAuth, StorageTarget};
use edw_model::report::{MeasuredClock, TargetInfo};

/// The connection string for pods: the configured one, or Azurite's development account at
/// the endpoints pods reach (`EDW_CLUSTER_QUEUE_ENDPOINT` / `EDW_CLUSTER_TABLE_ENDPOINT`, e.g.
/// the Azurite container on kind's network; default: the harness's own endpoints).
fn connection_for_pods(target: &StorageTarget) -> Option<crate::secrets::Secret> {
    match &target.auth {
        StorageAuth::ConnectionString(secret) => Some(secret.clone()),
        StorageAuth::DevelopmentAccount => {
            let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let queue =
                var("EDW_CLUSTER_QUEUE_ENDPOINT").or_else(|| target.queue_endpoint.clone())?;
            let table =
                var("EDW_CLUSTER_TABLE_ENDPOINT").or_else(|| target.table_endpoint.clone())?;
            Some(crate::secrets::Secret::new(format!(
                "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};QueueEndpoint={queue};TableEndpoint={table};",
                crate::storage::DEVELOPMENT_ACCOUNT,
                crate::azurite::DEVELOPMENT_KEY
            )))
        }
        StorageAuth::AccountKey(_) | StorageAuth::EntraId => None,
    }
}

/// The cluster's pods and KEDA read one queue endpoint: a queue partitioned over several
/// (`EDW_AZURITE_QUEUE_ENDPOINT` listing more than one) would spread the load over partitions
/// they never read. Refused before anything is created.
fn refuse_queue_partitions(kind: TargetKind, config: &Config) -> Result<(), TargetError> {
    let Ok(StorageChoice::Target(target)) = config.storage() else {
        return Ok(());
    };
    if target.queue_partitions.is_empty() {
        return Ok(());
    }
    Err(TargetError::Config(crate::config::ConfigError::Invalid {
        key: "EDW_AZURITE_QUEUE_ENDPOINT".to_owned(),
        origin: config
            .source("EDW_AZURITE_QUEUE_ENDPOINT")
            .cloned()
            .unwrap_or(crate::config::Source::Default),
        reason: format!(
            "it lists {} queue endpoints: partitions are for the local target, a {} cluster's consumers and KEDA read one queue endpoint",
            target.queue_partitions.len() + 1,
            kind.name()
        ),
    }))
}

/// A real cluster.
pub struct ClusterTarget {
    kind: TargetKind,
    client: kube::Client,
    storage: Storage,
    capabilities: Capabilities,
    description: String,
    simulated: bool,
    /// A served twin's clock, when the cluster is one and states it.
    served_clock: Option<std::sync::Arc<super::clock::ServedClock>>,
    connection: Option<crate::secrets::Secret>,
}

impl ClusterTarget {
    pub async fn open(kind: TargetKind, config: &Config) -> Result<ClusterTarget, TargetError> {
        refuse_queue_partitions(kind, config)?;
        // The configuration first: a missing setting is reported as such, whatever the cluster.
        let storage_target = match config.storage()? {
            StorageChoice::Target(target) => target,
            StorageChoice::EmbeddedAzurite => {
                return Err(TargetError::Config(crate::config::ConfigError::Missing {
                    key: "AZURE_STORAGE_ACCOUNT_NAME".to_owned(),
                    why: format!(
                        "the {} target needs storage the cluster can reach: an account (deploy.state or AZURE_STORAGE_*) or EDW_AZURITE_* endpoints",
                        kind.name()
                    ),
                }))
            }
        };
        let storage = Storage::connect(&storage_target)?;
        let context = std::env::var("EDW_KUBE_CONTEXT")
            .ok()
            .filter(|c| !c.is_empty());
        let context_text = context
            .as_ref()
            .map(|c| format!(" (context {c})"))
            .unwrap_or_default();
        let kubeconfig_error =
            |source: Box<dyn std::error::Error + Send + Sync>| TargetError::Kubeconfig {
                context: context_text.clone(),
                source,
            };
        let kubeconfig = Kubeconfig::read().map_err(|e| kubeconfig_error(e.into()))?;
        let options = KubeConfigOptions {
            context: context.clone(),
            ..KubeConfigOptions::default()
        };
        let client_config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| kubeconfig_error(e.into()))?;
        let url = client_config.cluster_url.to_string();
        let client =
            kube::Client::try_from(client_config).map_err(|e| kubeconfig_error(e.into()))?;
        let capabilities =
            Capabilities::detect(&client)
                .await
                .map_err(|e| TargetError::Unreachable {
                    url: url.clone(),
                    source: e,
                })?;
        let connection = connection_for_pods(&storage_target);
        // A served twin says so in /version: its results stay labelled simulated.
        let simulated = client
            .apiserver_version()
            .await
            .is_ok_and(|v| v.git_commit == edw_twin::api::TWIN_MARKER);
        // Its clock too: waits and timelines are then measured in its simulated seconds, as on
        // the local target. A twin that does not state it is measured in real time.
        let served_clock = if simulated {
            super::clock::ServedClock::connect(&client).await.ok()
        } else {
            None
        };
        let what = match &served_clock {
            Some(clock) => format!("SIMULATED cluster (an edw twin, clock x{})", clock.scale()),
            None if simulated => "SIMULATED cluster (an edw twin)".to_owned(),
            None => "cluster".to_owned(),
        };
        let description = format!(
            "{}: {what} {url}{context_text} with {}",
            kind.name(),
            storage.describe()
        );
        Ok(ClusterTarget {
            kind,
            client,
            storage,
            capabilities,
            description,
            simulated,
            served_clock,
            connection,
        })
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// The connection string the cluster's pods and KEDA use, when storage is reached by
    /// connection string (Azurite, or a configured string) rather than workload identity.
    pub fn connection_for_pods(&self) -> Option<&crate::secrets::Secret> {
        self.connection.as_ref()
    }

    pub fn info(&self) -> TargetInfo {
        TargetInfo {
            name: self.kind.name().to_owned(),
            description: self.description.clone(),
            simulated: self.simulated,
            // A cluster on the harness's wall clock; a served twin on its own clock when it
            // states it.
            clock: match (&self.served_clock, self.simulated) {
                (Some(_), _) => MeasuredClock::ServedTwinSimulated,
                (None, true) => MeasuredClock::RealAgainstServedTwin,
                (None, false) => MeasuredClock::Real,
            },
        }
    }

    /// The clock waits and timelines are measured on: a served twin's, else real time.
    pub fn clock(&self) -> super::TargetClock {
        match &self.served_clock {
            Some(clock) => super::TargetClock::Served(clock.clone()),
            None => super::TargetClock::Real,
        }
    }

    /// Target seconds per real second at most: a served twin's scale, else 1.
    pub fn time_scale(&self) -> f64 {
        self.served_clock.as_ref().map_or(1.0, |c| c.scale())
    }
}
