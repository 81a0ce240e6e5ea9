//! The deployment checks of `edw doctor` (aks only): what only the team can fix, read through
//! Azure Resource Manager before anything is deployed: the storage account's firewall against
//! this machine's public address, the signed-in principal's storage data roles, and the
//! cluster's Kubernetes version against its region (see [`edw_engine::arm::preflight`]).

use std::time::Duration;

use super::Finding;
use crate::args::{DoctorArgs, GlobalArgs, StorageFirewallMode};
use crate::session;
use edw_engine::arm::preflight::{self, names, AzureSide, PreflightCheck, PreflightOutcome};
use edw_engine::target::TargetKind;

/// The three checks together (the echo service and several ARM reads).
const CHECKS_WITHIN: Duration = Duration::from_secs(90);

const ALL: [&str; 3] = [
    names::STORAGE_FIREWALL,
    names::DATA_ROLES,
    names::KUBERNETES_VERSION,
];

fn all_skipped(reason: &str) -> Vec<Finding> {
    ALL.iter().map(|name| Finding::skip(name, reason)).collect()
}

impl From<PreflightCheck> for Finding {
    fn from(check: PreflightCheck) -> Finding {
        match check.outcome {
            PreflightOutcome::Passed { found } => Finding::ok(check.name, found),
            PreflightOutcome::Failed { problem, fix } => Finding::fail(check.name, problem, fix),
            PreflightOutcome::Skipped { reason } => Finding::skip(check.name, reason),
        }
    }
}

/// Storage firewall, data roles and Kubernetes version (aks only).
pub(super) async fn deployment_findings(
    target: TargetKind,
    global: &GlobalArgs,
    args: &DoctorArgs,
) -> Vec<Finding> {
    if target != TargetKind::Aks {
        return all_skipped(&format!(
            "only the aks target has a storage account firewall, data roles and an AKS cluster to check (target {})",
            target.name()
        ));
    }
    let config = match session::load_config(global) {
        Ok(config) => config,
        Err(_) => return all_skipped("the configuration is not usable (see `storage`)"),
    };
    let client = match crate::commands::azure::client(&args.azure) {
        Ok(client) => client,
        Err(_) => return all_skipped("needs a token for Azure Resource Manager (see `ARM token`)"),
    };
    let side = AzureSide::from_config(
        &config,
        args.azure.subscription.clone(),
        None,
        args.storage_firewall == StorageFirewallMode::OpenForRun,
    );
    match tokio::time::timeout(CHECKS_WITHIN, preflight::check(&client, &side)).await {
        Ok(checks) => checks.into_iter().map(Finding::from).collect(),
        Err(_) => all_skipped(&format!(
            "Azure Resource Manager (or the address echo service) did not answer within {CHECKS_WITHIN:?}"
        )),
    }
}
