//! `edw doctor`: the walkthrough's prerequisites for a target, one line per check: `ok` with
//! what was found, `FAIL` with what is wrong and the fix, or `skip` with why the check does not
//! apply to the target (never counted as passed). Tools on PATH, an Azure Resource Manager
//! token, the subscription, the NodeAutoProvisioningPreview feature, the aks-preview extension,
//! the cluster's API server and the storage endpoints. Exit 3 when a check failed.
//!
//! The decisions are small pure functions (tool, subscription, feature, extension, endpoint) so
//! that they are unit-tested; the command only gathers their inputs.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::arm::{api, ArmError};
use crate::cli::args::{DoctorArgs, GlobalArgs};
use crate::cli::{exit, session, Failure};
use crate::config::StorageChoice;
use crate::secrets::redact;
use crate::storage::{Storage, StorageAuth};
use crate::target::TargetKind;

/// `Microsoft.Resources/subscriptions` (no payload recorded; the stable version).
const SUBSCRIPTIONS_API: &str = "2022-12-01";
/// One ARM request, token acquisition included (the Azure CLI credential takes seconds).
const ARM_WITHIN: Duration = Duration::from_secs(30);
/// `az extension show` (the Azure CLI starts slowly).
const AZ_WITHIN: Duration = Duration::from_secs(30);
/// The API server's `/version`.
const CLUSTER_WITHIN: Duration = Duration::from_secs(5);
/// One TCP connection to a storage endpoint.
const TCP_WITHIN: Duration = Duration::from_secs(3);

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// What was found.
    Ok(String),
    /// What is wrong, and how to fix it.
    Fail { problem: String, fix: String },
    /// Why the check does not apply (or cannot be made).
    Skip(String),
}

/// One check and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub name: String,
    pub status: Status,
}

impl Finding {
    fn ok(name: &str, found: impl Into<String>) -> Finding {
        Finding {
            name: name.to_owned(),
            status: Status::Ok(found.into()),
        }
    }

    fn fail(name: &str, problem: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            name: name.to_owned(),
            status: Status::Fail {
                problem: problem.into(),
                fix: fix.into(),
            },
        }
    }

    fn skip(name: &str, reason: impl Into<String>) -> Finding {
        Finding {
            name: name.to_owned(),
            status: Status::Skip(reason.into()),
        }
    }

    fn is_failed(&self) -> bool {
        matches!(self.status, Status::Fail { .. })
    }

    /// The output line, with every known secret removed.
    pub(crate) fn line(&self) -> String {
        let text = match &self.status {
            Status::Ok(found) => format!("ok   {}: {found}", self.name),
            Status::Fail { problem, fix } => {
                format!("FAIL {}: {problem} — fix: {fix}", self.name)
            }
            Status::Skip(reason) => format!("skip {}: {reason}", self.name),
        };
        redact(&text)
    }
}

/// Check names.
mod names {
    pub const TOKEN: &str = "ARM token";
    pub const SUBSCRIPTION: &str = "subscription";
    pub const FEATURE: &str = "NodeAutoProvisioningPreview feature";
    pub const EXTENSION: &str = "aks-preview extension";
    pub const CLUSTER: &str = "cluster";
    pub const STORAGE: &str = "storage";
    pub const STORAGE_QUEUE: &str = "storage queue";
    pub const STORAGE_TABLE: &str = "storage table";
}

/// A command-line tool and the targets that need it.
#[derive(Debug)]
pub(crate) struct Tool {
    pub name: &'static str,
    /// The targets that need it.
    pub needed_by: &'static [TargetKind],
    /// Who uses it, for the skip reason and the fix.
    pub used_for: &'static str,
    pub fix: &'static str,
}

/// The tools of the walkthrough, deploy.sh and the kind workflow.
pub(crate) const TOOLS: &[Tool] = &[
    Tool {
        name: "kubectl",
        needed_by: &[TargetKind::Kube, TargetKind::Aks],
        used_for: "the walkthrough (its checks against the cluster)",
        fix: "install kubectl: https://kubernetes.io/docs/tasks/tools/",
    },
    Tool {
        name: "az",
        needed_by: &[TargetKind::Aks],
        used_for: "the team's deploy script (deploy.sh)",
        fix: "install the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli",
    },
    Tool {
        name: "jq",
        needed_by: &[TargetKind::Aks],
        used_for: "the team's deploy script (deploy.sh)",
        fix: "install jq: https://jqlang.org/download/ (Debian/Ubuntu: `apt-get install jq`)",
    },
    Tool {
        name: "helm",
        needed_by: &[TargetKind::Kube],
        used_for: "ci/kind-up.sh (it installs KEDA)",
        fix: "install Helm: https://helm.sh/docs/intro/install/",
    },
    Tool {
        name: "kind",
        needed_by: &[TargetKind::Kube],
        used_for: "ci/kind-up.sh (it creates the kind cluster)",
        fix: "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    },
];

/// The first executable file named `program` in the directories of `path` (a `PATH` value).
/// Empty entries (the current directory) are ignored.
pub(crate) fn find_on_path(program: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    let path = path?;
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .flat_map(|dir| candidates(&dir, program))
        .find(|file| is_executable(file))
}

#[cfg(unix)]
fn candidates(dir: &Path, program: &str) -> Vec<PathBuf> {
    vec![dir.join(program)]
}

#[cfg(not(unix))]
fn candidates(dir: &Path, program: &str) -> Vec<PathBuf> {
    vec![dir.join(format!("{program}.exe")), dir.join(program)]
}

fn is_executable(file: &Path) -> bool {
    match std::fs::metadata(file) {
        Ok(meta) if meta.is_file() => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o111 != 0
            }
            #[cfg(not(unix))]
            {
                true
            }
        }
        _ => false,
    }
}

/// The check of one tool on `target`, given where it was found.
pub(crate) fn tool_finding(tool: &Tool, target: TargetKind, found: Option<&Path>) -> Finding {
    let name = format!("tool {}", tool.name);
    if !tool.needed_by.contains(&target) {
        let seen = match found {
            Some(path) => format!("found at {}", path.display()),
            None => "not on PATH".to_owned(),
        };
        let reason = if tool.name == "kubectl" {
            format!(
                "the {} target runs the twin in-process, kubectl is optional there (handy with `edw twin serve`); {seen}",
                target.name()
            )
        } else {
            let targets: Vec<&str> = tool.needed_by.iter().map(|t| t.name()).collect();
            format!(
                "not needed on the {} target ({} uses it, for the {} target); {seen}",
                target.name(),
                tool.used_for,
                targets.join(" and ")
            )
        };
        return Finding::skip(&name, reason);
    }
    match found {
        Some(path) => Finding::ok(&name, path.display().to_string()),
        None => Finding::fail(
            &name,
            format!(
                "{} is not on PATH, and {} uses it",
                tool.name, tool.used_for
            ),
            tool.fix,
        ),
    }
}

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

/// How `az extension show` ended.
#[derive(Debug)]
pub(crate) enum AzRun {
    Exited { success: bool, stderr: String },
    TimedOut(Duration),
    NotStarted(String),
}

/// The aks-preview check from the run of `az extension show --name aks-preview`.
pub(crate) fn extension_finding(run: AzRun) -> Finding {
    let name = names::EXTENSION;
    let fix = "`az extension add --name aks-preview` (or `az extension update --name aks-preview`)";
    match run {
        AzRun::Exited { success: true, .. } => Finding::ok(name, "installed"),
        AzRun::Exited { stderr, .. } => {
            let said = stderr.lines().map(str::trim).find(|l| !l.is_empty());
            let said = said.map(|l| format!(": {l}")).unwrap_or_default();
            Finding::fail(name, format!("not installed{said}"), fix)
        }
        AzRun::TimedOut(waited) => Finding::fail(
            name,
            format!("`az extension show --name aks-preview` did not finish within {waited:?}"),
            format!("run it yourself to see why; if it is missing: {fix}"),
        ),
        AzRun::NotStarted(reason) => Finding::fail(
            name,
            format!("cannot run az: {reason}"),
            "check the Azure CLI installation: https://learn.microsoft.com/cli/azure/install-azure-cli",
        ),
    }
}

/// Host and port of a storage endpoint URL (the scheme's port when none is given).
pub(crate) fn endpoint_address(url: &str) -> Result<(String, u16), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| format!("{url:?} has no port"))?;
    Ok((host, port))
}

/// Runs the checks for `args.target` and prints one line each.
pub async fn run(global: &GlobalArgs, args: &DoctorArgs) -> Result<u8, Failure> {
    let target = TargetKind::parse(&args.target)
        .map_err(|e| Failure::usage(anyhow::anyhow!("--target (or EDW_TARGET): {e}")))?;
    let path = std::env::var_os("PATH");
    let mut findings: Vec<Finding> = TOOLS
        .iter()
        .map(|tool| {
            let found = find_on_path(tool.name, path.as_deref());
            tool_finding(tool, target, found.as_deref())
        })
        .collect();
    let az = find_on_path("az", path.as_deref());
    let (azure, extension, cluster, storage) = tokio::join!(
        azure_findings(target, args),
        extension_check(target, az.as_deref()),
        cluster_finding(target),
        storage_findings(target, global, path.as_deref()),
    );
    findings.extend(azure);
    findings.push(extension);
    findings.push(cluster);
    findings.extend(storage);
    let failed = findings.iter().filter(|f| f.is_failed()).count();
    let skipped = findings
        .iter()
        .filter(|f| matches!(f.status, Status::Skip(_)))
        .count();
    for finding in &findings {
        println!("{}", finding.line());
    }
    println!(
        "target {}: {} checks, {} ok, {failed} failed, {skipped} skipped",
        target.name(),
        findings.len(),
        findings.len() - failed - skipped
    );
    Ok(if failed == 0 {
        exit::OK
    } else {
        exit::ENVIRONMENT
    })
}

/// Token, subscription and feature (aks only).
async fn azure_findings(target: TargetKind, args: &DoctorArgs) -> Vec<Finding> {
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
    let source = if std::env::var("EDW_ARM_TOKEN").is_ok_and(|t| !t.is_empty()) {
        "EDW_ARM_TOKEN"
    } else {
        "Entra ID: environment, workload identity, managed identity or Azure CLI"
    };
    let client = match super::azure::client(&args.azure) {
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
async fn extension_check(target: TargetKind, az: Option<&Path>) -> Finding {
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
    let mut command = tokio::process::Command::new(az);
    command
        .args([
            "extension",
            "show",
            "--name",
            "aks-preview",
            "--output",
            "none",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = match command.spawn() {
        Err(e) => AzRun::NotStarted(format!("{}: {e}", az.display())),
        Ok(child) => match tokio::time::timeout(AZ_WITHIN, child.wait_with_output()).await {
            Err(_) => AzRun::TimedOut(AZ_WITHIN),
            Ok(Err(e)) => AzRun::NotStarted(format!("{}: {e}", az.display())),
            Ok(Ok(output)) => AzRun::Exited {
                success: output.status.success(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            },
        },
    };
    extension_finding(run)
}

/// The API server's `/version`, through the kubeconfig (`EDW_KUBE_CONTEXT`, else the current
/// context) as the kube and aks targets open it.
async fn cluster_finding(target: TargetKind) -> Finding {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let name = names::CLUSTER;
    if target == TargetKind::Local {
        return Finding::skip(
            name,
            "the local target serves the twin in-process; no cluster is needed",
        );
    }
    let get_credentials = if target == TargetKind::Aks {
        "`az aks get-credentials --resource-group <group> --name <cluster>`"
    } else {
        "`ci/kind-up.sh` for kind, or `edw twin serve` for the twin"
    };
    let context = std::env::var("EDW_KUBE_CONTEXT")
        .ok()
        .filter(|c| !c.is_empty());
    let in_context = context
        .as_ref()
        .map(|c| format!(" (context {c}, EDW_KUBE_CONTEXT)"))
        .unwrap_or_default();
    let kubeconfig = match Kubeconfig::read() {
        Ok(kubeconfig) => kubeconfig,
        Err(e) => {
            return Finding::fail(
                name,
                format!("no usable kubeconfig: {}", error_chain(&e)),
                format!("set KUBECONFIG or write ~/.kube/config: {get_credentials}"),
            )
        }
    };
    let options = KubeConfigOptions {
        context: context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match kube::Config::from_custom_kubeconfig(kubeconfig, &options).await {
        Ok(config) => config,
        Err(e) => {
            return Finding::fail(
                name,
                format!("the kubeconfig{in_context} cannot be used: {}", error_chain(&e)),
                format!(
                    "pick a context that exists (`kubectl config get-contexts`; EDW_KUBE_CONTEXT), or {get_credentials}"
                ),
            )
        }
    };
    let url = config.cluster_url.to_string();
    let client = match kube::Client::try_from(config) {
        Ok(client) => client,
        Err(e) => {
            return Finding::fail(
                name,
                format!("no client for {url}{in_context}: {}", error_chain(&e)),
                format!("check the kubeconfig's cluster and user entries, or {get_credentials}"),
            )
        }
    };
    let reach_fix = format!(
        "start the cluster or point the kubeconfig at a running one (`kubectl cluster-info`; EDW_KUBE_CONTEXT), e.g. {get_credentials}"
    );
    match tokio::time::timeout(CLUSTER_WITHIN, client.apiserver_version()).await {
        Ok(Ok(version)) => {
            let twin = if version.git_commit == edw_twin::api::TWIN_MARKER {
                ", a SIMULATED cluster (an edw twin)"
            } else {
                ""
            };
            Finding::ok(
                name,
                format!(
                    "{url}{in_context} answers: Kubernetes {} ({}){twin}",
                    version.git_version, version.platform
                ),
            )
        }
        Ok(Err(e)) => Finding::fail(
            name,
            format!(
                "{url}{in_context} does not answer /version: {}",
                error_chain(&e)
            ),
            reach_fix,
        ),
        Err(_) => Finding::fail(
            name,
            format!("{url}{in_context} did not answer /version within {CLUSTER_WITHIN:?}"),
            reach_fix,
        ),
    }
}

/// Where the configured storage is, and whether it can be reached: TCP connections to the
/// queue and table endpoints, or, for the embedded Azurite, node and npm on PATH.
async fn storage_findings(
    target: TargetKind,
    global: &GlobalArgs,
    path: Option<&OsStr>,
) -> Vec<Finding> {
    let name = names::STORAGE;
    let config = match session::load_config(global) {
        Ok(config) => config,
        Err(failure) => {
            return vec![Finding::fail(
                name,
                format!("the configuration is not usable: {:#}", failure.error),
                "correct the value, variable or deploy.state line named (`edw config` shows where each comes from)",
            )]
        }
    };
    let half_set = ["EDW_AZURITE_QUEUE_ENDPOINT", "EDW_AZURITE_TABLE_ENDPOINT"]
        .map(|key| config.get(key).is_some_and(|v| !v.is_empty()));
    if half_set[0] != half_set[1] {
        return vec![Finding::fail(
            name,
            "only one of EDW_AZURITE_QUEUE_ENDPOINT and EDW_AZURITE_TABLE_ENDPOINT is set, so neither is used",
            "set both (`edw azurite` prints them), or neither",
        )];
    }
    let choice = match config.storage() {
        Ok(choice) => choice,
        Err(e) => {
            return vec![Finding::fail(
                name,
                format!("the storage configuration is not usable: {e}"),
                "set what the message names (`edw config` shows the resolved values)",
            )]
        }
    };
    let storage_target = match choice {
        StorageChoice::EmbeddedAzurite if target == TargetKind::Local => {
            return vec![embedded_azurite(path)];
        }
        StorageChoice::EmbeddedAzurite => {
            let fix = if target == TargetKind::Aks {
                "pass --state-file with the deploy.state deploy.sh wrote (it names AZURE_STORAGE_ACCOUNT_NAME), or set AZURE_STORAGE_ACCOUNT_NAME"
            } else {
                "run Azurite where the cluster reaches it (`ci/kind-up.sh` prints the variables) and export EDW_AZURITE_QUEUE_ENDPOINT and EDW_AZURITE_TABLE_ENDPOINT, or set AZURE_STORAGE_ACCOUNT_NAME"
            };
            return vec![Finding::fail(
                name,
                format!(
                    "no storage configured; the {} target needs storage the cluster can reach (the embedded Azurite is for the local target only)",
                    target.name()
                ),
                fix,
            )];
        }
        StorageChoice::Target(storage_target) => storage_target,
    };
    let storage = match Storage::connect(&storage_target) {
        Ok(storage) => storage,
        Err(e) => {
            return vec![Finding::fail(
                name,
                format!("cannot set up storage: {e}"),
                "correct the storage settings (`edw config` shows them)",
            )]
        }
    };
    let what = match storage_target.auth {
        StorageAuth::DevelopmentAccount => "Azurite",
        _ => "storage account",
    };
    let (queue, table) = tokio::join!(
        tcp_finding(names::STORAGE_QUEUE, what, storage.queue_endpoint()),
        tcp_finding(names::STORAGE_TABLE, what, storage.table_endpoint()),
    );
    vec![queue, table]
}

/// The embedded Azurite's needs: node and npm on PATH.
fn embedded_azurite(path: Option<&OsStr>) -> Finding {
    let node = find_on_path("node", path);
    let npm = find_on_path("npm", path);
    let fix = "install Node.js 18 or newer with npm (Debian/Ubuntu: `apt-get install nodejs npm`), \
               or run Azurite yourself and set EDW_AZURITE_QUEUE_ENDPOINT and EDW_AZURITE_TABLE_ENDPOINT";
    match (node, npm) {
        (Some(node), Some(npm)) => Finding::ok(
            names::STORAGE,
            format!(
                "embedded Azurite (azurite@{}): installed into the cache on first use and started by each command (node {}, npm {})",
                crate::azurite::AZURITE_VERSION,
                node.display(),
                npm.display()
            ),
        ),
        (node, npm) => {
            let missing: Vec<&str> = [("node", node.is_none()), ("npm", npm.is_none())]
                .into_iter()
                .filter_map(|(program, missing)| missing.then_some(program))
                .collect();
            Finding::fail(
                names::STORAGE,
                format!(
                    "the embedded Azurite needs Node.js and npm, and {} not on PATH",
                    missing.join(" and ")
                ),
                fix,
            )
        }
    }
}

/// A TCP connection to the endpoint's host and port.
async fn tcp_finding(name: &str, what: &str, endpoint: &str) -> Finding {
    let (host, port) = match endpoint_address(endpoint) {
        Ok(address) => address,
        Err(e) => {
            return Finding::fail(
                name,
                e,
                "correct the endpoint (`edw config` shows where it comes from)",
            )
        }
    };
    let fix = if what == "Azurite" {
        "start Azurite (`edw azurite` prints the variables to export) or correct EDW_AZURITE_QUEUE_ENDPOINT / EDW_AZURITE_TABLE_ENDPOINT"
    } else {
        "check the account name and the network path to it (firewall, private endpoint, proxy)"
    };
    match tokio::time::timeout(
        TCP_WITHIN,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Finding::ok(name, format!("{what} {endpoint} accepts connections")),
        Ok(Err(e)) => Finding::fail(
            name,
            format!("{what} {endpoint}: cannot connect to {host}:{port}: {e}"),
            fix,
        ),
        Err(_) => Finding::fail(
            name,
            format!("{what} {endpoint}: no connection to {host}:{port} within {TCP_WITHIN:?}"),
            fix,
        ),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    redact(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str) -> &'static Tool {
        TOOLS.iter().find(|t| t.name == name).unwrap()
    }

    #[cfg(unix)]
    fn write_program(dir: &Path, name: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let file = dir.join(name);
        std::fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    #[cfg(unix)]
    #[test]
    fn find_on_path_takes_the_first_executable_file_only() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        // Not executable in the first directory, a directory of that name, then the real one.
        write_program(first.path(), "kubectl", 0o644);
        std::fs::create_dir(first.path().join("helm")).unwrap();
        let kubectl = write_program(second.path(), "kubectl", 0o755);
        let helm = write_program(second.path(), "helm", 0o700);
        let path = std::env::join_paths([first.path(), second.path()]).unwrap();
        assert_eq!(find_on_path("kubectl", Some(&path)), Some(kubectl));
        assert_eq!(find_on_path("helm", Some(&path)), Some(helm));
        assert_eq!(find_on_path("jq", Some(&path)), None);
        assert_eq!(find_on_path("kubectl", None), None);
        // An empty entry (the current directory) is not searched.
        assert_eq!(find_on_path("kubectl", Some(OsStr::new(""))), None);
    }

    #[test]
    fn a_tool_is_required_only_by_its_targets() {
        let found = PathBuf::from("/usr/bin/az");
        assert_eq!(
            tool_finding(tool("az"), TargetKind::Aks, Some(&found)).status,
            Status::Ok("/usr/bin/az".into())
        );
        let missing = tool_finding(tool("az"), TargetKind::Aks, None);
        assert!(
            matches!(&missing.status, Status::Fail { problem, fix }
                if problem.contains("az is not on PATH") && fix.contains("install-azure-cli")),
            "{missing:?}"
        );
        // Not needed: skipped even when found, never passed.
        for (name, target) in [
            ("az", TargetKind::Kube),
            ("jq", TargetKind::Local),
            ("helm", TargetKind::Aks),
            ("kind", TargetKind::Local),
            ("kubectl", TargetKind::Local),
        ] {
            let finding = tool_finding(tool(name), target, Some(&found));
            assert!(
                matches!(&finding.status, Status::Skip(reason) if reason.contains(target.name())),
                "{finding:?}"
            );
        }
        assert!(tool_finding(tool("kind"), TargetKind::Kube, None).is_failed());
        assert!(tool_finding(tool("kubectl"), TargetKind::Aks, None).is_failed());
    }

    #[test]
    fn the_line_formats_name_the_check_and_the_fix() {
        assert_eq!(
            Finding::ok("tool jq", "/bin/jq").line(),
            "ok   tool jq: /bin/jq"
        );
        assert_eq!(
            Finding::fail("cluster", "down", "start it").line(),
            "FAIL cluster: down — fix: start it"
        );
        assert_eq!(
            Finding::skip("cluster", "local").line(),
            "skip cluster: local"
        );
    }

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
            extension_finding(AzRun::Exited {
                success: true,
                stderr: String::new()
            })
            .status,
            Status::Ok("installed".into())
        );
        let missing = extension_finding(AzRun::Exited {
            success: false,
            stderr: "\nERROR: The extension aks-preview is not installed.\n".into(),
        });
        assert!(
            matches!(&missing.status, Status::Fail { problem, fix }
                if problem.ends_with("The extension aks-preview is not installed.")
                    && fix.contains("az extension add --name aks-preview")),
            "{missing:?}"
        );
        assert!(extension_finding(AzRun::TimedOut(AZ_WITHIN)).is_failed());
        assert!(extension_finding(AzRun::NotStarted("denied".into())).is_failed());
    }

    #[test]
    fn endpoint_addresses_use_the_scheme_port_by_default() {
        assert_eq!(
            endpoint_address("http://127.0.0.1:10001/devstoreaccount1"),
            Ok(("127.0.0.1".into(), 10001))
        );
        assert_eq!(
            endpoint_address("https://acct.queue.core.windows.net"),
            Ok(("acct.queue.core.windows.net".into(), 443))
        );
        assert_eq!(
            endpoint_address("http://[::1]:10002/devstoreaccount1"),
            Ok(("::1".into(), 10002))
        );
        assert!(endpoint_address("not a url").is_err());
        assert!(endpoint_address("unix:/tmp/socket").is_err());
    }
}
