//! The walkthrough's values, written once: the ScaledObject's scaling numbers, the names of
//! its objects, and the consumer's label. Everything else (the flow's defaults, the model's
//! defaults, the twin's sample) takes them from here.

/// The walkthrough's ScaledObject (`aws2az-queue-scaleobj`): its spec's numbers.
pub mod scaled_object {
    /// `minReplicaCount`.
    pub const MIN_REPLICAS: i64 = 0;
    /// `maxReplicaCount`.
    pub const MAX_REPLICAS: i64 = 15;
    /// `pollingInterval`, seconds.
    pub const POLLING_INTERVAL: u64 = 30;
    /// `cooldownPeriod`, seconds.
    pub const COOLDOWN_PERIOD: u64 = 10;
    /// The azure-queue trigger's `queueLength`.
    pub const QUEUE_LENGTH: u64 = 5;
    /// The azure-queue trigger's `activationQueueLength`.
    pub const ACTIVATION_QUEUE_LENGTH: u64 = 20;
}

/// The walkthrough's ScaledObject name.
pub const SCALED_OBJECT: &str = "aws2az-queue-scaleobj";
/// The walkthrough's TriggerAuthentication name.
pub const TRIGGER_AUTHENTICATION: &str = "keda-az-credentials";
/// The NodePool AKS Node Autoprovisioning creates, which the walkthrough uses.
pub const NODEPOOL: &str = "default";
/// The walkthrough's consumer pods' label.
pub const CONSUMER_SELECTOR: &str = "app=aqs-reader";
/// The walkthrough's namespace (`AQS_TARGET_NAMESPACE`).
pub const NAMESPACE: &str = "aqs-demo";
/// The walkthrough's consumer Deployment (`AQS_TARGET_DEPLOYMENT`).
pub const DEPLOYMENT: &str = "aqs-app";
/// The walkthrough's service account (`SERVICE_ACCOUNT`), federated with the workload identity.
pub const SERVICE_ACCOUNT: &str = "aqs-app-service-account";
/// The walkthrough's queue (`AZURE_QUEUE_NAME`).
pub const QUEUE: &str = "aws2azmsgs";
/// The walkthrough's table (`AZURE_TABLE_NAME`).
pub const TABLE: &str = "aws2azpmts";

/// The poison queue of `queue`.
pub fn poison_queue_name(queue: &str) -> String {
    format!("{queue}-poison")
}
