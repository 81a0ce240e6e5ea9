//! The cluster check of `edw doctor`: whether the API server the kubeconfig names answers.

use std::time::Duration;

use super::{names, Finding};
use edw_engine::target::TargetKind;

/// The API server's `/version`.
const CLUSTER_WITHIN: Duration = Duration::from_secs(5);

/// The API server's `/version`, through the kubeconfig (`EDW_KUBE_CONTEXT`, else the current
/// context) as the kube and aks targets open it.
pub(super) async fn cluster_finding(target: TargetKind) -> Finding {
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
                format!(
                    "no usable kubeconfig: {}",
                    edw_engine::error_chain::text(&e)
                ),
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
                format!("the kubeconfig{in_context} cannot be used: {}", edw_engine::error_chain::text(&e)),
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
                format!(
                    "no client for {url}{in_context}: {}",
                    edw_engine::error_chain::text(&e)
                ),
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
                edw_engine::error_chain::text(&e)
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
