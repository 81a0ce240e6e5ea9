//! The Azure-side prerequisites only the team can fix, checked before anything is deployed (by
//! `edw doctor --target aks` and before an aks run starts): the storage account's firewall
//! admits this machine, the principal the harness signs in as has the storage data roles, and
//! the cluster's Kubernetes version is supported in its region. Each [`PreflightCheck`] passes
//! with what it found, fails with the exact fix, or is skipped with the reason it could not be
//! made (never passed).

use serde_json::Value;

use super::api;
use super::client::ArmClient;
use super::deployment::unsafe_segment;
use super::error::ArmError;
use super::kubernetes_version::{
    minor_of, region_versions, standard_minors, support_of, VersionSupport,
};
use super::principal::SignedInPrincipal;
use super::storage_firewall::{ip_rule_contains, ip_rule_refusal, NetworkRules, StorageFirewall};
use super::validate::{role_guid, str_at};
use crate::public_address::RunnerAddress;
use crate::storage::StorageAuth;

/// The names of the checks, as `edw doctor` prints them.
pub mod names {
    pub const STORAGE_FIREWALL: &str = "storage firewall";
    pub const DATA_ROLES: &str = "storage data roles";
    pub const KUBERNETES_VERSION: &str = "Kubernetes version";
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreflightOutcome {
    /// What was found.
    Passed { found: String },
    /// What is wrong, and the exact fix.
    Failed { problem: String, fix: String },
    /// Why the check could not be made.
    Skipped { reason: String },
}

/// One check and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightCheck {
    pub name: &'static str,
    pub outcome: PreflightOutcome,
}

impl PreflightCheck {
    fn passed(name: &'static str, found: impl Into<String>) -> Self {
        PreflightCheck {
            name,
            outcome: PreflightOutcome::Passed {
                found: found.into(),
            },
        }
    }

    fn failed(name: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        PreflightCheck {
            name,
            outcome: PreflightOutcome::Failed {
                problem: problem.into(),
                fix: fix.into(),
            },
        }
    }

    fn skipped(name: &'static str, reason: impl Into<String>) -> Self {
        PreflightCheck {
            name,
            outcome: PreflightOutcome::Skipped {
                reason: reason.into(),
            },
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self.outcome, PreflightOutcome::Failed { .. })
    }

    /// `ok   name: found`, `FAIL name: problem — fix: fix`, `skip name: reason`, redacted.
    pub fn line(&self) -> String {
        let text = match &self.outcome {
            PreflightOutcome::Passed { found } => format!("ok   {}: {found}", self.name),
            PreflightOutcome::Failed { problem, fix } => {
                format!("FAIL {}: {problem} — fix: {fix}", self.name)
            }
            PreflightOutcome::Skipped { reason } => format!("skip {}: {reason}", self.name),
        };
        crate::secrets::redact(&text)
    }
}

/// How the harness reaches storage, as far as the Azure side cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageAccess {
    /// Azurite: no account, no firewall, no roles.
    Azurite,
    /// An account key or a connection string (named): no data roles needed.
    SharedKey(&'static str),
    /// An Entra ID token: the data roles decide.
    EntraId,
}

impl From<&StorageAuth> for StorageAccess {
    fn from(auth: &StorageAuth) -> Self {
        match auth {
            StorageAuth::DevelopmentAccount => StorageAccess::Azurite,
            StorageAuth::ConnectionString(_) => StorageAccess::SharedKey("a connection string"),
            StorageAuth::AccountKey(_) => StorageAccess::SharedKey("an account key"),
            // Every other way signs in with a token.
            #[allow(unreachable_patterns)]
            _ => StorageAccess::EntraId,
        }
    }
}

/// What the checks look at: the deployment's names (deploy.state) and this machine.
#[derive(Debug, Clone)]
pub struct AzureSide {
    pub subscription: Option<String>,
    pub resource_group: Option<String>,
    pub storage_account: Option<String>,
    pub cluster: Option<String>,
    pub storage_access: StorageAccess,
    /// This machine's public address, or why it is unknown; `None`: found (`EDW_RUNNER_IP`,
    /// else the echo service) only when a firewall that denies by default needs it.
    pub runner: Option<Result<RunnerAddress, String>>,
    /// The run adds the address to the firewall for its duration (`--storage-firewall
    /// open-for-run`).
    pub firewall_opens_for_run: bool,
}

impl AzureSide {
    /// The deployment's names from `config` (deploy.state's RESOURCE_GROUP, AKS_CLUSTER_NAME,
    /// the storage account and how it is reached).
    pub fn from_config(
        config: &crate::config::Config,
        subscription: Option<String>,
        runner: Option<Result<RunnerAddress, String>>,
        firewall_opens_for_run: bool,
    ) -> AzureSide {
        let non_empty = |v: Option<&str>| v.filter(|v| !v.trim().is_empty()).map(str::to_owned);
        let (storage_access, account) = match config.storage() {
            Ok(crate::config::StorageChoice::Target(target)) => (
                StorageAccess::from(&target.auth),
                non_empty(Some(target.account.as_str())),
            ),
            Ok(crate::config::StorageChoice::EmbeddedAzurite) | Err(_) => {
                (StorageAccess::Azurite, None)
            }
        };
        AzureSide {
            subscription: subscription.filter(|s| !s.trim().is_empty()),
            resource_group: non_empty(config.get("RESOURCE_GROUP")),
            storage_account: account
                .or_else(|| non_empty(config.get("AZURE_STORAGE_ACCOUNT_NAME"))),
            cluster: non_empty(config.get("AKS_CLUSTER_NAME")),
            storage_access,
            runner,
            firewall_opens_for_run,
        }
    }

    /// `/subscriptions/{s}/resourceGroups/{rg}`, or which settings are missing.
    fn group_id(&self, what: &str, name: Option<&String>, key: &str) -> Result<String, String> {
        let mut missing = Vec::new();
        for (value, key) in [
            (
                &self.subscription,
                "AZURE_SUBSCRIPTION_ID (or --subscription)",
            ),
            (&self.resource_group, "RESOURCE_GROUP (deploy.state)"),
            (&name.cloned(), key),
        ] {
            match value.as_deref() {
                None | Some("") => missing.push(key),
                Some(v) => {
                    if let Some(reason) = unsafe_segment(v) {
                        return Err(format!(
                            "{key} {v:?} cannot be used in a resource id: {reason}"
                        ));
                    }
                }
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "the {what} is not known: {} not set",
                missing.join(", ")
            ));
        }
        Ok(format!(
            "/subscriptions/{}/resourceGroups/{}",
            self.subscription.as_deref().unwrap_or_default(),
            self.resource_group.as_deref().unwrap_or_default()
        ))
    }

    /// The storage account's ARM id, or which settings are missing.
    pub fn storage_account_id(&self) -> Result<String, String> {
        let group = self.group_id(
            "storage account",
            self.storage_account.as_ref(),
            "AZURE_STORAGE_ACCOUNT_NAME",
        )?;
        Ok(format!(
            "{group}/providers/Microsoft.Storage/storageAccounts/{}",
            self.storage_account.as_deref().unwrap_or_default()
        ))
    }

    /// The managed cluster's ARM id, or which settings are missing.
    pub fn cluster_id(&self) -> Result<String, String> {
        let group = self.group_id(
            "AKS cluster",
            self.cluster.as_ref(),
            "AKS_CLUSTER_NAME (deploy.state)",
        )?;
        Ok(format!(
            "{group}/providers/Microsoft.ContainerService/managedClusters/{}",
            self.cluster.as_deref().unwrap_or_default()
        ))
    }

    fn resource_group(&self) -> &str {
        self.resource_group.as_deref().unwrap_or_default()
    }

    fn account(&self) -> &str {
        self.storage_account.as_deref().unwrap_or_default()
    }
}

/// The three checks, in the order of [`names`].
pub async fn check(client: &ArmClient, side: &AzureSide) -> Vec<PreflightCheck> {
    let (firewall, roles, version) = tokio::join!(
        storage_firewall(client, side),
        data_roles(client, side),
        kubernetes_version(client, side),
    );
    vec![firewall, roles, version]
}

/// A read that failed: a missing resource is a failure with its fix, anything else means the
/// check could not be made.
fn unreadable(name: &'static str, what: &str, error: &ArmError, fix: &str) -> PreflightCheck {
    if error.is_not_found() {
        PreflightCheck::failed(name, format!("{what} does not exist: {error}"), fix)
    } else {
        PreflightCheck::skipped(name, format!("{what} could not be read: {error}"))
    }
}

const NAMES_FIX: &str =
    "check RESOURCE_GROUP, AZURE_STORAGE_ACCOUNT_NAME and AKS_CLUSTER_NAME (deploy.state, `edw config`) and the subscription";

/// Whether the storage account's firewall admits this machine.
pub async fn storage_firewall(client: &ArmClient, side: &AzureSide) -> PreflightCheck {
    let name = names::STORAGE_FIREWALL;
    if side.storage_access == StorageAccess::Azurite {
        return PreflightCheck::skipped(name, "storage is Azurite: no storage account firewall");
    }
    let account_id = match side.storage_account_id() {
        Ok(id) => id,
        Err(why) => return PreflightCheck::skipped(name, why),
    };
    let firewall = StorageFirewall::new(client, &account_id);
    let rules = match firewall.read().await {
        Ok((_, rules)) => rules,
        Err(e) => {
            return unreadable(
                name,
                &format!("storage account {}", side.account()),
                &e,
                NAMES_FIX,
            )
        }
    };
    let runner = match &side.runner {
        Some(known) => known.clone(),
        None if rules.denies_by_default => crate::public_address::discover().await,
        None => Err("not needed".to_owned()),
    };
    firewall_verdict(side, &rules, &runner)
}

/// The firewall check's verdict for `rules` and this machine's address `runner`.
pub fn firewall_verdict(
    side: &AzureSide,
    rules: &NetworkRules,
    runner: &Result<RunnerAddress, String>,
) -> PreflightCheck {
    let name = names::STORAGE_FIREWALL;
    let (rg, account) = (side.resource_group(), side.account());
    let inside = "or produce and verify from inside the cluster (its subnet is allowed; `edw run --use-deployed` loads through the team's own consumer)";
    if let Some(access) = &rules.public_network_access {
        if !access.eq_ignore_ascii_case("Enabled") {
            return PreflightCheck::failed(
                name,
                format!("storage account {account} has publicNetworkAccess {access}: no public address reaches it, whatever its network rules"),
                format!("the team's choice: `az storage account update --resource-group {rg} --name {account} --public-network-access Enabled` (then allow this machine's address), {inside}"),
            );
        }
    }
    if !rules.denies_by_default {
        return PreflightCheck::passed(
            name,
            format!("storage account {account}: networkAcls.defaultAction Allow (every network)"),
        );
    }
    let runner = match runner {
        Ok(runner) => runner,
        Err(why) => {
            return PreflightCheck::skipped(
                name,
                format!("storage account {account} denies by default (networkAcls.defaultAction Deny, {} IP rule(s)), and this machine's public address is unknown: {why}", rules.ip_rules.len()),
            )
        }
    };
    let (address, source) = (runner.address, &runner.source);
    let listed = if rules.ip_rules.is_empty() {
        "none".to_owned()
    } else {
        rules.ip_rules.join(", ")
    };
    if let Some(rule) = rules
        .ip_rules
        .iter()
        .find(|rule| ip_rule_contains(rule, address))
    {
        return PreflightCheck::passed(
            name,
            format!("storage account {account} denies by default, and this machine's address {address} (from {source}) is allowed by its IP rule {rule}"),
        );
    }
    let denied = format!(
        "storage account {account} denies by default (networkAcls.defaultAction Deny) and this machine's address {address} (from {source}) is in none of its IP rules ({listed}); its {} virtual network rule(s) admit only their subnets: the producer and verify would be refused (403 AuthorizationFailure)",
        rules.virtual_network_rules
    );
    if let Some(refusal) = ip_rule_refusal(address) {
        return PreflightCheck::failed(
            name,
            format!("{denied}; {address} cannot be added as an IP rule: {refusal}"),
            format!("set EDW_RUNNER_IP to this machine's public IPv4 address, {inside}"),
        );
    }
    if side.firewall_opens_for_run {
        return PreflightCheck::passed(
            name,
            format!("storage account {account} denies by default and {address} (from {source}) is in none of its IP rules ({listed}): the run adds it for its duration and removes it however it ends (--storage-firewall open-for-run)"),
        );
    }
    PreflightCheck::failed(
        name,
        denied,
        format!(
            "the team's choice: allow this machine's address (`az storage account network-rule add --resource-group {rg} --account-name {account} --ip-address {address}`, and `az storage account network-rule remove` with the same arguments afterwards); or let `edw run` add it for the run and remove it however the run ends (`--storage-firewall open-for-run`, or EDW_STORAGE_FIREWALL=open-for-run); {inside}. IP rules do not apply to clients in the account's own Azure region: there only a virtual network rule helps"
        ),
    )
}

/// Whether the signed-in principal has both storage data roles on the account (directly, on
/// its resource group or subscription, or through a group).
pub async fn data_roles(client: &ArmClient, side: &AzureSide) -> PreflightCheck {
    let name = names::DATA_ROLES;
    match side.storage_access {
        StorageAccess::Azurite => {
            return PreflightCheck::skipped(name, "storage is Azurite: no data roles")
        }
        StorageAccess::SharedKey(how) => {
            return PreflightCheck::skipped(
                name,
                format!("storage is reached with {how}: data roles are not needed (they are for Entra ID sign-ins)"),
            )
        }
        StorageAccess::EntraId => {}
    }
    let account_id = match side.storage_account_id() {
        Ok(id) => id,
        Err(why) => return PreflightCheck::skipped(name, why),
    };
    let listing_fix = format!(
        "see them yourself: `az role assignment list --scope {account_id} --include-inherited --include-groups --assignee <your object id>`"
    );
    let principal = match client.bearer_token().await {
        Ok(token) => match SignedInPrincipal::from_token(&token) {
            Ok(principal) => principal,
            Err(why) => {
                return PreflightCheck::skipped(
                    name,
                    format!("the signed-in principal is unknown ({why}); {listing_fix}"),
                )
            }
        },
        Err(e) => {
            return PreflightCheck::skipped(name, format!("no Azure Resource Manager token: {e}"))
        }
    };
    let filter = format!("atScope() and assignedTo('{}')", principal.object_id);
    let collection = format!("{account_id}/providers/Microsoft.Authorization/roleAssignments");
    let assignments = match client
        .list(&collection, api::ROLE_ASSIGNMENTS, &[("$filter", &filter)])
        .await
    {
        Ok(list) => list,
        Err(e) => {
            return unreadable(
                name,
                &format!("the role assignments on storage account {}", side.account()),
                &e,
                NAMES_FIX,
            )
        }
    };
    let who = format!("{} {}", principal.kind.as_str(), principal.object_id);
    let mut held = Vec::new();
    let mut missing = Vec::new();
    let mut fixes = Vec::new();
    for (role, role_name) in api::STORAGE_DATA_ROLES {
        let found = assignments.iter().find(|a| {
            role_guid(a).is_some_and(|g| g.eq_ignore_ascii_case(role))
                && str_at(a, "properties.scope").is_some_and(|s| covers(s, &account_id))
        });
        match found.and_then(|a| str_at(a, "properties.scope")) {
            Some(scope) => held.push(format!("{role_name} (on {scope})")),
            None => {
                missing.push(*role_name);
                fixes.push(format!(
                    "`az role assignment create --assignee-object-id {} --assignee-principal-type {} --role \"{role_name}\" --scope {account_id}`",
                    principal.object_id,
                    principal.kind.as_str()
                ));
            }
        }
    }
    if missing.is_empty() {
        return PreflightCheck::passed(
            name,
            format!("the signed-in {who} has {}", held.join(" and ")),
        );
    }
    PreflightCheck::failed(
        name,
        format!(
            "the signed-in {who} has no {} on storage account {} (nor on its resource group or subscription, directly or through a group): the harness's queue and table calls would be refused (403 AuthorizationPermissionMismatch); the sample's deploy.sh grants these roles to the workload identity only",
            missing.join(" and "),
            side.account()
        ),
        format!(
            "{} (an Owner or User Access Administrator runs it; assignments take a few minutes to apply)",
            fixes.join(" and ")
        ),
    )
}

/// True when an assignment on `scope` applies to `resource`: the same scope, an ancestor
/// (resource group, subscription) or a management group.
fn covers(scope: &str, resource: &str) -> bool {
    let scope = scope.trim_end_matches('/').to_ascii_lowercase();
    let resource = resource.trim_end_matches('/').to_ascii_lowercase();
    scope == resource
        || scope == "/"
        || resource.starts_with(&format!("{scope}/"))
        || scope.starts_with("/providers/microsoft.management/managementgroups/")
}

/// Whether the cluster's Kubernetes version is supported in its region.
pub async fn kubernetes_version(client: &ArmClient, side: &AzureSide) -> PreflightCheck {
    let name = names::KUBERNETES_VERSION;
    let cluster_id = match side.cluster_id() {
        Ok(id) => id,
        Err(why) => return PreflightCheck::skipped(name, why),
    };
    let cluster_name = side.cluster.as_deref().unwrap_or_default();
    let cluster = match client.get(&cluster_id, api::MANAGED_CLUSTERS).await {
        Ok(body) => body,
        Err(e) => {
            return unreadable(
                name,
                &format!("managed cluster {cluster_name}"),
                &e,
                NAMES_FIX,
            )
        }
    };
    let version = str_at(&cluster, "properties.currentKubernetesVersion")
        .or_else(|| str_at(&cluster, "properties.kubernetesVersion"));
    let (Some(version), Some(location)) =
        (version, cluster.get("location").and_then(Value::as_str))
    else {
        return PreflightCheck::skipped(
            name,
            format!("managed cluster {cluster_id} has no properties.currentKubernetesVersion or no location"),
        );
    };
    let Some(minor) = minor_of(version) else {
        return PreflightCheck::skipped(
            name,
            format!("managed cluster {cluster_name}: {version:?} is not a Kubernetes version"),
        );
    };
    let list = format!(
        "/subscriptions/{}/providers/Microsoft.ContainerService/locations/{location}/kubernetesVersions",
        side.subscription.as_deref().unwrap_or_default()
    );
    let versions = match client.get(&list, api::KUBERNETES_VERSIONS).await {
        Ok(body) => match region_versions(&body) {
            Ok(v) => v,
            Err(why) => return PreflightCheck::skipped(name, format!("{list}: {why}")),
        },
        Err(e) => {
            return PreflightCheck::skipped(
                name,
                format!("the versions AKS supports in {location} could not be read: {e}"),
            )
        }
    };
    let standard = standard_minors(&versions);
    let supported = if standard.is_empty() {
        "none".to_owned()
    } else {
        standard.join(", ")
    };
    let rg = side.resource_group();
    let plan = str_at(&cluster, "properties.supportPlan");
    let upgrade = format!(
        "upgrade the cluster: `az aks get-upgrades --resource-group {rg} --name {cluster_name} --output table` lists the versions it can go to, then `az aks upgrade --resource-group {rg} --name {cluster_name} --kubernetes-version <version>`{} (`az aks get-versions --location {location} --output table` lists what the region supports)",
        standard
            .first()
            .map(|v| format!(" (the oldest with standard support in {location}: {v})"))
            .unwrap_or_default()
    );
    match support_of(&minor, plan, &versions) {
        VersionSupport::Standard { preview } => PreflightCheck::passed(
            name,
            format!(
                "managed cluster {cluster_name} runs {version}{}, supported in {location} (standard support: {supported})",
                if preview { " (a preview version)" } else { "" }
            ),
        ),
        VersionSupport::LongTermSupport => PreflightCheck::passed(
            name,
            format!("managed cluster {cluster_name} runs {version} on long-term support (AKSLongTermSupport) in {location}"),
        ),
        VersionSupport::LongTermOnly => PreflightCheck::failed(
            name,
            format!(
                "managed cluster {cluster_name} runs {version}: {minor} has only long-term support in {location} and the cluster's supportPlan is {} (standard support: {supported})",
                plan.unwrap_or("KubernetesOfficial")
            ),
            format!("{upgrade}; or move it to long-term support: `az aks update --resource-group {rg} --name {cluster_name} --tier premium --k8s-support-plan AKSLongTermSupport`"),
        ),
        VersionSupport::Unsupported => PreflightCheck::failed(
            name,
            format!("managed cluster {cluster_name} runs {version}, and AKS in {location} no longer supports {minor} (standard support: {supported})"),
            upgrade,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_on_the_account_or_above_cover_it() {
        let account =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acc";
        assert!(covers(account, account));
        assert!(covers("/subscriptions/s/resourceGroups/RG/", account));
        assert!(covers("/subscriptions/s", account));
        assert!(covers(
            "/providers/Microsoft.Management/managementGroups/team",
            account
        ));
        assert!(!covers("/subscriptions/s/resourceGroups/rg2", account));
        assert!(!covers("/subscriptions/s/resourceGroups/r", account));
        assert!(!covers(
            &format!("{account}/queueServices/default/queues/q"),
            account
        ));
    }

    fn side() -> AzureSide {
        AzureSide {
            subscription: Some("s".into()),
            resource_group: Some("rg".into()),
            storage_account: Some("acc".into()),
            cluster: None,
            storage_access: StorageAccess::EntraId,
            runner: None,
            firewall_opens_for_run: false,
        }
    }

    fn at(address: &str) -> Result<RunnerAddress, String> {
        Ok(RunnerAddress {
            address: address.parse().unwrap(),
            source: "EDW_RUNNER_IP".into(),
        })
    }

    #[test]
    fn missing_names_are_reported_not_guessed() {
        let mut s = side();
        assert_eq!(
            s.storage_account_id().unwrap(),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acc"
        );
        let why = s.cluster_id().unwrap_err();
        assert!(why.contains("AKS_CLUSTER_NAME"), "{why}");
        s.resource_group = Some("a/b".into());
        assert!(s
            .storage_account_id()
            .unwrap_err()
            .contains("cannot be used"));
    }

    #[test]
    fn a_denying_firewall_fails_with_the_exact_command_or_passes_when_the_run_opens_it() {
        let rules = NetworkRules {
            public_network_access: None,
            denies_by_default: true,
            ip_rules: vec!["25.1.2.3".into()],
            virtual_network_rules: 1,
        };
        let here = at("20.81.4.77");
        let check = firewall_verdict(&side(), &rules, &here);
        let PreflightOutcome::Failed { problem, fix } = &check.outcome else {
            panic!("{check:?}")
        };
        assert!(
            problem
                .contains("20.81.4.77 (from EDW_RUNNER_IP) is in none of its IP rules (25.1.2.3)"),
            "{problem}"
        );
        assert!(
            fix.contains("`az storage account network-rule add --resource-group rg --account-name acc --ip-address 20.81.4.77`"),
            "{fix}"
        );
        let opening = AzureSide {
            firewall_opens_for_run: true,
            ..side()
        };
        assert!(matches!(
            firewall_verdict(&opening, &rules, &here).outcome,
            PreflightOutcome::Passed { .. }
        ));
        // A private address cannot be a rule: opening for the run would not help.
        assert!(firewall_verdict(&opening, &rules, &at("10.1.2.3")).is_failed());
        // An unknown address: the check could not be made.
        assert!(matches!(
            firewall_verdict(&side(), &rules, &Err("no answer".into())).outcome,
            PreflightOutcome::Skipped { .. }
        ));
        // Allowed by a rule: passed, naming it.
        let allowed = firewall_verdict(&side(), &rules, &at("25.1.2.3"));
        assert!(
            matches!(&allowed.outcome, PreflightOutcome::Passed { found } if found.contains("allowed by its IP rule 25.1.2.3")),
            "{allowed:?}"
        );
    }
}
