//! The aks run's Azure side before its target opens: the checks only the team can fix (storage
//! firewall, data roles, Kubernetes version; see [`edw_engine::arm::preflight`]), printed with their
//! fixes and stopping the run (exit 3) before anything is deployed when one fails; then, with
//! `--storage-firewall open-for-run`, this machine's address added to the storage firewall for
//! the run (ledger first, see [`edw_engine::scenario::storage_firewall`]).

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::args::StorageFirewallMode;
use crate::Failure;
use edw_engine::arm::preflight::{self, AzureSide, StorageAccess};
use edw_engine::arm::{ArmClient, StorageFirewall};
use edw_engine::config::{Config, StorageChoice};
use edw_engine::runner::{run_state, DeployedGroup};
use edw_engine::steps::storage_firewall::{close, plan_opening, wait_until_admitted, OpeningPlan};
use edw_engine::steps::FirewallOpening;
use edw_engine::storage::Storage;
use edw_engine::target::TargetKind;

/// How long storage may keep refusing this machine after its IP rule was accepted (network
/// rule changes take seconds to apply; Azure/azure-cli#18415).
const ADMITTED_WITHIN: Duration = Duration::from_secs(300);

/// What the Azure side left for the run.
#[derive(Debug, Default)]
pub struct AzureSideReady {
    /// The checks' lines, for the run's first step.
    pub checks: Vec<String>,
    /// The IP rule the run added, for its cleanup.
    pub opening: Option<FirewallOpening>,
}

/// `EDW_ARM_URL`, else the public cloud's.
pub(crate) fn arm_url() -> String {
    std::env::var("EDW_ARM_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| edw_engine::arm::DEFAULT_BASE_URL.to_owned())
}

/// Runs the checks and, when asked, opens the firewall; `ledger` records the opening (with the
/// group a `--deploy` created) before the PATCH.
pub async fn prepare(
    config: &Config,
    mode: StorageFirewallMode,
    ledger: &Path,
    deployed_group: Option<&DeployedGroup>,
    cancel: &CancellationToken,
) -> Result<AzureSideReady, Failure> {
    let opens = mode == StorageFirewallMode::OpenForRun;
    let subscription = std::env::var("AZURE_SUBSCRIPTION_ID").ok();
    let runner = if opens {
        Some(edw_engine::public_address::discover().await)
    } else {
        None
    };
    let side = AzureSide::from_config(config, subscription, runner, opens);
    let refuse_opening = |why: String| {
        Failure::usage(anyhow::anyhow!(
            "--storage-firewall open-for-run (EDW_STORAGE_FIREWALL) cannot open the storage firewall: {why}"
        ))
    };
    if opens {
        if side.storage_access == StorageAccess::Azurite {
            return Err(refuse_opening(
                "storage is Azurite, which has no firewall".to_owned(),
            ));
        }
        side.storage_account_id().map_err(&refuse_opening)?;
    }
    let arm_url = arm_url();
    let client = match ArmClient::from_env(&arm_url) {
        Ok(client) => client,
        Err(e) if opens => return Err(Failure::environment(e)),
        Err(e) => {
            let line = format!("skip Azure-side checks: no Azure Resource Manager client ({e}); `edw doctor --target aks` says more");
            eprintln!("{line}");
            return Ok(AzureSideReady {
                checks: vec![line],
                opening: None,
            });
        }
    };
    eprintln!("Azure side (before anything is deployed):");
    let checks = preflight::check(&client, &side).await;
    let lines: Vec<String> = checks.iter().map(|c| c.line()).collect();
    for line in &lines {
        eprintln!("  {line}");
    }
    let failed = checks.iter().filter(|c| c.is_failed()).count();
    if failed > 0 {
        return Err(Failure::environment(anyhow::anyhow!(
            "{failed} Azure-side check(s) failed (above, each with its fix): only the team can fix them, so nothing was deployed"
        )));
    }
    let opening = if opens {
        open_for_run(&client, &side, config, ledger, deployed_group, cancel).await?
    } else {
        None
    };
    Ok(AzureSideReady {
        checks: lines,
        opening,
    })
}

/// Adds this machine's address to the storage firewall (unless it is already allowed), the
/// ledger first, then waits until storage admits it. Any failure removes the rule again.
async fn open_for_run(
    client: &ArmClient,
    side: &AzureSide,
    config: &Config,
    ledger: &Path,
    deployed_group: Option<&DeployedGroup>,
    cancel: &CancellationToken,
) -> Result<Option<FirewallOpening>, Failure> {
    let account_id = side
        .storage_account_id()
        .map_err(|why| Failure::usage(anyhow::anyhow!(why)))?;
    let runner = match side.runner.clone() {
        Some(found) => found,
        None => edw_engine::public_address::discover().await,
    }
    .map_err(|why| {
        Failure::environment(anyhow::anyhow!(
            "--storage-firewall open-for-run: this machine's public address is unknown: {why}"
        ))
    })?;
    let address = runner.address;
    let firewall = StorageFirewall::new(client, &account_id);
    let account = match plan_opening(&firewall, address)
        .await
        .map_err(Failure::environment)?
    {
        OpeningPlan::AlreadyAllowed(by) => {
            eprintln!("storage firewall: {address} is already allowed by {by}: this run adds no rule and removes none");
            return Ok(None);
        }
        OpeningPlan::Add { account } => account,
    };
    let opening = FirewallOpening {
        arm_url: arm_url(),
        account_id: account_id.clone(),
        address,
    };
    run_state::save_before_target(
        ledger,
        TargetKind::Aks.name(),
        deployed_group,
        Some(&opening),
    )
    .map_err(Failure::environment)?;
    let recorded = &opening.clone();
    eprintln!(
        "ledger: {} records the IP rule {address} (from {}) before it is added (`edw cleanup --target aks --run-state {}` removes it if this run dies)",
        ledger.display(),
        runner.source,
        ledger.display()
    );
    let added = tokio::select! {
        added = firewall.add_ip_rule(&account, address) => added.map_err(|e| e.to_string()),
        _ = cancel.cancelled() => Err("interrupted while adding it".to_owned()),
    };
    let undo = |why: String| async move {
        let removed = match close(recorded).await {
            Ok(done) => {
                // The rule is gone: the ledger no longer names it (a rule the team adds later
                // for the same address is theirs, not this run's).
                if let Err(e) = run_state::forget_storage_firewall_opening(ledger) {
                    eprintln!("warning: {e}");
                }
                done
            }
            Err(failed) => failed,
        };
        eprintln!("{removed}");
        Failure::environment(anyhow::anyhow!(
            "--storage-firewall open-for-run: {why} ({removed})"
        ))
    };
    if let Err(why) = added {
        return Err(undo(format!("adding the IP rule {address}: {why}")).await);
    }
    eprintln!("storage firewall: added the IP rule {address} for this run; waiting until storage admits this machine…");
    let storage = match config.storage() {
        Ok(StorageChoice::Target(target)) => Storage::connect(&target).map_err(|e| e.to_string()),
        _ => Err("no storage account is configured".to_owned()),
    };
    let admitted = match storage {
        Ok(storage) => tokio::select! {
            admitted = wait_until_admitted(&storage, config.queue_name(), config.table_name(), ADMITTED_WITHIN) => admitted,
            _ = cancel.cancelled() => Err("interrupted while waiting for storage to admit this machine".to_owned()),
        },
        Err(why) => Err(why),
    };
    match admitted {
        Ok(after) => {
            eprintln!("storage firewall: storage admits this machine (after {after:.1?})");
            Ok(Some(opening))
        }
        Err(why) => Err(undo(why).await),
    }
}
