//! The sample's Kubernetes manifests as templates (`fixtures/manifests/*.yaml`), rendered with
//! the same variables as the sample's scripts (`${AQS_TARGET_NAMESPACE}`, …) and applied with
//! server-side apply through kube-rs. A variable the template needs and the configuration lacks
//! is an error that names both.

use std::collections::BTreeMap;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// The embedded templates: (file name, text).
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "namespace.yaml",
        include_str!("../../fixtures/manifests/namespace.yaml"),
    ),
    (
        "serviceaccount.yaml",
        include_str!("../../fixtures/manifests/serviceaccount.yaml"),
    ),
    (
        "default-pool.yaml",
        include_str!("../../fixtures/manifests/default-pool.yaml"),
    ),
    (
        "consumer-deployment.yaml",
        include_str!("../../fixtures/manifests/consumer-deployment.yaml"),
    ),
    (
        "scaledobject.yaml",
        include_str!("../../fixtures/manifests/scaledobject.yaml"),
    ),
    (
        "storage-secret.yaml",
        include_str!("../../fixtures/manifests/storage-secret.yaml"),
    ),
    (
        "consumer-deployment-connection.yaml",
        include_str!("../../fixtures/manifests/consumer-deployment-connection.yaml"),
    ),
    (
        "scaledobject-connection.yaml",
        include_str!("../../fixtures/manifests/scaledobject-connection.yaml"),
    ),
];

/// Why a manifest could not be rendered or applied.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("template {template} line {line} uses ${{{variable}}}, which is not set")]
    MissingVariable {
        template: String,
        variable: String,
        line: usize,
    },
    #[error("template {template} line {line}: unclosed ${{")]
    Unclosed { template: String, line: usize },
    #[error("template {0} is not one of the embedded manifests")]
    UnknownTemplate(String),
    #[error("template {template} is not valid YAML after rendering: {reason}")]
    Yaml { template: String, reason: String },
    #[error("{kind} is not a kind the suite applies")]
    UnknownKind { kind: String },
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Replaces every `${NAME}` in `text` with its value.
pub fn render_text(
    template: &str,
    text: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, ManifestError> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| ManifestError::Unclosed {
                template: template.to_owned(),
                line: index + 1,
            })?;
            let name = &after[..end];
            let value = vars
                .get(name)
                .ok_or_else(|| ManifestError::MissingVariable {
                    template: template.to_owned(),
                    variable: name.to_owned(),
                    line: index + 1,
                })?;
            out.push_str(value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    Ok(out)
}

/// Renders the embedded template `name` into its objects.
pub fn render(name: &str, vars: &BTreeMap<String, String>) -> Result<Vec<Value>, ManifestError> {
    let text = TEMPLATES
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, text)| *text)
        .ok_or_else(|| ManifestError::UnknownTemplate(name.to_owned()))?;
    let rendered = render_text(name, text, vars)?;
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&rendered).map_err(|e| ManifestError::Yaml {
            template: name.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(documents
        .into_iter()
        .filter(|d| !d.is_null())
        .map(strip_server_fields)
        .collect())
}

/// Drops fields a server sets (the captured default-pool.yaml carries them).
fn strip_server_fields(mut object: Value) -> Value {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "creationTimestamp",
            "resourceVersion",
            "uid",
            "generation",
            "managedFields",
        ] {
            meta.remove(field);
        }
    }
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    object
}

/// (plural, namespaced) of the kinds the suite applies.
fn resource_of(api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
    let (plural, namespaced) = match kind {
        "Namespace" => ("namespaces", false),
        "ServiceAccount" => ("serviceaccounts", true),
        "Deployment" => ("deployments", true),
        "ScaledObject" => ("scaledobjects", true),
        "TriggerAuthentication" => ("triggerauthentications", true),
        "NodePool" => ("nodepools", false),
        "Secret" => ("secrets", true),
        _ => return None,
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Some((ApiResource::from_gvk_with_plural(&gvk, plural), namespaced))
}

/// A reference to an applied object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

fn api_for(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// The references `apply` would record for `objects` (written to the run's ledger before
/// they are applied, so a crashed run can be cleaned).
pub fn planned(objects: &[Value]) -> Vec<Applied> {
    objects
        .iter()
        .filter_map(|object| {
            let api_version = object.get("apiVersion").and_then(Value::as_str)?.to_owned();
            let kind = object.get("kind").and_then(Value::as_str)?.to_owned();
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)?
                .to_owned();
            let (_, namespaced) = resource_of(&api_version, &kind)?;
            let namespace = namespaced.then(|| {
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_owned()
            });
            Some(Applied {
                api_version,
                kind,
                namespace,
                name,
            })
        })
        .collect()
}

/// Server-side applies `objects` (field manager `edw`), in order.
pub async fn apply(
    client: &kube::Client,
    objects: &[Value],
) -> Result<Vec<Applied>, ManifestError> {
    let mut applied = Vec::new();
    for object in objects {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let (resource, namespaced) = resource_of(&api_version, &kind)
            .ok_or_else(|| ManifestError::UnknownKind { kind: kind.clone() })?;
        let namespace = namespaced.then(|| {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned()
        });
        let api = api_for(client, &resource, namespace.as_deref());
        let params = PatchParams::apply("edw").force();
        api.patch(&name, &params, &Patch::Apply(object))
            .await
            .map_err(|source| ManifestError::Apply {
                kind: kind.clone(),
                name: name.clone(),
                source,
            })?;
        applied.push(Applied {
            api_version,
            kind,
            namespace,
            name,
        });
    }
    Ok(applied)
}

/// Deletes an applied object; a missing one is fine. Returns whether it existed.
pub async fn delete(client: &kube::Client, object: &Applied) -> Result<bool, ManifestError> {
    let (resource, _) = resource_of(&object.api_version, &object.kind).ok_or_else(|| {
        ManifestError::UnknownKind {
            kind: object.kind.clone(),
        }
    })?;
    let api = api_for(client, &resource, object.namespace.as_deref());
    match api.delete(&object.name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => Err(ManifestError::Apply {
            kind: object.kind.clone(),
            name: object.name.clone(),
            source,
        }),
    }
}

/// True while the object exists.
pub async fn exists(client: &kube::Client, object: &Applied) -> Result<bool, ManifestError> {
    let (resource, _) = resource_of(&object.api_version, &object.kind).ok_or_else(|| {
        ManifestError::UnknownKind {
            kind: object.kind.clone(),
        }
    })?;
    let api = api_for(client, &resource, object.namespace.as_deref());
    match api.get_opt(&object.name).await {
        Ok(found) => Ok(found.is_some()),
        Err(source) => Err(ManifestError::Apply {
            kind: object.kind.clone(),
            name: object.name.clone(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_missing_variable_names_template_line_and_variable() {
        let error = render("namespace.yaml", &vars(&[]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "template namespace.yaml line 5 uses ${AQS_TARGET_NAMESPACE}, which is not set"
        );
    }

    #[test]
    fn the_scaled_object_renders_with_the_walkthrough_values() {
        let v = vars(&[
            ("AQS_TARGET_NAMESPACE", "aqs-demo"),
            ("AQS_TARGET_DEPLOYMENT", "aqs-app"),
            ("AZURE_QUEUE_NAME", "aws2azmsgs"),
            ("AZURE_STORAGE_ACCOUNT_NAME", "storaksdemo"),
            ("MIN_REPLICA_COUNT", "0"),
            ("MAX_REPLICA_COUNT", "15"),
            ("POLLING_INTERVAL", "30"),
            ("COOLDOWN_PERIOD", "10"),
            ("QUEUE_LENGTH", "5"),
            ("ACTIVATION_QUEUE_LENGTH", "20"),
            ("workloadManagedIdentityClientId", "abc"),
        ]);
        let objects = render("scaledobject.yaml", &v).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["spec"]["maxReplicaCount"], 15);
        assert_eq!(
            objects[0]["spec"]["triggers"][0]["metadata"]["activationQueueLength"],
            "20"
        );
        assert_eq!(objects[1]["spec"]["podIdentity"]["identityId"], "abc");
        let pool = render("default-pool.yaml", &v).unwrap();
        assert!(pool[0]["metadata"].get("uid").is_none());
    }
}
