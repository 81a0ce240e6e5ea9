//! The sample's Kubernetes manifests as templates (`fixtures/manifests/*.yaml`), rendered with
//! the same variables as the sample's scripts (`${AQS_TARGET_NAMESPACE}`, …) and applied with
//! server-side apply through kube-rs. A variable the template needs and the configuration lacks
//! is an error that names both.

use std::collections::BTreeMap;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use crate::config::Config;
use edw_model::run::{FlowSettings, RunNames};

/// The embedded templates: (file name, text).
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "namespace.yaml",
        include_str!("../../../fixtures/manifests/namespace.yaml"),
    ),
    (
        "serviceaccount.yaml",
        include_str!("../../../fixtures/manifests/serviceaccount.yaml"),
    ),
    (
        "default-pool.yaml",
        include_str!("../../../fixtures/manifests/default-pool.yaml"),
    ),
    (
        "consumer-deployment.yaml",
        include_str!("../../../fixtures/manifests/consumer-deployment.yaml"),
    ),
    (
        "scaledobject.yaml",
        include_str!("../../../fixtures/manifests/scaledobject.yaml"),
    ),
    (
        "storage-secret.yaml",
        include_str!("../../../fixtures/manifests/storage-secret.yaml"),
    ),
    (
        "consumer-deployment-connection.yaml",
        include_str!("../../../fixtures/manifests/consumer-deployment-connection.yaml"),
    ),
    (
        "scaledobject-connection.yaml",
        include_str!("../../../fixtures/manifests/scaledobject-connection.yaml"),
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
    #[error("{kind} {name} already exists and this run did not create it: it is left untouched (a run creates objects only in names of its own; another run or the team owns this one)")]
    AlreadyExists { kind: String, name: String },
    #[error("applying {kind} {name}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The consumer's image: `EDW_CONSUMER_IMAGE` when set (kind loads a local build), else the
/// sample's `<AZURE_CONTAINER_REGISTRY_NAME>.azurecr.io/aws2azure/aqs-consumer`.
pub fn consumer_image(config: &Config) -> String {
    let registry = config
        .get("AZURE_CONTAINER_REGISTRY_NAME")
        .unwrap_or("acraksdemo");
    std::env::var("EDW_CONSUMER_IMAGE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("{registry}.azurecr.io/aws2azure/aqs-consumer"))
}

/// `IfNotPresent` for an image given with `EDW_CONSUMER_IMAGE` (kind loads it onto the
/// nodes; `Always` would look for it in a registry), else the walkthrough's `Always`.
pub fn image_pull_policy() -> &'static str {
    if std::env::var("EDW_CONSUMER_IMAGE").is_ok_and(|v| !v.is_empty()) {
        "IfNotPresent"
    } else {
        "Always"
    }
}

/// The variables the manifests are rendered with (the sample's script variables): `names`
/// and `settings` of the run, the account, registry and image from `config`, the workload
/// identity's `client_id` (a placeholder when unknown) and the connection string pods use
/// (empty where they use workload identity).
pub fn template_vars(
    config: &Config,
    names: &RunNames,
    settings: &FlowSettings,
    client_id: Option<&str>,
    pods_connection: Option<&str>,
) -> BTreeMap<String, String> {
    let account = config
        .get("AZURE_STORAGE_ACCOUNT_NAME")
        .unwrap_or("devstoreaccount1");
    let registry = config
        .get("AZURE_CONTAINER_REGISTRY_NAME")
        .unwrap_or("acraksdemo");
    let client_id = client_id.unwrap_or("00000000-0000-0000-0000-000000000000");
    let s = settings;
    [
        ("AQS_TARGET_NAMESPACE", names.namespace.clone()),
        ("AQS_TARGET_DEPLOYMENT", names.deployment.clone()),
        ("SERVICE_ACCOUNT", names.service_account.clone()),
        ("SCALED_OBJECT_NAME", names.scaled_object.clone()),
        (
            "TRIGGER_AUTHENTICATION_NAME",
            names.trigger_authentication.clone(),
        ),
        ("STORAGE_SECRET_NAME", names.storage_secret.clone()),
        ("NODEPOOL_NAME", names.nodepool.clone()),
        ("AZURE_QUEUE_NAME", names.queue.clone()),
        ("AZURE_TABLE_NAME", names.table.clone()),
        ("AZURE_STORAGE_ACCOUNT_NAME", account.to_owned()),
        ("AZURE_CONTAINER_REGISTRY_NAME", registry.to_owned()),
        ("CONSUMER_IMAGE", consumer_image(config)),
        ("workloadManagedIdentityClientId", client_id.to_owned()),
        ("MIN_REPLICA_COUNT", s.min_replicas.to_string()),
        ("MAX_REPLICA_COUNT", s.max_replicas.to_string()),
        ("POLLING_INTERVAL", s.polling_interval.to_string()),
        ("COOLDOWN_PERIOD", s.cooldown_period.to_string()),
        ("QUEUE_LENGTH", s.queue_length.to_string()),
        (
            "ACTIVATION_QUEUE_LENGTH",
            s.activation_queue_length.to_string(),
        ),
        (
            "STORAGE_CONNECTION_STRING",
            pods_connection.unwrap_or_default().to_owned(),
        ),
        ("IMAGE_PULL_POLICY", image_pull_policy().to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
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
        "ConfigMap" => ("configmaps", true),
        "Job" => ("jobs", true),
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

pub use edw_model::run::RUN_ID_LABEL;
/// The annotation that says which tool created an object, for people reading the cluster.
pub const CREATED_BY_ANNOTATION: &str = "edw-conformance/created-by";

/// What marks a run's objects as its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub run_id: String,
    /// The run's NodePool, when it creates one: its consumer pods select it and tolerate its
    /// taint, so that the nodes it grows are the run's alone.
    pub nodepool: Option<String>,
}

impl Ownership {
    /// The taint on the run's NodePool (and the toleration of its consumer pods).
    fn taint(&self) -> Value {
        serde_json::json!({"key": RUN_ID_LABEL, "value": self.run_id, "effect": "NoSchedule"})
    }
}

fn insert_at(object: &mut Value, pointer: &str, key: &str, value: Value) {
    let mut at = &mut *object;
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        if !at.get(part).is_some_and(Value::is_object) {
            at[part] = serde_json::json!({});
        }
        at = &mut at[part];
    }
    at[key] = value;
}

fn push_at(object: &mut Value, pointer: &str, key: &str, value: Value) {
    insert_at(object, pointer, key, Value::Null);
    let list = object
        .pointer_mut(&format!("{pointer}/{key}"))
        .expect("just inserted");
    match list.as_array_mut() {
        Some(items) => items.push(value),
        None => *list = Value::Array(vec![value]),
    }
}

/// Marks `objects` as the run's own: the run-id label and annotations on each; the consumer
/// Deployment's selector and pods carry the run id too (so it never adopts another
/// Deployment's pods in a shared namespace), and, when the run has a NodePool, its pods select
/// that pool and tolerate its taint; the NodePool (the captured walkthrough pool) gets the
/// run's name, loses the labels and annotations of the Helm release that manages AKS's own
/// pool, and carries the run's label and taint on the nodes it creates.
pub fn stamp_ownership(objects: &mut [Value], owner: &Ownership) {
    let id = Value::String(owner.run_id.clone());
    for object in objects.iter_mut() {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        if kind == "NodePool" {
            if let Some(pool) = &owner.nodepool {
                object["metadata"]["name"] = Value::String(pool.clone());
            }
            if let Some(meta) = object["metadata"].as_object_mut() {
                for field in ["labels", "annotations"] {
                    if let Some(map) = meta.get_mut(field).and_then(Value::as_object_mut) {
                        map.retain(|k, _| {
                            !(k.starts_with("meta.helm.sh/")
                                || k.starts_with("helm.toolkit.fluxcd.io/")
                                || k.starts_with("karpenter.sh/nodepool-hash")
                                || k == "app.kubernetes.io/managed-by")
                        });
                    }
                }
            }
            insert_at(
                object,
                "/spec/template/metadata/labels",
                RUN_ID_LABEL,
                id.clone(),
            );
            push_at(object, "/spec/template/spec", "taints", owner.taint());
        }
        insert_at(object, "/metadata/labels", RUN_ID_LABEL, id.clone());
        insert_at(object, "/metadata/annotations", RUN_ID_LABEL, id.clone());
        insert_at(
            object,
            "/metadata/annotations",
            CREATED_BY_ANNOTATION,
            Value::String(format!(
                "edw-conformance run {}: deleted by its cleanup",
                owner.run_id
            )),
        );
        if kind == "Deployment" {
            insert_at(
                object,
                "/spec/selector/matchLabels",
                RUN_ID_LABEL,
                id.clone(),
            );
            insert_at(
                object,
                "/spec/template/metadata/labels",
                RUN_ID_LABEL,
                id.clone(),
            );
            if let Some(pool) = &owner.nodepool {
                insert_at(
                    object,
                    "/spec/template/spec/nodeSelector",
                    "karpenter.sh/nodepool",
                    Value::String(pool.clone()),
                );
                let mut toleration = owner.taint();
                toleration["operator"] = Value::String("Equal".to_owned());
                push_at(object, "/spec/template/spec", "tolerations", toleration);
            }
        }
    }
}

/// The walkthrough's NodePool is `karpenter.sh/v1beta1`, which AKS Node Autoprovisioning no
/// longer serves (an apply of v1beta1 gets 404): Karpenter's own conversion to v1, shared with
/// the twin (which serves only v1 unless told otherwise, like NAP today).
pub use edw_twin::conversion::nodepool_as_v1;

/// Creates `objects` in order (never updates one): an object that already exists is an
/// [`ManifestError::AlreadyExists`] and is left as it is.
pub async fn create(
    client: &kube::Client,
    objects: &[Value],
) -> Result<Vec<Applied>, ManifestError> {
    let mut created = Vec::new();
    for object in objects {
        let reference = reference_of(object)?;
        let (resource, _) =
            resource_of(&reference.api_version, &reference.kind).ok_or_else(|| {
                ManifestError::UnknownKind {
                    kind: reference.kind.clone(),
                }
            })?;
        let api = api_for(client, &resource, reference.namespace.as_deref());
        let typed: DynamicObject =
            serde_json::from_value(object.clone()).map_err(|e| ManifestError::Yaml {
                template: format!("{} {}", reference.kind, reference.name),
                reason: e.to_string(),
            })?;
        match api.create(&Default::default(), &typed).await {
            Ok(_) => created.push(reference),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                return Err(ManifestError::AlreadyExists {
                    kind: reference.kind,
                    name: reference.name,
                })
            }
            Err(source) => {
                return Err(ManifestError::Apply {
                    kind: reference.kind,
                    name: reference.name,
                    source,
                })
            }
        }
    }
    Ok(created)
}

fn reference_of(object: &Value) -> Result<Applied, ManifestError> {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (api_version, kind, name) = (text("/apiVersion"), text("/kind"), text("/metadata/name"));
    let (_, namespaced) = resource_of(&api_version, &kind)
        .ok_or_else(|| ManifestError::UnknownKind { kind: kind.clone() })?;
    let namespace = namespaced.then(|| {
        object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned()
    });
    Ok(Applied {
        api_version,
        kind,
        namespace,
        name,
    })
}

/// What the cleanup of one ledger entry found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// It carried the run's id and was deleted.
    Deleted,
    /// It was not there.
    AlreadyGone,
    /// It exists without the run's id (someone else's, or made before the run): left alone.
    NotOurs { run_id: Option<String> },
}

/// Deletes `object` only if it still carries `run_id` (the label [`RUN_ID_LABEL`]), with the
/// uid it was read with as a precondition, so an object replaced in between is never deleted.
pub async fn delete_owned(
    client: &kube::Client,
    object: &Applied,
    run_id: &str,
) -> Result<Removal, ManifestError> {
    let (resource, _) = resource_of(&object.api_version, &object.kind).ok_or_else(|| {
        ManifestError::UnknownKind {
            kind: object.kind.clone(),
        }
    })?;
    let api = api_for(client, &resource, object.namespace.as_deref());
    let failed = |source| ManifestError::Apply {
        kind: object.kind.clone(),
        name: object.name.clone(),
        source,
    };
    let Some(found) = api.get_opt(&object.name).await.map_err(failed)? else {
        return Ok(Removal::AlreadyGone);
    };
    let owner = found
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(RUN_ID_LABEL))
        .cloned();
    if run_id.is_empty() || owner.as_deref() != Some(run_id) {
        return Ok(Removal::NotOurs { run_id: owner });
    }
    let params = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: found.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&object.name, &params).await {
        Ok(_) => Ok(Removal::Deleted),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Removal::AlreadyGone),
        // 409: the uid precondition failed, the object was replaced by someone else's.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Ok(Removal::NotOurs { run_id: None })
        }
        Err(source) => Err(failed(source)),
    }
}

/// Server-side applies `objects` (field manager `edw`), in order.
pub async fn apply(
    client: &kube::Client,
    objects: &[Value],
) -> Result<Vec<Applied>, ManifestError> {
    let mut applied = Vec::new();
    for object in objects {
        let Applied {
            api_version,
            kind,
            namespace,
            name,
        } = reference_of(object)?;
        let (resource, _) = resource_of(&api_version, &kind)
            .ok_or_else(|| ManifestError::UnknownKind { kind: kind.clone() })?;
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
            ("SCALED_OBJECT_NAME", "aws2az-queue-scaleobj"),
            ("TRIGGER_AUTHENTICATION_NAME", "keda-az-credentials"),
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

    #[test]
    fn the_walkthroughs_v1beta1_pool_becomes_the_same_pool_in_v1() {
        let mut pool = render("default-pool.yaml", &vars(&[])).unwrap().remove(0);
        assert_eq!(pool["apiVersion"], "karpenter.sh/v1beta1");
        nodepool_as_v1(&mut pool);
        assert_eq!(pool["apiVersion"], "karpenter.sh/v1");
        let spec = &pool["spec"];
        assert_eq!(
            spec["disruption"]["consolidationPolicy"],
            "WhenEmptyOrUnderutilized"
        );
        assert_eq!(spec["disruption"]["consolidateAfter"], "0s");
        assert!(spec["disruption"].get("expireAfter").is_none());
        assert_eq!(spec["template"]["spec"]["expireAfter"], "Never");
        assert_eq!(
            spec["template"]["spec"]["nodeClassRef"],
            serde_json::json!({"name": "default", "group": "karpenter.azure.com", "kind": "AKSNodeClass"})
        );
        assert_eq!(spec["disruption"]["budgets"][0]["nodes"], "100%");
        // Requirements are the same in both versions.
        assert_eq!(
            spec["template"]["spec"]["requirements"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn stamping_marks_every_object_and_ties_the_consumer_to_the_runs_pool() {
        let mut objects = vec![
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "aqs-app-k3x9q2", "namespace": "aqs-demo"},
                "spec": {"selector": {"matchLabels": {"app": "aqs-reader"}},
                         "template": {"metadata": {"labels": {"app": "aqs-reader"}}, "spec": {}}}}),
            render("default-pool.yaml", &vars(&[])).unwrap().remove(0),
        ];
        let owner = Ownership {
            run_id: "k3x9q2".into(),
            nodepool: Some("edw-k3x9q2".into()),
        };
        stamp_ownership(&mut objects, &owner);
        for object in &objects {
            assert_eq!(object["metadata"]["labels"][RUN_ID_LABEL], "k3x9q2");
            assert_eq!(object["metadata"]["annotations"][RUN_ID_LABEL], "k3x9q2");
        }
        let deployment = &objects[0];
        assert_eq!(
            deployment["spec"]["selector"]["matchLabels"][RUN_ID_LABEL],
            "k3x9q2"
        );
        assert_eq!(
            deployment["spec"]["template"]["spec"]["nodeSelector"]["karpenter.sh/nodepool"],
            "edw-k3x9q2"
        );
        assert_eq!(
            deployment["spec"]["template"]["spec"]["tolerations"][0]["value"],
            "k3x9q2"
        );
        let pool = &objects[1];
        assert_eq!(pool["metadata"]["name"], "edw-k3x9q2");
        assert!(pool["metadata"]["labels"]
            .get("app.kubernetes.io/managed-by")
            .is_none());
        assert!(pool["metadata"]["annotations"]
            .get("meta.helm.sh/release-name")
            .is_none());
        assert_eq!(
            pool["spec"]["template"]["spec"]["taints"][0]["key"],
            RUN_ID_LABEL
        );
        assert_eq!(
            pool["spec"]["template"]["metadata"]["labels"][RUN_ID_LABEL],
            "k3x9q2"
        );
    }
}
