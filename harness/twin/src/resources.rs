//! The resource types the twin serves: built-in Kubernetes kinds and the KEDA and Karpenter
//! CRDs (loaded from the verbatim CRD files in `fixtures/crds/`), with what discovery, tables
//! and validation need: group, version, kind, plural, scope, short names, subresources and
//! printer columns.

use serde_json::{json, Value};

/// A printer column (`kubectl get`), as CRDs declare them.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub column_type: String,
    pub json_path: String,
    pub priority: i64,
    pub description: String,
}

/// One served resource.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource.
    pub status_subresource: bool,
    /// Has a `/scale` subresource: (specReplicasPath, statusReplicasPath, labelSelectorPath).
    pub scale_subresource: Option<(String, String, Option<String>)>,
    /// Columns for `kubectl get` (the name column is implicit).
    pub printer_columns: Vec<PrinterColumn>,
    /// The CRD's openAPIV3Schema, for validating objects.
    pub schema: Option<Value>,
    /// True for CRD-defined types.
    pub custom: bool,
    /// Which version objects of this group/plural are stored as (served versions share storage).
    pub storage_version: String,
}

impl ResourceType {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key of this type: objects of every served version share it.
    pub fn storage_key(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// The verbatim CRD files, embedded.
pub const CRD_FILES: &[(&str, &str)] = &[
    (
        "keda.sh_scaledobjects.yaml",
        include_str!("../../../fixtures/crds/keda.sh_scaledobjects.yaml"),
    ),
    (
        "keda.sh_triggerauthentications.yaml",
        include_str!("../../../fixtures/crds/keda.sh_triggerauthentications.yaml"),
    ),
    (
        "karpenter.sh_nodepools.yaml",
        include_str!("../../../fixtures/crds/karpenter.sh_nodepools.yaml"),
    ),
    (
        "karpenter.sh_nodepools.v1beta1.yaml",
        include_str!("../../../fixtures/crds/karpenter.sh_nodepools.v1beta1.yaml"),
    ),
    (
        "karpenter.sh_nodeclaims.yaml",
        include_str!("../../../fixtures/crds/karpenter.sh_nodeclaims.yaml"),
    ),
];

/// Every resource the twin serves.
#[derive(Debug, Clone)]
pub struct Registry {
    pub types: Vec<ResourceType>,
    /// The CRD objects themselves (served as apiextensions.k8s.io/v1).
    pub crds: Vec<Value>,
}

fn col(name: &str, column_type: &str, json_path: &str, priority: i64) -> PrinterColumn {
    PrinterColumn {
        name: name.to_owned(),
        column_type: column_type.to_owned(),
        json_path: json_path.to_owned(),
        priority,
        description: String::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short_names: &[&str],
    status: bool,
    scale: bool,
    columns: Vec<PrinterColumn>,
) -> ResourceType {
    ResourceType {
        group: group.to_owned(),
        version: version.to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: if matches!(
            plural,
            "pods" | "deployments" | "replicasets" | "horizontalpodautoscalers" | "jobs"
        ) {
            vec!["all".to_owned()]
        } else {
            Vec::new()
        },
        status_subresource: status,
        scale_subresource: scale.then(|| {
            (
                ".spec.replicas".to_owned(),
                ".status.replicas".to_owned(),
                Some(".status.selector".to_owned()),
            )
        }),
        printer_columns: columns,
        schema: None,
        custom: false,
        storage_version: version.to_owned(),
    }
}

/// Why the registry could not be built (a broken embedded CRD is a build defect).
#[derive(Debug, thiserror::Error)]
#[error("CRD {file}: {reason}")]
pub struct RegistryError {
    pub file: String,
    pub reason: String,
}

/// The CRD file that serves NodePools as `karpenter.sh/v1beta1`, only when asked
/// ([`Registry::with_nodepool_v1beta1`]).
const NODEPOOL_V1BETA1_CRD: &str = "karpenter.sh_nodepools.v1beta1.yaml";

impl Registry {
    /// The built-in kinds plus the embedded CRDs, NodePools in `karpenter.sh/v1` only, as AKS
    /// Node Autoprovisioning serves them since Karpenter 1.4.
    pub fn standard() -> Result<Registry, RegistryError> {
        Registry::build(false)
    }

    /// [`Registry::standard`], with NodePools also served as `karpenter.sh/v1beta1` (an older
    /// NAP): both versions are one resource, stored as v1.
    pub fn with_nodepool_v1beta1() -> Result<Registry, RegistryError> {
        Registry::build(true)
    }

    /// The registry a twin with these parameters serves.
    pub fn for_params(params: &crate::params::TwinParams) -> Result<Registry, RegistryError> {
        Registry::build(params.serve_nodepool_v1beta1)
    }

    fn build(serve_nodepool_v1beta1: bool) -> Result<Registry, RegistryError> {
        let age = col("Age", "date", ".metadata.creationTimestamp", 0);
        let mut types = vec![
            builtin(
                "",
                "v1",
                "Namespace",
                "namespaces",
                false,
                &["ns"],
                true,
                false,
                vec![col("Status", "string", ".status.phase", 0), age.clone()],
            ),
            builtin(
                "",
                "v1",
                "Pod",
                "pods",
                true,
                &["po"],
                true,
                false,
                vec![
                    col("Ready", "string", ".status.containerStatuses", 0),
                    col("Status", "string", ".status.phase", 0),
                    col(
                        "Restarts",
                        "integer",
                        ".status.containerStatuses[0].restartCount",
                        0,
                    ),
                    age.clone(),
                    col("IP", "string", ".status.podIP", 1),
                    col("Node", "string", ".spec.nodeName", 1),
                ],
            ),
            builtin(
                "",
                "v1",
                "Node",
                "nodes",
                false,
                &["no"],
                true,
                false,
                vec![
                    col("Status", "string", ".status.conditions", 0),
                    col("Roles", "string", ".metadata.labels", 0),
                    age.clone(),
                    col("Version", "string", ".status.nodeInfo.kubeletVersion", 0),
                    col(
                        "Instance-Type",
                        "string",
                        ".metadata.labels.node\\.kubernetes\\.io/instance-type",
                        1,
                    ),
                ],
            ),
            builtin(
                "",
                "v1",
                "Event",
                "events",
                true,
                &["ev"],
                false,
                false,
                vec![
                    col("Last Seen", "date", ".lastTimestamp", 0),
                    col("Type", "string", ".type", 0),
                    col("Reason", "string", ".reason", 0),
                    col("Object", "string", ".involvedObject.name", 0),
                    col("Message", "string", ".message", 0),
                ],
            ),
            builtin(
                "events.k8s.io",
                "v1",
                "Event",
                "events",
                true,
                &["ev"],
                false,
                false,
                vec![
                    col("Last Seen", "date", ".eventTime", 0),
                    col("Type", "string", ".type", 0),
                    col("Reason", "string", ".reason", 0),
                    col("Object", "string", ".regarding.name", 0),
                    col("Note", "string", ".note", 0),
                ],
            ),
            builtin(
                "",
                "v1",
                "ServiceAccount",
                "serviceaccounts",
                true,
                &["sa"],
                false,
                false,
                vec![age.clone()],
            ),
            builtin(
                "",
                "v1",
                "ConfigMap",
                "configmaps",
                true,
                &["cm"],
                false,
                false,
                vec![age.clone()],
            ),
            builtin(
                "",
                "v1",
                "Secret",
                "secrets",
                true,
                &[],
                false,
                false,
                vec![col("Type", "string", ".type", 0), age.clone()],
            ),
            builtin(
                "apps",
                "v1",
                "Deployment",
                "deployments",
                true,
                &["deploy"],
                true,
                true,
                vec![
                    col("Ready", "string", ".status.readyReplicas", 0),
                    col("Up-to-date", "integer", ".status.updatedReplicas", 0),
                    col("Available", "integer", ".status.availableReplicas", 0),
                    age.clone(),
                ],
            ),
            builtin(
                "apps",
                "v1",
                "ReplicaSet",
                "replicasets",
                true,
                &["rs"],
                true,
                true,
                vec![
                    col("Desired", "integer", ".spec.replicas", 0),
                    col("Current", "integer", ".status.replicas", 0),
                    col("Ready", "integer", ".status.readyReplicas", 0),
                    age.clone(),
                ],
            ),
            // Served for the node's DaemonSet pods' owner (`kube-system/node-daemons`, made at
            // startup): `kubectl drain --ignore-daemonsets` looks their owner up.
            builtin(
                "apps",
                "v1",
                "DaemonSet",
                "daemonsets",
                true,
                &["ds"],
                true,
                false,
                vec![
                    col("Desired", "integer", ".status.desiredNumberScheduled", 0),
                    col("Current", "integer", ".status.currentNumberScheduled", 0),
                    col("Ready", "integer", ".status.numberReady", 0),
                    age.clone(),
                ],
            ),
            // Run to completion by the Job controller (`controllers::jobs`): the in-cluster
            // load, and `kubectl create job`.
            builtin(
                "batch",
                "v1",
                "Job",
                "jobs",
                true,
                &[],
                true,
                false,
                vec![
                    col("Status", "string", ".status.conditions", 0),
                    col("Completions", "string", ".status.succeeded", 0),
                    col("Duration", "string", ".status.completionTime", 0),
                    age.clone(),
                ],
            ),
            builtin(
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
                true,
                &["hpa"],
                true,
                false,
                vec![
                    col("Reference", "string", ".spec.scaleTargetRef.name", 0),
                    col("Targets", "string", ".status.currentMetrics", 0),
                    col("MinPods", "integer", ".spec.minReplicas", 0),
                    col("MaxPods", "integer", ".spec.maxReplicas", 0),
                    col("Replicas", "integer", ".status.currentReplicas", 0),
                    age.clone(),
                ],
            ),
            builtin(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
                &["crd", "crds"],
                true,
                false,
                vec![col("Created At", "date", ".metadata.creationTimestamp", 0)],
            ),
        ];
        // Answered, never stored (`api::access_review`).
        types.extend(crate::api::access_review::review_types().into_iter().map(
            |(kind, plural)| {
                builtin(
                    crate::api::access_review::GROUP,
                    "v1",
                    kind,
                    plural,
                    false,
                    &[],
                    false,
                    false,
                    Vec::new(),
                )
            },
        ));
        let mut crds = Vec::new();
        for (file, text) in CRD_FILES
            .iter()
            .filter(|(file, _)| serve_nodepool_v1beta1 || *file != NODEPOOL_V1BETA1_CRD)
        {
            let fail = |reason: String| RegistryError {
                file: (*file).to_owned(),
                reason,
            };
            let crd: Value = serde_saphyr::from_str(text).map_err(|e| fail(e.to_string()))?;
            types.extend(types_of_crd(&crd).map_err(fail)?);
            crds.push(crd);
        }
        // The v1beta1 and v1 NodePool CRDs describe one resource: merge them into one CRD
        // object for `kubectl get crd`, and store both versions under one key.
        merge_nodepool_crds(&mut crds);
        for t in types.iter_mut().filter(|t| t.custom) {
            t.storage_version = if t.plural == "nodepools" {
                "v1".to_owned()
            } else {
                t.version.clone()
            };
        }
        Ok(Registry { types, crds })
    }

    /// The type served at `group`/`version` with plural `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// The type for `apiVersion` and `kind`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
    }

    /// Every served (group, version) pair, in registry order.
    pub fn group_versions(&self) -> Vec<(String, String)> {
        let mut seen: Vec<(String, String)> = Vec::new();
        for t in &self.types {
            let gv = (t.group.clone(), t.version.clone());
            if !seen.contains(&gv) {
                seen.push(gv);
            }
        }
        seen
    }
}

fn types_of_crd(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = crd.get("spec").ok_or("no spec")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let group = text(spec.get("group")).ok_or("no spec.group")?;
    let names = spec.get("names").ok_or("no spec.names")?;
    let kind = text(names.get("kind")).ok_or("no spec.names.kind")?;
    let plural = text(names.get("plural")).ok_or("no spec.names.plural")?;
    let singular = text(names.get("singular")).unwrap_or_else(|| kind.to_lowercase());
    let list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = list(names.get("shortNames"));
    let categories = list(names.get("categories"));
    let namespaced = spec.get("scope").and_then(Value::as_str) == Some("Namespaced");
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("no spec.versions")?;
    let mut types = Vec::new();
    for version in versions {
        if version.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let name = text(version.get("name")).ok_or("a version without a name")?;
        let subresources = version.get("subresources");
        let scale = subresources.and_then(|s| s.get("scale")).map(|scale| {
            (
                text(scale.get("specReplicasPath")).unwrap_or_default(),
                text(scale.get("statusReplicasPath")).unwrap_or_default(),
                text(scale.get("labelSelectorPath")),
            )
        });
        let printer_columns = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|columns| {
                columns
                    .iter()
                    .map(|c| PrinterColumn {
                        name: text(c.get("name")).unwrap_or_default(),
                        column_type: text(c.get("type")).unwrap_or_else(|| "string".into()),
                        json_path: text(c.get("jsonPath")).unwrap_or_default(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        description: text(c.get("description")).unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        types.push(ResourceType {
            group: group.clone(),
            version: name.clone(),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            status_subresource: subresources.and_then(|s| s.get("status")).is_some(),
            scale_subresource: scale,
            printer_columns,
            schema: version.pointer("/schema/openAPIV3Schema").cloned(),
            custom: true,
            storage_version: name,
        });
    }
    Ok(types)
}

fn merge_nodepool_crds(crds: &mut Vec<Value>) {
    let is_nodepools = |c: &Value| {
        c.pointer("/metadata/name").and_then(Value::as_str) == Some("nodepools.karpenter.sh")
    };
    let positions: Vec<usize> = crds
        .iter()
        .enumerate()
        .filter(|(_, c)| is_nodepools(c))
        .map(|(i, _)| i)
        .collect();
    if positions.len() != 2 {
        return;
    }
    let beta = crds.remove(positions[1]);
    let mut beta_versions = beta
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in &mut beta_versions {
        // v1 is the storage version; v1beta1 is served alongside it.
        v["storage"] = json!(false);
    }
    if let Some(versions) = crds[positions[0]]
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    {
        versions.extend(beta_versions);
    }
}
