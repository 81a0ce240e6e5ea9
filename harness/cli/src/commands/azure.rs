//! `edw sweep` and `edw azure-check`: the Azure side through Azure Resource Manager. Tokens
//! come from the Entra ID credential `edw_engine::storage::EntraSignIn` chooses (GitHub Actions
//! OIDC federation, a federated token file, else environment, managed identity, Azure CLI);
//! `EDW_ARM_TOKEN` supplies a fixed one (tests, CI systems that mint their own).

use std::sync::Arc;

use crate::args::{AzureArgs, GlobalArgs, SweepArgs};
use crate::{exit, session, Failure};
use edw_engine::arm::{
    validate, ArmClient, CheckOutcome, DefaultCredentialToken, Deployment, ExpiryTags,
    ResourceGroups, StaticToken, TokenSource,
};

pub(crate) fn client(args: &AzureArgs) -> Result<ArmClient, Failure> {
    let tokens: Arc<dyn TokenSource> = match std::env::var("EDW_ARM_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        Some(token) => Arc::new(StaticToken::new(token)),
        None => Arc::new(DefaultCredentialToken::new().map_err(|e| {
            Failure::environment(anyhow::anyhow!(
                "no Entra ID credential for Azure Resource Manager: {e}"
            ))
        })?),
    };
    ArmClient::new(&args.arm_url, tokens).map_err(Failure::environment)
}

fn subscription(args: &AzureArgs) -> Result<String, Failure> {
    args.subscription
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Failure::usage(anyhow::anyhow!(
                "no subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID"
            ))
        })
}

pub async fn sweep(args: &SweepArgs) -> Result<u8, Failure> {
    let subscription = subscription(&args.azure)?;
    let client = client(&args.azure)?;
    let groups = ResourceGroups::new(&client, &subscription);
    let report = groups
        .sweep(
            &ExpiryTags::default(),
            time::OffsetDateTime::now_utc(),
            !args.yes,
        )
        .await
        .map_err(Failure::environment)?;
    if report.expired.is_empty() {
        println!("no expired resource groups tagged edw-run-id/edw-expires in subscription {subscription}");
    }
    for group in &report.expired {
        let action = if report.dry_run {
            "would delete (pass --yes)"
        } else if report.deleted.contains(&group.name) {
            "deleted"
        } else {
            "NOT deleted"
        };
        println!(
            "{action}: {} (run {}, expired {})",
            group.name, group.run_id, group.expires
        );
    }
    for (name, error) in &report.failed {
        println!("failed: {name}: {error}");
    }
    Ok(if report.failed.is_empty() {
        exit::OK
    } else {
        exit::ENVIRONMENT
    })
}

pub async fn check(global: &GlobalArgs, args: &AzureArgs) -> Result<u8, Failure> {
    let config = session::load_config(global)?;
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    if let Some(subscription) = &args.subscription {
        env.push(("AZURE_SUBSCRIPTION_ID".to_owned(), subscription.clone()));
    }
    let deployment = Deployment::from_config(&config, &env).map_err(Failure::usage)?;
    let client = client(args)?;
    check_arm_access(&client, &deployment).await?;
    let checks = validate(&client, &deployment).await;
    let mut failed = 0;
    for check in &checks {
        let (mark, text) = match &check.outcome {
            CheckOutcome::Passed { found } => ("ok  ", found.clone()),
            CheckOutcome::Failed { message } => {
                failed += 1;
                ("FAIL", message.clone())
            }
            CheckOutcome::Skipped { reason } => ("skip", reason.clone()),
        };
        println!("{mark} {}: {text}", check.name);
    }
    println!("{} checks, {failed} failed", checks.len());
    Ok(if failed == 0 {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

/// Reads the deployment's resource group once before the checks: when ARM does not answer or
/// refuses the credentials, that is the environment (exit 3), not a dozen failed checks.
async fn check_arm_access(client: &ArmClient, deployment: &Deployment) -> Result<(), Failure> {
    match client
        .get(&deployment.resource_group_id(), edw_engine::arm::api::RESOURCE_GROUPS)
        .await
    {
        Err(error) if error.is_access_failure() => Err(Failure::environment(error).context(
            "Azure Resource Manager does not answer or refuses the credentials (check the Azure sign-in or EDW_ARM_TOKEN, and --arm-url / EDW_ARM_URL)",
        )),
        _ => Ok(()),
    }
}
