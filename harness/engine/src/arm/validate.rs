//! [`validate`]: the Azure-side checks of what the walkthrough's deploy.sh creates, one
//! [`Check`] each, never stopping at the first failure. A check whose input could not be read
//! (its resource is missing) is Skipped with the reason; the missing resource's own check fails.

use serde_json::Value;

use super::api;
use super::check::{names, Check};
use super::client::ArmClient;
use super::deployment::Deployment;
use super::error::ArmError;

/// Runs every check against `deployment`, in the order of [`names::ALL`].
pub async fn validate(client: &ArmClient, deployment: &Deployment) -> Vec<Check> {
    let d = deployment;
    let mut checks = Vec::with_capacity(names::ALL.len());

    let rg = client
        .get(&d.resource_group_id(), api::RESOURCE_GROUPS)
        .await;
    checks.push(exists(names::RESOURCE_GROUP, "resource group", &rg));

    let account = client.get(&d.storage_account_id(), api::STORAGE).await;
    checks.push(exists(names::STORAGE_ACCOUNT, "storage account", &account));
    if let Err(e) = &account {
        let why = format!(
            "storage account {} is not available: {e}",
            d.storage_account
        );
        checks.push(Check::skipped(names::QUEUE, &why));
        checks.push(Check::skipped(names::TABLE, &why));
    } else {
        let queue = client.get(&d.queue_id(), api::STORAGE).await;
        checks.push(exists(names::QUEUE, "queue", &queue));
        let table = client.get(&d.table_id(), api::STORAGE_TABLES).await;
        checks.push(exists(names::TABLE, "table", &table));
    }

    let registry = client.get(&d.registry_id(), api::CONTAINER_REGISTRY).await;
    checks.push(exists(names::REGISTRY, "container registry", &registry));

    let aks_identity = client
        .get(&d.aks_identity_id(), api::MANAGED_IDENTITY)
        .await;
    checks.push(exists(
        names::AKS_IDENTITY,
        "managed identity",
        &aks_identity,
    ));

    let cluster = client.get(&d.cluster_id(), api::MANAGED_CLUSTERS).await;
    checks.push(exists(names::CLUSTER, "managed cluster", &cluster));
    let issuer = match &cluster {
        Ok(body) => {
            let id = d.cluster_id();
            checks.push(field_equals(
                names::NODE_PROVISIONING,
                &id,
                body,
                "properties.nodeProvisioningProfile.mode",
                &Value::from("Auto"),
            ));
            checks.push(field_equals(
                names::KEDA,
                &id,
                body,
                "properties.workloadAutoScalerProfile.keda.enabled",
                &Value::Bool(true),
            ));
            checks.push(field_equals(
                names::WORKLOAD_IDENTITY_ENABLED,
                &id,
                body,
                "properties.securityProfile.workloadIdentity.enabled",
                &Value::Bool(true),
            ));
            let (check, issuer) = oidc_issuer(&id, body);
            checks.push(check);
            checks.push(registry_attached(client, d, body, &registry).await);
            checks.push(system_pool_taint(&id, body));
            issuer
        }
        Err(e) => {
            let why = format!("managed cluster {} is not available: {e}", d.aks_cluster);
            for name in [
                names::NODE_PROVISIONING,
                names::KEDA,
                names::WORKLOAD_IDENTITY_ENABLED,
                names::OIDC_ISSUER,
                names::REGISTRY_ATTACHED,
                names::SYSTEM_POOL_TAINT,
            ] {
                checks.push(Check::skipped(name, &why));
            }
            Err(why)
        }
    };

    let workload = client
        .get(&d.workload_identity_id(), api::MANAGED_IDENTITY)
        .await;
    checks.push(exists(
        names::WORKLOAD_IDENTITY,
        "managed identity",
        &workload,
    ));
    match &workload {
        Ok(body) => match str_at(body, "properties.principalId") {
            Some(principal) => {
                let assignments = client
                    .list(
                        &format!(
                            "{}/providers/Microsoft.Authorization/roleAssignments",
                            d.subscription_scope()
                        ),
                        api::ROLE_ASSIGNMENTS,
                        &[("$filter", &format!("principalId eq '{principal}'"))],
                    )
                    .await;
                for (name, role, role_name) in [
                    (
                        names::QUEUE_ROLE,
                        api::STORAGE_QUEUE_DATA_CONTRIBUTOR,
                        "Storage Queue Data Contributor",
                    ),
                    (
                        names::TABLE_ROLE,
                        api::STORAGE_TABLE_DATA_CONTRIBUTOR,
                        "Storage Table Data Contributor",
                    ),
                ] {
                    checks.push(storage_role(
                        d,
                        principal,
                        &assignments,
                        name,
                        role,
                        role_name,
                    ));
                }
            }
            None => {
                let message = format!(
                    "managed identity {}: properties.principalId is missing",
                    d.workload_identity_id()
                );
                checks.push(Check::failed(names::QUEUE_ROLE, &message));
                checks.push(Check::failed(names::TABLE_ROLE, &message));
            }
        },
        Err(e) => {
            let why = format!(
                "workload identity {} is not available: {e}",
                d.workload_identity
            );
            checks.push(Check::skipped(names::QUEUE_ROLE, &why));
            checks.push(Check::skipped(names::TABLE_ROLE, &why));
        }
    }

    for (name, credential, subject) in [
        (
            names::APP_FEDERATED_CREDENTIAL,
            &d.federated_credential,
            d.app_subject(),
        ),
        (
            names::KEDA_FEDERATED_CREDENTIAL,
            &d.keda_credential,
            api::KEDA_OPERATOR_SUBJECT.to_owned(),
        ),
    ] {
        let check = if let Err(e) = &workload {
            Check::skipped(
                name,
                format!(
                    "workload identity {} is not available: {e}",
                    d.workload_identity
                ),
            )
        } else {
            let id = d.federated_credential_id(credential);
            let body = client.get(&id, api::MANAGED_IDENTITY).await;
            federated_credential(name, &id, &body, &subject, &issuer)
        };
        checks.push(check);
    }

    checks.push(nap_feature(client, d).await);
    checks
}

/// The value at a dotted path (`properties.a.b`).
fn at<'a>(body: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(body, |v, key| v.get(key))
}

pub(super) fn str_at<'a>(body: &'a Value, dotted: &str) -> Option<&'a str> {
    at(body, dotted).and_then(Value::as_str)
}

fn exists(name: &str, kind: &str, result: &Result<Value, ArmError>) -> Check {
    match result {
        Ok(body) => {
            let state = str_at(body, "properties.provisioningState");
            let label = body
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("(no name)");
            match state {
                Some(s) if !s.eq_ignore_ascii_case("Succeeded") => Check::failed(
                    name,
                    format!(
                        "{kind} {}: properties.provisioningState is {s:?}, expected \"Succeeded\"",
                        body.get("id").and_then(Value::as_str).unwrap_or(label)
                    ),
                ),
                Some(s) => Check::passed(name, format!("{kind} {label} (provisioningState {s})")),
                None => Check::passed(name, format!("{kind} {label}")),
            }
        }
        Err(ArmError::NotFound { resource, code, .. }) => Check::failed(
            name,
            format!("{kind} {resource} does not exist (HTTP 404, {code})"),
        ),
        Err(e) => Check::failed(name, format!("{kind} could not be read: {e}")),
    }
}

fn shown(value: Option<&Value>) -> String {
    match value {
        None => "missing".to_owned(),
        Some(v) => v.to_string(),
    }
}

fn field_equals(name: &str, id: &str, body: &Value, field: &str, expected: &Value) -> Check {
    let found = at(body, field);
    if found == Some(expected) {
        Check::passed(name, format!("{field} = {expected}"))
    } else {
        Check::failed(
            name,
            format!(
                "managed cluster {id}: {field} is {}, expected {expected}",
                shown(found)
            ),
        )
    }
}

fn oidc_issuer(id: &str, body: &Value) -> (Check, Result<String, String>) {
    let enabled = at(body, "properties.oidcIssuerProfile.enabled");
    let url = str_at(body, "properties.oidcIssuerProfile.issuerURL").filter(|u| !u.is_empty());
    match (enabled, url) {
        (Some(Value::Bool(true)), Some(url)) if url.starts_with("https://") => (
            Check::passed(names::OIDC_ISSUER, format!("issuerURL {url}")),
            Ok(url.to_owned()),
        ),
        (Some(Value::Bool(true)), url) => {
            let message = format!(
                "managed cluster {id}: properties.oidcIssuerProfile.issuerURL is {}, expected an https URL",
                url.map_or("missing".to_owned(), |u| format!("{u:?}"))
            );
            (Check::failed(names::OIDC_ISSUER, &message), Err(message))
        }
        (other, _) => {
            let message = format!(
                "managed cluster {id}: properties.oidcIssuerProfile.enabled is {}, expected true",
                shown(other)
            );
            (Check::failed(names::OIDC_ISSUER, &message), Err(message))
        }
    }
}

fn system_pool_taint(id: &str, body: &Value) -> Check {
    let name = names::SYSTEM_POOL_TAINT;
    let Some(pools) = at(body, "properties.agentPoolProfiles").and_then(Value::as_array) else {
        return Check::failed(
            name,
            format!("managed cluster {id}: properties.agentPoolProfiles is missing"),
        );
    };
    let system: Vec<&Value> = pools
        .iter()
        .filter(|p| p.get("mode").and_then(Value::as_str) == Some("System"))
        .collect();
    if system.is_empty() {
        return Check::failed(
            name,
            format!("managed cluster {id}: no agent pool with mode System in properties.agentPoolProfiles"),
        );
    }
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for pool in system {
        let pool_name = pool
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)");
        let taints: Vec<&str> = pool
            .get("nodeTaints")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if taints.contains(&api::SYSTEM_POOL_TAINT) {
            good.push(pool_name.to_owned());
        } else {
            bad.push(format!(
                "agent pool {pool_name:?} (mode System) nodeTaints is {:?}, expected it to contain {:?}",
                taints,
                api::SYSTEM_POOL_TAINT
            ));
        }
    }
    if bad.is_empty() {
        Check::passed(
            name,
            format!(
                "system pool(s) {} tainted {}",
                good.join(", "),
                api::SYSTEM_POOL_TAINT
            ),
        )
    } else {
        Check::failed(name, format!("managed cluster {id}: {}", bad.join("; ")))
    }
}

/// The role definition GUID at the end of a `roleDefinitionId`.
pub(super) fn role_guid(assignment: &Value) -> Option<&str> {
    str_at(assignment, "properties.roleDefinitionId").and_then(|id| id.rsplit('/').next())
}

fn same_scope(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

async fn registry_attached(
    client: &ArmClient,
    d: &Deployment,
    cluster: &Value,
    registry: &Result<Value, ArmError>,
) -> Check {
    let name = names::REGISTRY_ATTACHED;
    if let Err(e) = registry {
        return Check::skipped(
            name,
            format!(
                "container registry {} is not available: {e}",
                d.container_registry
            ),
        );
    }
    // The kubelet identity (what --attach-acr grants) and the cluster's own identities.
    let mut principals: Vec<(String, &str)> = Vec::new();
    if let Some(p) = str_at(
        cluster,
        "properties.identityProfile.kubeletidentity.objectId",
    ) {
        principals.push((p.to_owned(), "kubelet identity"));
    }
    if let Some(p) = str_at(cluster, "identity.principalId") {
        principals.push((p.to_owned(), "cluster identity"));
    }
    if let Some(map) = at(cluster, "identity.userAssignedIdentities").and_then(Value::as_object) {
        for v in map.values() {
            if let Some(p) = v.get("principalId").and_then(Value::as_str) {
                principals.push((p.to_owned(), "cluster identity"));
            }
        }
    }
    if principals.is_empty() {
        return Check::failed(
            name,
            format!(
                "managed cluster {}: neither properties.identityProfile.kubeletidentity.objectId nor identity.principalId is set",
                d.cluster_id()
            ),
        );
    }
    let registry_id = d.registry_id();
    let scope = format!("{registry_id}/providers/Microsoft.Authorization/roleAssignments");
    let assignments = match client
        .list(&scope, api::ROLE_ASSIGNMENTS, &[("$filter", "atScope()")])
        .await
    {
        Ok(a) => a,
        Err(e) => return Check::failed(name, format!("role assignments could not be read: {e}")),
    };
    for a in &assignments {
        let role = role_guid(a).unwrap_or_default();
        let principal = str_at(a, "properties.principalId").unwrap_or_default();
        let on = str_at(a, "properties.scope").unwrap_or_default();
        if role.eq_ignore_ascii_case(api::ACR_PULL) && same_scope(on, &registry_id) {
            if let Some((p, what)) = principals
                .iter()
                .find(|(p, _)| p.eq_ignore_ascii_case(principal))
            {
                return Check::passed(name, format!("AcrPull for the {what} {p} on {registry_id}"));
            }
        }
    }
    let wanted: Vec<String> = principals.iter().map(|(p, w)| format!("{w} {p}")).collect();
    Check::failed(
        name,
        format!(
            "container registry {registry_id}: no role assignment with roleDefinitionId …/{} (AcrPull) and properties.scope = the registry for the cluster's {} ({} assignment(s) seen)",
            api::ACR_PULL,
            wanted.join(" or "),
            assignments.len()
        ),
    )
}

fn storage_role(
    d: &Deployment,
    principal: &str,
    assignments: &Result<Vec<Value>, ArmError>,
    name: &str,
    role: &str,
    role_name: &str,
) -> Check {
    let assignments = match assignments {
        Ok(a) => a,
        Err(e) => return Check::failed(name, format!("role assignments could not be read: {e}")),
    };
    let account = d.storage_account_id();
    let matching: Vec<&Value> = assignments
        .iter()
        .filter(|a| role_guid(a).is_some_and(|g| g.eq_ignore_ascii_case(role)))
        .filter(|a| {
            str_at(a, "properties.principalId").is_some_and(|p| p.eq_ignore_ascii_case(principal))
        })
        .collect();
    if matching
        .iter()
        .any(|a| str_at(a, "properties.scope").is_some_and(|s| same_scope(s, &account)))
    {
        return Check::passed(
            name,
            format!("{role_name} for principal {principal} on {account}"),
        );
    }
    if matching.is_empty() {
        return Check::failed(
            name,
            format!(
                "storage account {account}: no {role_name} role assignment (roleDefinitionId …/{role}) for workload identity {} (principalId {principal})",
                d.workload_identity
            ),
        );
    }
    let scopes: Vec<String> = matching
        .iter()
        .map(|a| match str_at(a, "properties.scope") {
            Some(s) if !s.is_empty() => format!("{s:?}"),
            _ => "an empty scope".to_owned(),
        })
        .collect();
    Check::failed(
        name,
        format!(
            "storage account {account}: {role_name} for workload identity {} is assigned on the wrong scope: properties.scope is {}, expected the storage account (deploy.sh's unset $STORAGE_RG_NAME)",
            d.workload_identity,
            scopes.join(", ")
        ),
    )
}

fn federated_credential(
    name: &str,
    id: &str,
    body: &Result<Value, ArmError>,
    subject: &str,
    issuer: &Result<String, String>,
) -> Check {
    let body = match body {
        Ok(b) => b,
        Err(ArmError::NotFound { .. }) => {
            return Check::failed(
                name,
                format!("federated identity credential {id} does not exist"),
            )
        }
        Err(e) => {
            return Check::failed(
                name,
                format!("federated identity credential could not be read: {e}"),
            )
        }
    };
    let found_subject = str_at(body, "properties.subject");
    if found_subject != Some(subject) {
        return Check::failed(
            name,
            format!(
                "federated identity credential {id}: properties.subject is {}, expected {subject:?}",
                found_subject.map_or("missing".to_owned(), |s| format!("{s:?}"))
            ),
        );
    }
    let found_issuer = str_at(body, "properties.issuer");
    match issuer {
        Err(why) => Check::skipped(name, format!("subject is right, but the issuer cannot be compared: {why}")),
        Ok(expected) if found_issuer == Some(expected.as_str()) => {
            Check::passed(name, format!("subject {subject}, issuer {expected}"))
        }
        Ok(expected) => Check::failed(
            name,
            format!(
                "federated identity credential {id}: properties.issuer is {}, expected the cluster's OIDC issuer URL {expected:?}",
                found_issuer.map_or("missing".to_owned(), |s| format!("{s:?}"))
            ),
        ),
    }
}

async fn nap_feature(client: &ArmClient, d: &Deployment) -> Check {
    let name = names::NAP_FEATURE;
    let id = d.nap_feature_id();
    match client.get(&id, api::FEATURES).await {
        Ok(body) => match str_at(&body, "properties.state") {
            Some(state) if state.eq_ignore_ascii_case("Registered") => Check::passed(
                name,
                format!("feature {} state {state}", api::NAP_FEATURE_NAME),
            ),
            Some(state) if state.eq_ignore_ascii_case("NotSpecified") => Check::skipped(
                name,
                format!("ARM says feature {id} is not needed (properties.state {state})"),
            ),
            state => Check::failed(
                name,
                format!(
                    "feature {id}: properties.state is {}, expected \"Registered\"",
                    state.map_or("missing".to_owned(), |s| format!("{s:?}"))
                ),
            ),
        },
        Err(e)
            if e.is_not_found()
                || e.code()
                    .is_some_and(|c| c.to_ascii_lowercase().contains("notfound")) =>
        {
            Check::skipped(
                name,
                format!("ARM does not know the feature, so it is not needed: {e}"),
            )
        }
        Err(e) => Check::failed(name, format!("feature could not be read: {e}")),
    }
}
