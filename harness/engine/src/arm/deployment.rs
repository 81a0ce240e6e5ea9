//! [`Deployment`]: the names deploy.sh wrote to deploy.state (plus the subscription and the
//! namespace), and the ARM resource ids they make.

use crate::config::Config;

/// A deployment's configuration is incomplete or unusable in an ARM path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeploymentError {
    #[error("the deployment's configuration is incomplete: {} not set (deploy.state, or the environment for AZURE_SUBSCRIPTION_ID)", .keys.join(", "))]
    Missing { keys: Vec<String> },
    #[error("{key}={value:?} cannot be used in an Azure resource id: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

/// What the sample's deploy.sh created, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub subscription_id: String,
    pub suffix: String,
    pub resource_group: String,
    pub storage_account: String,
    pub queue: String,
    pub table: String,
    pub container_registry: String,
    pub aks_managed_identity: String,
    pub aks_cluster: String,
    pub workload_identity: String,
    pub service_account: String,
    pub federated_credential: String,
    pub keda_credential: String,
    /// `AQS_TARGET_NAMESPACE`, default `aqs-demo`.
    pub namespace: String,
}

/// The keys a [`Deployment`] is read from, in deploy.state's order.
pub const KEYS: &[&str] = edw_model::keys::DEPLOY_STATE_KEYS;

impl Deployment {
    /// From a loaded [`Config`]; `AZURE_SUBSCRIPTION_ID` is taken from the configuration if
    /// it has it, else from `env` (the configuration does not carry that key). Every missing
    /// key is named.
    pub fn from_config(config: &Config, env: &[(String, String)]) -> Result<Self, DeploymentError> {
        Self::from_lookup(|key| {
            config.get(key).map(str::to_owned).or_else(|| {
                (key == "AZURE_SUBSCRIPTION_ID")
                    .then(|| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
                    .flatten()
            })
        })
    }

    /// From any key lookup (empty values count as missing).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, DeploymentError> {
        let value = |key: &str| {
            get(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut missing = Vec::new();
        let mut take = |key: &str| {
            value(key).unwrap_or_else(|| {
                missing.push(key.to_owned());
                String::new()
            })
        };
        let subscription_id = take("AZURE_SUBSCRIPTION_ID");
        let values: Vec<String> = KEYS.iter().map(|k| take(k)).collect();
        if !missing.is_empty() {
            return Err(DeploymentError::Missing { keys: missing });
        }
        let namespace = value("AQS_TARGET_NAMESPACE").unwrap_or_else(|| "aqs-demo".to_owned());
        for (key, v) in std::iter::once(("AZURE_SUBSCRIPTION_ID", &subscription_id))
            .chain(KEYS.iter().copied().zip(values.iter()))
            .chain(std::iter::once(("AQS_TARGET_NAMESPACE", &namespace)))
        {
            if let Some(reason) = unsafe_segment(v) {
                return Err(DeploymentError::Invalid {
                    key: key.to_owned(),
                    value: v.clone(),
                    reason: reason.to_owned(),
                });
            }
        }
        let mut it = values.into_iter();
        let mut next = || it.next().unwrap_or_default();
        Ok(Deployment {
            subscription_id,
            suffix: next(),
            resource_group: next(),
            storage_account: next(),
            queue: next(),
            table: next(),
            container_registry: next(),
            aks_managed_identity: next(),
            aks_cluster: next(),
            workload_identity: next(),
            service_account: next(),
            federated_credential: next(),
            keda_credential: next(),
            namespace,
        })
    }

    /// `/subscriptions/{id}`.
    pub fn subscription_scope(&self) -> String {
        format!("/subscriptions/{}", self.subscription_id)
    }

    /// `/subscriptions/{id}/resourceGroups/{rg}`.
    pub fn resource_group_id(&self) -> String {
        format!(
            "{}/resourceGroups/{}",
            self.subscription_scope(),
            self.resource_group
        )
    }

    fn in_group(&self, provider_type: &str, name: &str) -> String {
        format!(
            "{}/providers/{provider_type}/{name}",
            self.resource_group_id()
        )
    }

    pub fn storage_account_id(&self) -> String {
        self.in_group("Microsoft.Storage/storageAccounts", &self.storage_account)
    }

    pub fn queue_id(&self) -> String {
        format!(
            "{}/queueServices/default/queues/{}",
            self.storage_account_id(),
            self.queue
        )
    }

    pub fn table_id(&self) -> String {
        format!(
            "{}/tableServices/default/tables/{}",
            self.storage_account_id(),
            self.table
        )
    }

    pub fn registry_id(&self) -> String {
        self.in_group(
            "Microsoft.ContainerRegistry/registries",
            &self.container_registry,
        )
    }

    pub fn cluster_id(&self) -> String {
        self.in_group(
            "Microsoft.ContainerService/managedClusters",
            &self.aks_cluster,
        )
    }

    pub fn aks_identity_id(&self) -> String {
        self.in_group(
            "Microsoft.ManagedIdentity/userAssignedIdentities",
            &self.aks_managed_identity,
        )
    }

    pub fn workload_identity_id(&self) -> String {
        self.in_group(
            "Microsoft.ManagedIdentity/userAssignedIdentities",
            &self.workload_identity,
        )
    }

    pub fn federated_credential_id(&self, name: &str) -> String {
        format!(
            "{}/federatedIdentityCredentials/{name}",
            self.workload_identity_id()
        )
    }

    /// The NodeAutoProvisioningPreview feature's id.
    pub fn nap_feature_id(&self) -> String {
        format!(
            "{}/providers/Microsoft.Features/providers/{}/features/{}",
            self.subscription_scope(),
            super::api::NAP_FEATURE_NAMESPACE,
            super::api::NAP_FEATURE_NAME
        )
    }

    /// `system:serviceaccount:<namespace>:<service account>`.
    pub fn app_subject(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }
}

/// Why `value` cannot be one segment of a resource id, if it cannot.
pub(crate) fn unsafe_segment(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("it is empty")
    } else if value == "." || value == ".." {
        Some("it is a relative path segment")
    } else if value
        .chars()
        .any(|c| matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_control() || c.is_whitespace())
    {
        Some("it contains '/', '\\', '?', '#', '%', a space or a control character")
    } else {
        None
    }
}
