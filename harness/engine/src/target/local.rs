//! The `local` target: embedded Azurite and the twin in this process, on the scaled clock, its
//! API reached through an in-process kube-rs client, its consumer pods running the real consumer.

use std::sync::{Arc, Mutex};

use edw_twin::api::ApiServer;
use edw_twin::clock::ScaledClock;
use edw_twin::driver::{drive, scaled_engine};
use edw_twin::engine::Engine;
use edw_twin::params::TwinParams;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Capabilities, TargetError};
use crate::azurite::{Azurite, AzuriteOptions};
use crate::config::{Config, StorageChoice};
use crate::storage::Storage;
use crate::twin_governor::{ClockGovernor, GovernorSummary};
use crate::twin_pods::{in_cluster_target, ConsumerPods, StorageQueueProbe};
use edw_model::report::TargetInfo;

/// The default clock scale of the local target: the sample's 30 s polling every 1.5 s.
pub const DEFAULT_SCALE: f64 = 20.0;

/// Azurite plus the twin.
pub struct LocalTarget {
    azurite: Option<Azurite>,
    storage: Storage,
    engine: Arc<Mutex<Engine>>,
    client: kube::Client,
    scale: f64,
    clock: Arc<ScaledClock>,
    governor: Arc<ClockGovernor>,
    capabilities: Capabilities,
    stop: CancellationToken,
    driver: Option<JoinHandle<()>>,
    storage_description: String,
}

/// The twin's parameters: `EDW_TWIN_PARAMS`'s file when it is set (a bad file is a
/// configuration error naming it and the key), else the specification's defaults.
pub fn twin_params() -> Result<TwinParams, TargetError> {
    match std::env::var_os("EDW_TWIN_PARAMS").filter(|v| !v.is_empty()) {
        Some(path) => edw_twin::params::load(Some(std::path::Path::new(&path)), &[])
            .map_err(TargetError::TwinParams),
        None => Ok(TwinParams::default()),
    }
}

impl LocalTarget {
    /// Starts Azurite (unless storage is configured) and the twin. `EDW_TWIN_SCALE` (the
    /// configuration's [`Config::twin_scale`]) sets the clock scale (default 20); `EDW_TWIN_PARAMS` names a JSON file of twin parameters (e.g.
    /// what `edw twin calibrate` wrote; default: the specification's).
    pub async fn start(config: &Config) -> Result<LocalTarget, TargetError> {
        let scale = config.twin_scale().unwrap_or(DEFAULT_SCALE);
        let params = twin_params()?;
        let (target, azurite) = match config.storage()? {
            StorageChoice::Target(target) => (target, None),
            StorageChoice::EmbeddedAzurite => {
                let options = AzuriteOptions {
                    queue_partitions: config.azurite_queue_partitions(),
                    ..AzuriteOptions::default()
                };
                let azurite = Azurite::start_with(&options).await?;
                (azurite.storage_target(), Some(azurite))
            }
        };
        let storage = Storage::connect(&target)?;
        let (engine, clock) =
            scaled_engine(params, scale).map_err(|e| TargetError::Twin(e.into()))?;
        let api = ApiServer::new(engine.store.clone(), engine.registry.clone());
        let client = api.kube_client();
        let capabilities = Capabilities::detect(&client)
            .await
            .map_err(|e| TargetError::Twin(e.into()))?;
        let activity = engine.store.activity().clone();
        let engine = Arc::new(Mutex::new(engine));
        let stop = CancellationToken::new();
        let governor = ClockGovernor::start(clock.clone(), stop.clone());
        // The pods and KEDA back off in simulated time (`in_cluster_target` says why).
        let in_cluster_storage = Storage::connect(&in_cluster_target(&target, scale))?;
        let pods = Arc::new(
            ConsumerPods::new(in_cluster_storage.clone(), governor.clone()).with_activity(activity),
        );
        let probe = Arc::new(StorageQueueProbe::new(in_cluster_storage, governor.clone()));
        let driver = tokio::spawn(drive(
            engine.clone(),
            clock.clone(),
            probe,
            pods,
            stop.clone(),
        ));
        Ok(LocalTarget {
            storage_description: storage.describe(),
            azurite,
            storage,
            engine,
            client,
            scale,
            clock,
            governor,
            capabilities,
            stop,
            driver: Some(driver),
        })
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The twin's (governed) clock.
    pub fn clock(&self) -> Arc<ScaledClock> {
        self.clock.clone()
    }

    /// How much the clock had to slow down for the real consumers so far.
    pub fn governor_summary(&self) -> GovernorSummary {
        self.governor.summary()
    }

    /// What the twin's API serves (detected like any cluster's).
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    pub fn info(&self) -> TargetInfo {
        TargetInfo {
            name: "local".to_owned(),
            description: format!(
                "local: SIMULATED AKS (the twin, clock x{}) with {}",
                self.scale, self.storage_description
            ),
            simulated: true,
            clock: edw_model::report::MeasuredClock::TwinSimulated,
        }
    }

    /// The twin's engine, for tests that look inside.
    pub fn engine(&self) -> Arc<Mutex<Engine>> {
        self.engine.clone()
    }

    /// Stops the twin (its pods' consumers first) and Azurite.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(driver) = self.driver.take() {
            let _ = driver.await;
        }
        if let Some(azurite) = self.azurite.take() {
            azurite.stop().await;
        }
    }
}

impl Drop for LocalTarget {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
