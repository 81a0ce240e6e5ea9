//! The Azure checks of `edw doctor` (aks only): the Azure Resource Manager token, the
//! subscription, the NodeAutoProvisioningPreview feature and the aks-preview extension.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::tools::{run_tool, ToolRun};
use super::{names, Finding};
use crate::args::DoctorArgs;
use edw_engine::arm::{api, ArmError};
use edw_engine::target::TargetKind;

/// `Microsoft.Resources/subscriptions` (no payload recorded; the stable version).
const SUBSCRIPTIONS_API: &str = "2022-12-01";
/// One ARM request, token acquisition included (the Azure CLI credential takes seconds).
const ARM_WITHIN: Duration = Duration::from_secs(30);
/// `az extension show` (the Azure CLI starts slowly).
const AZ_WITHIN: Duration = Duration::from_secs(30);

const TOKEN_FIX: &str =
    "`az login` (or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET, \
     or EDW_ARM_TOKEN=$(az account get-access-token --query accessToken --output tsv))";
const SUBSCRIPTION_FIX: &str = "pass --subscription <id> or `export AZURE_SUBSCRIPTION_ID=$(az account show --query id --output tsv)`";
const FEATURE_REGISTER_FIX: &str = "`az feature register --namespace Microsoft.ContainerService --name NodeAutoProvisioningPreview`, \
     wait until `az feature show --namespace Microsoft.ContainerService --name NodeAutoProvisioningPreview --query properties.state` \
     says Registered, then `az provider register --namespace Microsoft.ContainerService`";

/// What a failed ARM request says about the token: the token check, if the error is about it.
fn token_failure(error: &ArmError) -> Option<Finding> {
    match error {
        ArmError::Token { reason, .. } => Some(Finding::fail(
            names::TOKEN,
            format!("no token for Azure Resource Manager: {reason}"),
            TOKEN_FIX,
        )),
        ArmError::Http {
            status: 401,
            code,
            message,
            ..
        } => Some(Finding::fail(
            names::TOKEN,
            format!("a token was acquired, but ARM refused it (HTTP 401, {code}): {message}"),
            format!("sign in again (it may have expired): {TOKEN_FIX}"),
        )),
        _ => None,
    }
}

/// The token and subscription checks from the answer to `GET /subscriptions/{id}`.
pub(crate) fn subscription_findings(
    subscription: &str,
    source: &str,
    answer: Result<Value, ArmError>,
) -> (Finding, Finding) {
    let error = match answer {
        Ok(body) => {
            let token = Finding::ok(
                names::TOKEN,
                format!("acquired ({source}) and accepted by ARM"),
            );
            let name = body
                .get("displayName")
                .and_then(Value::as_str)
                .map(|n| format!("{n:?} "))
                .unwrap_or_default();
            let found = match body.get("state").and_then(Value::as_str) {
                Some(state) if state.eq_ignore_ascii_case("Enabled") => {
                    Finding::ok(names::SUBSCRIPTION, format!("{name}({subscription}) Enabled"))
                }
                state => Finding::fail(
                    names::SUBSCRIPTION,
                    format!(
                        "{name}({subscription}) is {}, expected Enabled",
                        state.map_or("without a state".to_owned(), |s| format!("{s:?}"))
                    ),
                    "re-enable it (Azure portal, Subscriptions) or choose an enabled one with --subscription \
                     (`az account list --output table`)",
                ),
            };
            return (token, found);
        }
        Err(error) => error,
    };
    if let Some(token) = token_failure(&error) {
        return (
            token,
            Finding::skip(
                names::SUBSCRIPTION,
                "cannot be read without a token ARM accepts",
            ),
        );
    }
    let token = Finding::ok(
        names::TOKEN,
        match error.status() {
            Some(status) => format!("acquired ({source}); ARM answered HTTP {status}"),
            None => format!("acquired ({source}); not verified, ARM was not reached"),
        },
    );
    let subscription_failure = match error.status() {
        Some(404) => Finding::fail(
            names::SUBSCRIPTION,
            format!("{subscription} not found, or not visible to this identity: {error}"),
            "check the id (`az account list --output table`), or sign in to the tenant that owns it (`az login --tenant <tenant>`)",
        ),
        Some(403) => Finding::fail(
            names::SUBSCRIPTION,
            format!("this identity may not read {subscription}: {error}"),
            "ask for a role on the subscription (Reader at least; deploy.sh needs Contributor and User Access Administrator), or choose another with --subscription",
        ),
        _ => Finding::fail(
            names::SUBSCRIPTION,
            format!("cannot read {subscription}: {error}"),
            "check the network path to Azure Resource Manager (--arm-url / EDW_ARM_URL) and retry",
        ),
    };
    (token, subscription_failure)
}

/// The feature check from the answer to its GET.
pub(crate) fn feature_finding(answer: Result<Value, ArmError>) -> Finding {
    let name = names::FEATURE;
    match answer {
        Ok(body) => match body.pointer("/properties/state").and_then(Value::as_str) {
            Some(state) if state.eq_ignore_ascii_case("Registered") => {
                Finding::ok(name, format!("{} state Registered", api::NAP_FEATURE_NAME))
            }
            Some(state) if state.eq_ignore_ascii_case("NotSpecified") => Finding::skip(
                name,
                format!("ARM says the feature is not needed (state {state})"),
            ),
            Some(state) if state.eq_ignore_ascii_case("Registering") => Finding::fail(
                name,
                "state Registering: the registration has not finished",
                "wait (it takes minutes) until `az feature show --namespace Microsoft.ContainerService --name NodeAutoProvisioningPreview --query properties.state` \
                 says Registered, then `az provider register --namespace Microsoft.ContainerService`",
            ),
            state => Finding::fail(
                name,
                format!(
                    "state {}, expected Registered",
                    state.map_or("missing".to_owned(), |s| format!("{s:?}"))
                ),
                FEATURE_REGISTER_FIX,
            ),
        },
        // As the Azure-side validation: a feature ARM does not know is not needed.
        Err(e)
            if e.is_not_found()
                || e.code()
                    .is_some_and(|c| c.to_ascii_lowercase().contains("notfound")) =>
        {
            Finding::skip(
                name,
                format!("ARM does not know the feature, so it is not needed: {e}"),
            )
        }
        Err(e) => Finding::fail(
            name,
            format!("cannot be read: {e}"),
            "check the identity may read the subscription (Reader), then retry",
        ),
    }
}

/// The aks-preview check from the run of `az extension show --name aks-preview`.
pub(crate) fn extension_finding(run: ToolRun) -> Finding {
    let name = names::EXTENSION;
    let fix = "`az extension add --name aks-preview` (or `az extension update --name aks-preview`)";
    match run {
        ToolRun::Exited { success: true, .. } => Finding::ok(name, "installed"),
        ToolRun::Exited { stderr, .. } => {
            let said = stderr.lines().map(str::trim).find(|l| !l.is_empty());
            let said = said.map(|l| format!(": {l}")).unwrap_or_default();
            Finding::fail(name, format!("not installed{said}"), fix)
        }
        ToolRun::TimedOut(waited) => Finding::fail(
            name,
            format!("`az extension show --name aks-preview` did not finish within {waited:?}"),
            format!("run it yourself to see why; if it is missing: {fix}"),
        ),
        ToolRun::NotStarted(reason) => Finding::fail(
            name,
            format!("cannot run az: {reason}"),
            "check the Azure CLI installation: https://learn.microsoft.com/cli/azure/install-azure-cli",
        ),
    }
}

/// Token, subscription and feature (aks only).
pub(super) async fn azure_findings(target: TargetKind, args: &DoctorArgs) -> Vec<Finding> {
    if target != TargetKind::Aks {
        let why = format!(
            "only the aks target uses Azure Resource Manager (target {})",
            target.name()
        );
        return vec![
            Finding::skip(names::TOKEN, why.clone()),
            Finding::skip(names::SUBSCRIPTION, why.clone()),
            Finding::skip(names::FEATURE, why),
        ];
    }
    let entra = format!(
        "Entra ID: {}",
        edw_engine::storage::EntraSignIn::from_process_env().describe()
    );
    let source = if std::env::var("EDW_ARM_TOKEN").is_ok_and(|t| !t.is_empty()) {
        "EDW_ARM_TOKEN"
    } else {
        entra.as_str()
    };
    let client = match crate::commands::azure::client(&args.azure) {
        Ok(client) => client,
        Err(failure) => {
            let why = "cannot be read without a token";
            return vec![
                Finding::fail(names::TOKEN, format!("{:#}", failure.error), TOKEN_FIX),
                Finding::skip(names::SUBSCRIPTION, why),
                Finding::skip(names::FEATURE, why),
            ];
        }
    };
    let Some(subscription) = args.azure.subscription.clone().filter(|s| !s.is_empty()) else {
        // No subscription to read: the token is tried on the subscription list instead.
        let token = match within(client.list("/subscriptions", SUBSCRIPTIONS_API, &[])).await {
            Ok(Ok(list)) => Finding::ok(
                names::TOKEN,
                format!(
                    "acquired ({source}); ARM lists {} subscription(s) for it",
                    list.len()
                ),
            ),
            Ok(Err(e)) => token_failure(&e).unwrap_or_else(|| {
                Finding::ok(
                    names::TOKEN,
                    format!("acquired ({source}); listing subscriptions failed: {e}"),
                )
            }),
            Err(waited) => Finding::fail(
                names::TOKEN,
                format!("no answer within {waited:?} (acquiring a token or reaching ARM)"),
                TOKEN_FIX,
            ),
        };
        return vec![
            token,
            Finding::fail(
                names::SUBSCRIPTION,
                "no subscription given",
                SUBSCRIPTION_FIX,
            ),
            Finding::skip(names::FEATURE, "needs the subscription"),
        ];
    };
    if subscription.contains(['/', '?', '#']) {
        return vec![
            Finding::skip(names::TOKEN, "not tried: the subscription id is not usable"),
            Finding::fail(
                names::SUBSCRIPTION,
                format!("{subscription:?} is not a subscription id"),
                SUBSCRIPTION_FIX,
            ),
            Finding::skip(names::FEATURE, "needs the subscription"),
        ];
    }
    let scope = format!("/subscriptions/{subscription}");
    let mut read = false;
    let (token, found) = match within(client.get(&scope, SUBSCRIPTIONS_API)).await {
        Ok(answer) => {
            read = answer.is_ok();
            subscription_findings(&subscription, source, answer)
        }
        Err(waited) => (
            Finding::skip(
                names::TOKEN,
                format!("unknown: ARM did not answer within {waited:?}"),
            ),
            Finding::fail(
                names::SUBSCRIPTION,
                format!(
                    "no answer from {} within {waited:?} (acquiring a token or the request)",
                    args.azure.arm_url
                ),
                format!(
                    "check the network path to {} and that {TOKEN_FIX} works",
                    args.azure.arm_url
                ),
            ),
        ),
    };
    let feature = if read {
        let id = format!(
            "{scope}/providers/Microsoft.Features/providers/{}/features/{}",
            api::NAP_FEATURE_NAMESPACE,
            api::NAP_FEATURE_NAME
        );
        match within(client.get(&id, api::FEATURES)).await {
            Ok(answer) => feature_finding(answer),
            Err(waited) => Finding::fail(
                names::FEATURE,
                format!("ARM did not answer within {waited:?}"),
                "retry; check the network path to Azure Resource Manager",
            ),
        }
    } else {
        Finding::skip(names::FEATURE, "the subscription could not be read")
    };
    vec![token, found, feature]
}

/// `future`'s output, or the time limit it passed.
async fn within<T>(future: impl std::future::Future<Output = T>) -> Result<T, Duration> {
    tokio::time::timeout(ARM_WITHIN, future)
        .await
        .map_err(|_| ARM_WITHIN)
}

/// `az extension show --name aks-preview` (aks only, and only when az is there).
pub(super) async fn extension_check(target: TargetKind, az: Option<&Path>) -> Finding {
    if target != TargetKind::Aks {
        return Finding::skip(
            names::EXTENSION,
            format!(
                "only the aks target's deploy script uses it (target {})",
                target.name()
            ),
        );
    }
    let Some(az) = az else {
        return Finding::skip(
            names::EXTENSION,
            "az is not on PATH (see `tool az`), so its extensions cannot be listed",
        );
    };
    let args = [
        "extension",
        "show",
        "--name",
        "aks-preview",
        "--output",
        "none",
    ];
    extension_finding(run_tool(az, &args, AZ_WITHIN).await)
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;
    use serde_json::json;

    #[test]
    fn the_subscription_must_be_enabled() {
        let body = json!({"subscriptionId": "s", "displayName": "team", "state": "Enabled"});
        let (token, found) = subscription_findings("s", "EDW_ARM_TOKEN", Ok(body));
        assert!(matches!(token.status, Status::Ok(_)), "{token:?}");
        assert_eq!(found.status, Status::Ok("\"team\" (s) Enabled".into()));
        let (_, disabled) = subscription_findings("s", "x", Ok(json!({"state": "Disabled"})));
        assert!(
            matches!(&disabled.status, Status::Fail { problem, .. } if problem.contains("\"Disabled\"")),
            "{disabled:?}"
        );
        let (_, stateless) = subscription_findings("s", "x", Ok(json!({})));
        assert!(stateless.is_failed());
    }

    #[test]
    fn token_errors_fail_the_token_check_and_skip_the_subscription() {
        let no_token = ArmError::Token {
            resource: "/subscriptions/s".into(),
            reason: "az: not logged in".into(),
        };
        let (token, found) = subscription_findings("s", "x", Err(no_token));
        assert!(
            matches!(&token.status, Status::Fail { problem, fix }
                if problem.contains("not logged in") && fix.contains("az login")),
            "{token:?}"
        );
        assert!(matches!(found.status, Status::Skip(_)), "{found:?}");
        let refused = ArmError::Http {
            resource: "/subscriptions/s".into(),
            status: 401,
            code: "InvalidAuthenticationToken".into(),
            message: "expired".into(),
        };
        let (token, _) = subscription_findings("s", "x", Err(refused));
        assert!(
            matches!(&token.status, Status::Fail { problem, .. } if problem.contains("refused")),
            "{token:?}"
        );
    }

    #[test]
    fn a_missing_subscription_fails_with_how_to_find_it() {
        let missing = ArmError::NotFound {
            resource: "/subscriptions/s".into(),
            code: "SubscriptionNotFound".into(),
            message: "not found".into(),
        };
        let (token, found) = subscription_findings("s", "x", Err(missing));
        assert!(matches!(token.status, Status::Ok(_)), "{token:?}");
        assert!(
            matches!(&found.status, Status::Fail { fix, .. } if fix.contains("az account list")),
            "{found:?}"
        );
    }

    #[test]
    fn the_feature_must_be_registered() {
        let state = |s: &str| Ok(json!({"properties": {"state": s}}));
        assert!(matches!(
            feature_finding(state("Registered")).status,
            Status::Ok(_)
        ));
        let not_registered = feature_finding(state("NotRegistered"));
        assert!(
            matches!(&not_registered.status, Status::Fail { fix, .. }
                if fix.contains("az feature register --namespace Microsoft.ContainerService --name NodeAutoProvisioningPreview")),
            "{not_registered:?}"
        );
        let registering = feature_finding(state("Registering"));
        assert!(
            matches!(&registering.status, Status::Fail { problem, .. } if problem.contains("Registering")),
            "{registering:?}"
        );
        assert!(matches!(
            feature_finding(state("NotSpecified")).status,
            Status::Skip(_)
        ));
        assert!(feature_finding(Ok(json!({}))).is_failed());
        let unknown = ArmError::NotFound {
            resource: "f".into(),
            code: "FeatureNotFound".into(),
            message: "no".into(),
        };
        assert!(matches!(
            feature_finding(Err(unknown)).status,
            Status::Skip(_)
        ));
        let denied = ArmError::Http {
            resource: "f".into(),
            status: 403,
            code: "AuthorizationFailed".into(),
            message: "no".into(),
        };
        assert!(feature_finding(Err(denied)).is_failed());
    }

    #[test]
    fn the_extension_check_quotes_az_and_gives_the_add_command() {
        assert_eq!(
            extension_finding(ToolRun::Exited {
                success: true,
                stdout: String::new(),
                stderr: String::new()
            })
            .status,
            Status::Ok("installed".into())
        );
        let missing = extension_finding(ToolRun::Exited {
            success: false,
            stdout: String::new(),
            stderr: "\nERROR: The extension aks-preview is not installed.\n".into(),
        });
        assert!(
            matches!(&missing.status, Status::Fail { problem, fix }
                if problem.ends_with("The extension aks-preview is not installed.")
                    && fix.contains("az extension add --name aks-preview")),
            "{missing:?}"
        );
        assert!(extension_finding(ToolRun::TimedOut(AZ_WITHIN)).is_failed());
        assert!(extension_finding(ToolRun::NotStarted("denied".into())).is_failed());
    }
}
