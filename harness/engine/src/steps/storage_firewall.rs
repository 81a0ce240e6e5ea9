//! The run's own opening in a storage account's firewall (`edw run --storage-firewall
//! open-for-run`): this machine's address is added as an IP rule before anything touches
//! storage, recorded in the run's ledger before the PATCH that adds it, and removed however
//! the run ends (the cleanup step [`cleanup_step`], which runs even with `--keep-on-failure`,
//! and `edw cleanup --run-state` after a crash). An address the account already allows is
//! neither recorded nor removed, and no other rule is ever touched.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use crate::arm::{Admission, ArmClient, ArmError, RuleRemoval, StorageFirewall};
use crate::runner::{Context, Step, StepFuture, StepResult};
use crate::storage::{Storage, StorageError};

pub use edw_model::run::FirewallOpening;

/// What the account's rules say about this machine, before opening.
#[derive(Debug, Clone)]
pub enum OpeningPlan {
    /// The address is already admitted (by this rule, or by defaultAction Allow): nothing is
    /// added, recorded or removed.
    AlreadyAllowed(String),
    /// The address must be added; `account` is the body the rule is added to.
    Add { account: Value },
}

/// Reads the account's rules and decides whether `address` must be added.
pub async fn plan_opening(
    firewall: &StorageFirewall<'_>,
    address: IpAddr,
) -> Result<OpeningPlan, ArmError> {
    let (account, rules) = firewall.read().await?;
    Ok(match rules.admission(address) {
        Admission::OpenToAll => {
            OpeningPlan::AlreadyAllowed("networkAcls.defaultAction Allow".to_owned())
        }
        Admission::AllowedBy(rule) => OpeningPlan::AlreadyAllowed(format!("its IP rule {rule}")),
        Admission::Denied => OpeningPlan::Add { account },
        Admission::PublicAccessOff(access) => {
            return Err(ArmError::Invalid {
                resource: firewall.account_id().to_owned(),
                reason: format!(
                    "publicNetworkAccess is {access}: no IP rule would let this machine in"
                ),
            })
        }
    })
}

/// True for the refusals a storage firewall gives (403 AuthorizationFailure, or
/// AuthorizationSourceIPMismatch).
pub fn is_firewall_refusal(error: &StorageError) -> bool {
    error.status() == Some(403)
        && matches!(
            error.code(),
            Some("AuthorizationFailure" | "AuthorizationSourceIPMismatch")
        )
}

/// Probes storage (reading the configured queue and table, creating nothing) until the
/// firewall lets the requests through, within `within`: network rule changes take seconds to
/// apply after ARM has accepted them. Any answer but a firewall refusal ends the wait (a
/// missing data role is reported by the access check that follows). The error names the
/// attempts and the last refusal.
pub async fn wait_until_admitted(
    storage: &Storage,
    queue: &str,
    table: &str,
    within: Duration,
) -> Result<Duration, String> {
    let started = tokio::time::Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match storage.check_access(queue, table).await {
            Err(e) if is_firewall_refusal(&e) => {
                if started.elapsed() >= within {
                    return Err(format!(
                        "storage still refused this machine {attempts} time(s) over {:?} after the IP rule was added (last: {e})",
                        started.elapsed()
                    ));
                }
                tokio::time::sleep(
                    Duration::from_secs(2)
                        .min(within / 4)
                        .max(Duration::from_millis(50)),
                )
                .await;
            }
            _ => return Ok(started.elapsed()),
        }
    }
}

/// Removes the run's IP rule if it is still there (a storage account that is gone has no rule
/// left); the text says what happened.
pub async fn close(opening: &FirewallOpening) -> Result<String, String> {
    let (account, address) = (opening.account_name(), opening.address);
    let client = ArmClient::from_env(&opening.arm_url).map_err(|e| {
        format!("cannot reach Azure Resource Manager to remove this run's IP rule {address} from storage account {account}: {e}; remove it yourself: {}", manual_removal(opening))
    })?;
    match StorageFirewall::new(&client, &opening.account_id)
        .remove_ip_rule(address)
        .await
    {
        Ok(RuleRemoval::Removed) => Ok(format!(
            "removed this run's IP rule {address} from storage account {account} (its other rules untouched)"
        )),
        Ok(RuleRemoval::AlreadyGone) => Ok(format!(
            "this run's IP rule {address} was no longer on storage account {account}: nothing removed"
        )),
        Err(e) if e.is_not_found() => Ok(format!(
            "storage account {account} is gone, and this run's IP rule {address} with it"
        )),
        Err(e) => Err(format!(
            "removing this run's IP rule {address} from storage account {account}: {e}; remove it yourself: {}",
            manual_removal(opening)
        )),
    }
}

fn manual_removal(opening: &FirewallOpening) -> String {
    let group = opening
        .account_id
        .split('/')
        .skip_while(|s| !s.eq_ignore_ascii_case("resourceGroups"))
        .nth(1)
        .unwrap_or("<resource group>");
    format!(
        "`az storage account network-rule remove --resource-group {group} --account-name {} --ip-address {}`",
        opening.account_name(),
        opening.address
    )
}

/// The cleanup step that removes the run's IP rule (skipped when it added none); it runs
/// even when `--keep-on-failure` keeps the rest.
pub fn cleanup_step() -> Step {
    Step::new(
        "storage firewall: remove this run's IP rule",
        Duration::from_secs(600),
        cleanup_storage_firewall,
    )
    .even_when_kept()
}

fn cleanup_storage_firewall(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let Some(opening) = ctx.storage_firewall_opening.clone() else {
            return StepResult::skipped("the run added no IP rule to the storage firewall");
        };
        match close(&opening).await {
            Ok(done) => {
                ctx.storage_firewall_opening = None;
                ctx.write_ledger();
                StepResult::passed([done])
            }
            Err(e) => StepResult::failed(e, []),
        }
    })
}

/// The aks run's first step: what the Azure-side checks found before anything was deployed
/// (they ran before the target was opened, since a firewall that refuses this machine stops
/// the storage access check; a failed one stopped the run there).
pub fn preflight_step() -> Step {
    Step::new(
        "preflight: storage firewall, data roles and Kubernetes version (Azure Resource Manager)",
        Duration::from_secs(10),
        report_preflight,
    )
}

fn report_preflight(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        if ctx.azure_preflight.is_empty() {
            return StepResult::skipped("no Azure-side check ran before this run");
        }
        StepResult::passed(ctx.azure_preflight.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_value_round_trips_and_bad_ones_are_named() {
        let opening = FirewallOpening {
            arm_url: "http://127.0.0.1:8080".into(),
            account_id:
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acc"
                    .into(),
            address: "20.81.4.77".parse().unwrap(),
        };
        assert_eq!(
            FirewallOpening::from_ledger_value(&opening.ledger_value()),
            Ok(opening.clone())
        );
        assert_eq!(opening.account_name(), "acc");
        assert!(manual_removal(&opening)
            .contains("--resource-group rg --account-name acc --ip-address 20.81.4.77"));
        assert!(FirewallOpening::from_ledger_value("a|b").is_err());
        assert!(
            FirewallOpening::from_ledger_value("u|/subscriptions/s|nope")
                .unwrap_err()
                .contains("\"nope\"")
        );
    }
}
