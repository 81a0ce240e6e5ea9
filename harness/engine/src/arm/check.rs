//! One Azure-side [`Check`] and its [`CheckOutcome`], and the names of the checks
//! [`super::validate`] runs ([`names`]).

use edw_model::report::StepStatus;

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CheckOutcome {
    /// What was found, for the report.
    Passed { found: String },
    /// Names the resource and the field that is wrong.
    Failed { message: String },
    /// Why the check could not be made.
    Skipped { reason: String },
}

/// One Azure-side check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub name: String,
    pub outcome: CheckOutcome,
}

impl Check {
    pub fn passed(name: &str, found: impl Into<String>) -> Check {
        Check {
            name: name.to_owned(),
            outcome: CheckOutcome::Passed {
                found: found.into(),
            },
        }
    }

    pub fn failed(name: &str, message: impl Into<String>) -> Check {
        Check {
            name: name.to_owned(),
            outcome: CheckOutcome::Failed {
                message: crate::secrets::redact(&message.into()),
            },
        }
    }

    pub fn skipped(name: &str, reason: impl Into<String>) -> Check {
        Check {
            name: name.to_owned(),
            outcome: CheckOutcome::Skipped {
                reason: crate::secrets::redact(&reason.into()),
            },
        }
    }

    pub fn is_passed(&self) -> bool {
        matches!(self.outcome, CheckOutcome::Passed { .. })
    }

    pub fn is_failed(&self) -> bool {
        matches!(self.outcome, CheckOutcome::Failed { .. })
    }

    /// The failure message, if the check failed.
    pub fn message(&self) -> Option<&str> {
        match &self.outcome {
            CheckOutcome::Failed { message } => Some(message),
            _ => None,
        }
    }
}

impl From<&CheckOutcome> for StepStatus {
    fn from(outcome: &CheckOutcome) -> StepStatus {
        match outcome {
            CheckOutcome::Passed { .. } => StepStatus::Passed,
            CheckOutcome::Failed { message } => StepStatus::Failed {
                message: message.clone(),
            },
            CheckOutcome::Skipped { reason } => StepStatus::Skipped {
                reason: reason.clone(),
            },
        }
    }
}

/// The names of the checks, in the order [`super::validate`] returns them.
pub mod names {
    pub const RESOURCE_GROUP: &str = "resource group exists";
    pub const STORAGE_ACCOUNT: &str = "storage account exists";
    pub const QUEUE: &str = "storage queue exists";
    pub const TABLE: &str = "storage table exists";
    pub const REGISTRY: &str = "container registry exists";
    pub const AKS_IDENTITY: &str = "AKS managed identity exists";
    pub const CLUSTER: &str = "AKS cluster exists";
    pub const NODE_PROVISIONING: &str = "AKS node provisioning mode Auto";
    pub const KEDA: &str = "AKS KEDA add-on enabled";
    pub const WORKLOAD_IDENTITY_ENABLED: &str = "AKS workload identity enabled";
    pub const OIDC_ISSUER: &str = "AKS OIDC issuer enabled";
    pub const REGISTRY_ATTACHED: &str = "AKS registry attached (AcrPull)";
    pub const SYSTEM_POOL_TAINT: &str =
        "AKS system pool tainted CriticalAddonsOnly=true:NoSchedule";
    pub const WORKLOAD_IDENTITY: &str = "workload identity exists";
    pub const QUEUE_ROLE: &str = "workload identity has Storage Queue Data Contributor";
    pub const TABLE_ROLE: &str = "workload identity has Storage Table Data Contributor";
    pub const APP_FEDERATED_CREDENTIAL: &str = "federated credential for the app service account";
    pub const KEDA_FEDERATED_CREDENTIAL: &str = "federated credential for keda-operator";
    pub const NAP_FEATURE: &str = "NodeAutoProvisioningPreview feature registered";

    /// Every check, in order.
    pub const ALL: &[&str] = &[
        RESOURCE_GROUP,
        STORAGE_ACCOUNT,
        QUEUE,
        TABLE,
        REGISTRY,
        AKS_IDENTITY,
        CLUSTER,
        NODE_PROVISIONING,
        KEDA,
        WORKLOAD_IDENTITY_ENABLED,
        OIDC_ISSUER,
        REGISTRY_ATTACHED,
        SYSTEM_POOL_TAINT,
        WORKLOAD_IDENTITY,
        QUEUE_ROLE,
        TABLE_ROLE,
        APP_FEDERATED_CREDENTIAL,
        KEDA_FEDERATED_CREDENTIAL,
        NAP_FEATURE,
    ];
}
