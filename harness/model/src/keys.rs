//! The configuration keys: the sample's variable names (environmentVariables.sh and
//! deploy.state), their defaults, the walkthrough's alias, and the suite's own `EDW_*` keys.

use crate::walkthrough;

/// The defaults of the sample's `deployment/environmentVariables.sh`.
pub const SAMPLE_DEFAULTS: &[(&str, &str)] = &[
    ("K8sversion", "1.30"),
    ("NAMESPACE", "keda"),
    ("SERVICE_ACCOUNT", walkthrough::SERVICE_ACCOUNT),
    ("AQS_TARGET_DEPLOYMENT", walkthrough::DEPLOYMENT),
    ("AQS_TARGET_NAMESPACE", walkthrough::NAMESPACE),
    ("AZURE_QUEUE_NAME", walkthrough::QUEUE),
    ("AZURE_TABLE_NAME", walkthrough::TABLE),
    ("LOCAL_NAME", "aksdemo"),
    ("LOCATION", "westus3"),
    ("TAGS", "owner=aksdemo"),
    ("STORAGE_ACCOUNT_SKU", "Standard_LRS"),
    ("ACR_SKU", "Basic"),
    ("AKS_NODE_COUNT", "3"),
];

/// What the sample's deploy.sh writes to deploy.state, in its order.
pub const DEPLOY_STATE_KEYS: &[&str] = &[
    "SUFFIX",
    "RESOURCE_GROUP",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_QUEUE_NAME",
    "AZURE_TABLE_NAME",
    "AZURE_CONTAINER_REGISTRY_NAME",
    "AKS_MANAGED_IDENTITY_NAME",
    "AKS_CLUSTER_NAME",
    "WORKLOAD_MANAGED_IDENTITY_NAME",
    "SERVICE_ACCOUNT",
    "FEDERATED_IDENTITY_CREDENTIAL_NAME",
    "KEDA_SERVICE_ACCT_CRED_NAME",
];

/// Storage access keys shared by the sample's tools, the Azure CLI and this suite.
pub const STORAGE_KEYS: &[&str] = &[
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_KEY",
    "EDW_STORAGE_AUTH",
    "EDW_QUEUE_ENDPOINT",
    "EDW_TABLE_ENDPOINT",
    "EDW_STORAGE_MAX_RETRIES",
    "EDW_AZURITE_QUEUE_ENDPOINT",
    "EDW_AZURITE_TABLE_ENDPOINT",
    "EDW_AZURITE_QUEUE_PARTITIONS",
];

/// Cluster settings the flow reads besides the sample's scripts' variables.
pub const CLUSTER_KEYS: &[&str] = &[
    // The workload identity's client id, for the TriggerAuthentication's identityId (the sample
    // writes only the identity's name to deploy.state; its deploy.sh annotates the service
    // account with the id, which the flow reads when this is not set).
    "WORKLOAD_MANAGED_IDENTITY_CLIENT_ID",
];

/// Settings of the local target (Azurite and the twin in-process).
pub const LOCAL_TARGET_KEYS: &[&str] = &[
    // How much faster than real time the twin's clock runs (default 20; the governor slows it
    // while storage calls lag).
    "EDW_TWIN_SCALE",
];

/// Keys whose values are secrets: never shown in messages, logs or reports.
pub const SECRET_KEYS: &[&str] = &["AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY"];

/// `(alias, canonical)`: the walkthrough lists `AZURE_COSMOSDB_TABLE` where deploy.sh writes
/// `AZURE_TABLE_NAME`; `AZURE_STORAGE_ACCOUNT_KEY` is a common spelling of the key.
pub const ALIASES: &[(&str, &str)] = &[
    ("AZURE_COSMOSDB_TABLE", "AZURE_TABLE_NAME"),
    ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY"),
    ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_ACCOUNT_NAME"),
    // The sample scripts' shell variable for the same value.
    (
        "workloadManagedIdentityClientId",
        "WORKLOAD_MANAGED_IDENTITY_CLIENT_ID",
    ),
];

/// The canonical name of `key` (itself unless it is an alias).
pub fn canonical_key(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, canonical)| canonical)
}

/// Every canonical key the suite reads.
pub fn known_keys() -> impl Iterator<Item = &'static str> {
    SAMPLE_DEFAULTS
        .iter()
        .map(|(k, _)| *k)
        .chain(DEPLOY_STATE_KEYS.iter().copied())
        .chain(STORAGE_KEYS.iter().copied())
        .chain(CLUSTER_KEYS.iter().copied())
        .chain(LOCAL_TARGET_KEYS.iter().copied())
}

/// True for a key the suite reads (after alias mapping).
pub fn is_known_key(key: &str) -> bool {
    let key = canonical_key(key);
    known_keys().any(|k| k == key)
}

/// True for a key whose value is a secret.
pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&canonical_key(key))
}
