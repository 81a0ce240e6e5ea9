//! What a run works with: how it treats the cluster (its footprint), the names of what it
//! creates or uses, the flow's knobs, and a resource group it deployed.

use std::net::IpAddr;
use std::time::Duration;

use crate::naming::{run_queue_name_for, run_table_name_for};
use crate::walkthrough::{
    poison_queue_name, scaled_object, CONSUMER_SELECTOR, NODEPOOL, SCALED_OBJECT,
    TRIGGER_AUTHENTICATION,
};

/// The label (and annotation) every object a run creates carries, with the run's id: cleanup
/// deletes an object only while it still carries this run's id.
pub const RUN_ID_LABEL: &str = "edw-conformance/run-id";

/// The sample's names as a team configured them (`AQS_TARGET_NAMESPACE`,
/// `AQS_TARGET_DEPLOYMENT`, `SERVICE_ACCOUNT`, `AZURE_QUEUE_NAME`, `AZURE_TABLE_NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleNames<'a> {
    pub namespace: &'a str,
    pub deployment: &'a str,
    pub service_account: &'a str,
    pub queue: &'a str,
    pub table: &'a str,
}

/// How a run treats the cluster it runs on: which objects it creates (and may delete) and which
/// it only uses. Whatever the footprint, a run never deletes or changes an object it did not
/// create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Footprint {
    /// Everything in names of its own: a namespace `<AQS_TARGET_NAMESPACE>-<run id>` with its
    /// service account, Deployment, ScaledObject, TriggerAuthentication, a NodePool
    /// `edw-<run id>`, and run-scoped queue and table. The default on the local and kube
    /// targets (storage by connection string).
    OwnNamespace,
    /// The walkthrough's namespace and service account, which must exist (workload identity binds
    /// the consumer to them through a federated credential) and are used without being changed;
    /// the run's own objects get run-unique names. The default where pods reach storage through
    /// workload identity (aks).
    SharedNamespace,
    /// The team's deployed consumer (`--use-deployed`): load and observe only. No Kubernetes
    /// object is created or deleted (except, with an in-cluster load, the load Job, which
    /// carries the run id and is deleted when the load ends); the configured queue and table
    /// are used, not created or deleted; verify counts only this run's messages.
    UseDeployed,
}

impl Footprint {
    pub fn describe(self) -> &'static str {
        match self {
            Footprint::OwnNamespace => "a namespace of its own",
            Footprint::SharedNamespace => {
                "the existing namespace and service account, objects of its own"
            }
            Footprint::UseDeployed => "the deployed consumer (load and observe only)",
        }
    }
}

/// The names of what a run creates (or, with [`Footprint::UseDeployed`], uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunNames {
    /// Six letters and digits, different for every run: the value of the
    /// [`RUN_ID_LABEL`] label and annotation on everything the run creates,
    /// and the suffix of its names.
    pub run_id: String,
    pub namespace: String,
    pub deployment: String,
    pub service_account: String,
    pub queue: String,
    pub poison: String,
    pub table: String,
    pub scaled_object: String,
    pub trigger_authentication: String,
    pub storage_secret: String,
    pub hpa: String,
    pub nodepool: String,
}

impl RunNames {
    /// The names a run with `footprint` works in: the sample's (`sample`, as configured), made
    /// run-unique for whatever the run creates.
    pub fn for_run(sample: &SampleNames<'_>, footprint: Footprint) -> Self {
        let run_id = crate::naming::unique_suffix();
        let own = |base: &str| crate::naming::with_run_id(base, &run_id);
        match footprint {
            Footprint::UseDeployed => RunNames {
                namespace: sample.namespace.to_owned(),
                deployment: sample.deployment.to_owned(),
                service_account: sample.service_account.to_owned(),
                queue: sample.queue.to_owned(),
                poison: poison_queue_name(sample.queue),
                table: sample.table.to_owned(),
                scaled_object: SCALED_OBJECT.to_owned(),
                trigger_authentication: TRIGGER_AUTHENTICATION.to_owned(),
                storage_secret: String::new(),
                hpa: format!("keda-hpa-{SCALED_OBJECT}"),
                nodepool: NODEPOOL.to_owned(),
                run_id,
            },
            Footprint::OwnNamespace | Footprint::SharedNamespace => {
                let queue = run_queue_name_for(sample.queue, &run_id);
                let scaled_object = own(SCALED_OBJECT);
                RunNames {
                    namespace: if footprint == Footprint::OwnNamespace {
                        own(sample.namespace)
                    } else {
                        sample.namespace.to_owned()
                    },
                    deployment: own(sample.deployment),
                    service_account: sample.service_account.to_owned(),
                    poison: poison_queue_name(&queue),
                    table: run_table_name_for(sample.table, &run_id),
                    queue,
                    hpa: format!("keda-hpa-{scaled_object}"),
                    scaled_object,
                    trigger_authentication: own(TRIGGER_AUTHENTICATION),
                    storage_secret: own("edw-storage-connection"),
                    nodepool: own("edw"),
                    run_id,
                }
            }
        }
    }

    /// The label selector of the run's consumer pods (for [`Footprint::UseDeployed`], the
    /// deployed consumer's: `app=aqs-reader`).
    pub fn pod_selector(&self, footprint: Footprint) -> String {
        match footprint {
            Footprint::UseDeployed => CONSUMER_SELECTOR.to_owned(),
            _ => format!("{CONSUMER_SELECTOR},{}={}", RUN_ID_LABEL, self.run_id),
        }
    }
}

/// A resource group a run deployed, and where its Azure Resource Manager is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedGroup {
    pub subscription: String,
    pub resource_group: String,
    /// `https://management.azure.com` (a mock in tests).
    pub arm_url: String,
}

/// The flow's knobs; the defaults are the walkthrough's.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSettings {
    /// Messages in the load burst.
    pub messages: u64,
    pub producer_concurrency: usize,
    pub min_replicas: i64,
    pub max_replicas: i64,
    pub polling_interval: u64,
    pub cooldown_period: u64,
    pub queue_length: u64,
    pub activation_queue_length: u64,
    /// The drain time the team expects for the burst (a conformance target), if any.
    pub drain_target: Option<Duration>,
    /// Send the load from inside the cluster (an Indexed Job running the producer) instead of
    /// from this machine.
    pub in_cluster_load: Option<InClusterLoad>,
}

/// An in-cluster load: `parallelism` pods of an Indexed Job, each sending its slice.
#[derive(Debug, Clone, PartialEq)]
pub struct InClusterLoad {
    pub parallelism: u64,
    /// Messages per second across all pods; `None`: each pod as fast as it goes.
    pub rate: Option<f64>,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            messages: 1000,
            producer_concurrency: 16,
            min_replicas: scaled_object::MIN_REPLICAS,
            max_replicas: scaled_object::MAX_REPLICAS,
            polling_interval: scaled_object::POLLING_INTERVAL,
            cooldown_period: scaled_object::COOLDOWN_PERIOD,
            queue_length: scaled_object::QUEUE_LENGTH,
            activation_queue_length: scaled_object::ACTIVATION_QUEUE_LENGTH,
            drain_target: None,
            in_cluster_load: None,
        }
    }
}

/// The IP rule a run added, as its ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallOpening {
    /// The Resource Manager the rule was added through.
    pub arm_url: String,
    /// The storage account's ARM id.
    pub account_id: String,
    /// The address the rule allows (its value, exactly).
    pub address: IpAddr,
}

impl FirewallOpening {
    /// `arm url|account id|address`, the ledger's `EDW_RUN_STORAGE_FIREWALL_RULE` value.
    pub fn ledger_value(&self) -> String {
        format!("{}|{}|{}", self.arm_url, self.account_id, self.address)
    }

    /// From [`FirewallOpening::ledger_value`].
    pub fn from_ledger_value(value: &str) -> Result<FirewallOpening, String> {
        let parts: Vec<&str> = value.split('|').collect();
        let [arm_url, account_id, address] = parts[..] else {
            return Err(format!(
                "{value:?} is not ARM URL|storage account id|address"
            ));
        };
        let address = address
            .parse()
            .map_err(|_| format!("{address:?} in {value:?} is not an IP address"))?;
        if !account_id.starts_with("/subscriptions/") {
            return Err(format!(
                "{account_id:?} in {value:?} is not a storage account id"
            ));
        }
        Ok(FirewallOpening {
            arm_url: arm_url.to_owned(),
            account_id: account_id.to_owned(),
            address,
        })
    }

    /// The storage account's name (the last segment of its id).
    pub fn account_name(&self) -> &str {
        self.account_id.rsplit('/').next().unwrap_or_default()
    }
}
