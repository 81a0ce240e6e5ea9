//! Where a scenario runs, behind one type: `local` (embedded Azurite and the in-process twin,
//! the default), `kube` (any kubeconfig cluster, e.g. kind with KEDA, with Azurite or a real
//! account) and `aks` (a live subscription's cluster, from deploy.state). What a target can do
//! (Karpenter, KEDA) is detected from its API, not assumed.

mod clock;
mod cluster;
mod local;

use std::sync::Arc;

pub use clock::TargetClock;
pub use cluster::ClusterTarget;
pub use local::{twin_params, LocalTarget};

use crate::config::Config;
use crate::storage::Storage;
use edw_model::report::TargetInfo;

/// Which kind of target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Local,
    Kube,
    Aks,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Local => "local",
            TargetKind::Kube => "kube",
            TargetKind::Aks => "aks",
        }
    }

    /// Parses `local`, `kube` or `aks`.
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        match text.trim() {
            "local" | "" => Ok(TargetKind::Local),
            "kube" => Ok(TargetKind::Kube),
            "aks" => Ok(TargetKind::Aks),
            other => Err(TargetError::Unknown(other.to_owned())),
        }
    }
}

/// Why a target could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("unknown target {0:?}: use local, kube or aks")]
    Unknown(String),
    #[error("cannot start embedded Azurite")]
    Azurite(#[from] crate::azurite::AzuriteError),
    #[error("cannot set up storage")]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("EDW_TWIN_PARAMS")]
    TwinParams(#[source] edw_twin::params::ParamsError),
    #[error("cannot start the twin")]
    Twin(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no usable kubeconfig{context}")]
    Kubeconfig {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the cluster at {url} does not answer")]
    Unreachable {
        url: String,
        #[source]
        source: kube::Error,
    },
}

impl TargetError {
    /// True when the settings are at fault (an unknown target, a missing or invalid variable, a
    /// kubeconfig or context that cannot be used), false when the environment is (a cluster,
    /// storage or Azurite that does not answer or refuses the credentials).
    pub fn is_configuration(&self) -> bool {
        match self {
            TargetError::Unknown(_)
            | TargetError::Config(_)
            | TargetError::Kubeconfig { .. }
            | TargetError::TwinParams(_) => true,
            TargetError::Storage(error) => error.is_configuration(),
            TargetError::Azurite(_) | TargetError::Twin(_) | TargetError::Unreachable { .. } => {
                false
            }
        }
    }
}

/// What the target's API serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// karpenter.sh NodePools and NodeClaims.
    pub karpenter: bool,
    /// keda.sh ScaledObjects.
    pub keda: bool,
}

impl Capabilities {
    /// Reads the API groups the cluster serves.
    pub async fn detect(client: &kube::Client) -> Result<Capabilities, kube::Error> {
        let groups = client.list_api_groups().await?;
        let has = |name: &str| groups.groups.iter().any(|g| g.name == name);
        Ok(Capabilities {
            karpenter: has("karpenter.sh"),
            keda: has("keda.sh"),
        })
    }
}

/// A place to run scenarios.
pub enum Target {
    Local(Box<LocalTarget>),
    Cluster(Box<ClusterTarget>),
}

impl Target {
    /// Opens the target `kind` for `config`.
    pub async fn open(kind: TargetKind, config: &Config) -> Result<Target, TargetError> {
        match kind {
            TargetKind::Local => Ok(Target::Local(Box::new(LocalTarget::start(config).await?))),
            TargetKind::Kube | TargetKind::Aks => Ok(Target::Cluster(Box::new(
                ClusterTarget::open(kind, config).await?,
            ))),
        }
    }

    pub fn client(&self) -> kube::Client {
        match self {
            Target::Local(t) => t.client(),
            Target::Cluster(t) => t.client(),
        }
    }

    pub fn storage(&self) -> &Storage {
        match self {
            Target::Local(t) => t.storage(),
            Target::Cluster(t) => t.storage(),
        }
    }

    pub fn info(&self) -> TargetInfo {
        match self {
            Target::Local(t) => t.info(),
            Target::Cluster(t) => t.info(),
        }
    }

    /// Target seconds per real second at most (a twin's clock scale; 1 for clusters).
    pub fn time_scale(&self) -> f64 {
        match self {
            Target::Local(t) => t.scale(),
            Target::Cluster(t) => t.time_scale(),
        }
    }

    /// The clock waits and timelines on this target are measured with.
    pub fn clock(&self) -> TargetClock {
        match self {
            Target::Local(t) => TargetClock::Twin(t.clock()),
            Target::Cluster(t) => t.clock(),
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        match self {
            Target::Local(t) => t.capabilities(),
            Target::Cluster(t) => t.capabilities(),
        }
    }

    /// Latencies and rates the model should assume on this target.
    pub fn timing(&self) -> edw_model::TargetTiming {
        // Every target follows the specification's defaults. The twin too, storage included:
        // its governed clock (`twin_governor`) slows simulated time whenever Azurite takes
        // longer than the sample's one-second message cycle allows, so in simulated seconds a
        // consumer pod processes one message per second however fast Azurite is, and Azurite
        // is not the bottleneck the model has to assume.
        edw_model::TargetTiming::default()
    }

    /// The connection string the consumer pods and KEDA use on a cluster that reaches storage
    /// by connection string (kind with Azurite); `None` for workload identity and the twin.
    pub fn connection_for_pods(&self) -> Option<&crate::secrets::Secret> {
        match self {
            Target::Local(_) => None,
            Target::Cluster(t) => t.connection_for_pods(),
        }
    }

    /// The image the consumer Deployment uses on this target.
    pub fn consumer_image(&self, config: &Config) -> String {
        crate::manifests::consumer_image(config)
    }

    /// Stops what the target started (the twin, embedded Azurite).
    pub async fn shutdown(self) {
        match self {
            Target::Local(t) => t.shutdown().await,
            Target::Cluster(_) => {}
        }
    }
}

/// A shared handle, for recorders and steps.
pub type SharedTarget = Arc<Target>;
