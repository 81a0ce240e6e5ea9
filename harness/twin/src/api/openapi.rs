//! The OpenAPI documents, as kube-apiserver publishes them, from the upstream Kubernetes
//! v1.33.1 document (`fixtures/openapi/kubernetes-v1.33.1.swagger.json`, provenance beside it;
//! the schema of v1.33.2, which the twin reports): `/openapi/v2` is the upstream paths of the
//! served resources (and subresources and verbs), the CRDs' paths made the way kube-apiserver
//! makes them (from the upstream Deployment's operations), and every definition they reach,
//! the CRDs' schemas named `sh.keda.v1alpha1.ScaledObject` with their
//! `x-kubernetes-group-version-kind`. `/openapi/v3/{api/v1|apis/g/v}` is the same, one group
//! version a document, converted to OpenAPI 3.0 as kube-openapi converts it (`$ref` with
//! siblings wrapped in `allOf`, parameters with a `schema`, bodies under `content`,
//! IntOrString and Quantity as `oneOf`), the CRDs' schemas as the CRDs declare them.
//! `/openapi/v3` lists the group versions with a hash of each document.
//!
//! The upstream JSON is parsed once and the documents are rendered once a registry.
//! [`unknown_fields`] walks an object of a built-in kind against its upstream definition,
//! for `fieldValidation`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::resources::{Registry, ResourceType};

/// The upstream document, verbatim.
const SWAGGER: &str = include_str!("../../../../fixtures/openapi/kubernetes-v1.33.1.swagger.json");

const DEFINITIONS: &str = "#/definitions/";
const PARAMETERS: &str = "#/parameters/";
const SCHEMAS: &str = "#/components/schemas/";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// metrics-server v0.8.0's definitions for `metrics.k8s.io/v1beta1` (and meta/v1 Duration),
/// converted from its generated OpenAPI by `ci/metrics-openapi.py` (provenance in
/// fixtures/openapi/PROVENANCE.md), for the metrics API the twin serves in its place.
const METRICS_DEFINITIONS: &str =
    include_str!("../../../../fixtures/openapi/metrics-server-v0.8.0.definitions.json");

fn metrics_definitions() -> Map<String, Value> {
    serde_json::from_str::<Value>(METRICS_DEFINITIONS)
        .ok()
        .and_then(|d| d.get("definitions").and_then(Value::as_object).cloned())
        .unwrap_or_default()
}

/// The read-only paths metrics-server serves (get and list; v2 path items).
fn metrics_paths() -> Vec<(String, Value)> {
    let (group, version) = (super::metrics::GROUP, super::metrics::VERSION);
    let prefix = format!("/apis/{group}/{version}");
    let def = |kind: &str| format!("{DEFINITIONS}io.k8s.metrics.pkg.apis.metrics.{version}.{kind}");
    let path_param = |name: &str| json!({"name": name, "in": "path", "required": true, "type": "string", "uniqueItems": true});
    let get = |kind: &str, returns: &str, action: &str, operation: &str| {
        json!({"get": {
            "operationId": operation,
            "produces": ["application/json"],
            "schemes": ["https"],
            "tags": [format!("metrics_{version}")],
            "responses": {"200": {"description": "OK", "schema": {"$ref": def(returns)}}},
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind},
        }})
    };
    let with_params = |mut item: Value, params: Vec<Value>| {
        item["parameters"] = Value::Array(params);
        item
    };
    vec![
        (
            format!("{prefix}/nodes"),
            get(
                "NodeMetrics",
                "NodeMetricsList",
                "list",
                "listMetricsV1beta1NodeMetrics",
            ),
        ),
        (
            format!("{prefix}/nodes/{{name}}"),
            with_params(
                get(
                    "NodeMetrics",
                    "NodeMetrics",
                    "get",
                    "readMetricsV1beta1NodeMetrics",
                ),
                vec![path_param("name")],
            ),
        ),
        (
            format!("{prefix}/pods"),
            get(
                "PodMetrics",
                "PodMetricsList",
                "list",
                "listMetricsV1beta1PodMetricsForAllNamespaces",
            ),
        ),
        (
            format!("{prefix}/namespaces/{{namespace}}/pods"),
            with_params(
                get(
                    "PodMetrics",
                    "PodMetricsList",
                    "list",
                    "listMetricsV1beta1NamespacedPodMetrics",
                ),
                vec![path_param("namespace")],
            ),
        ),
        (
            format!("{prefix}/namespaces/{{namespace}}/pods/{{name}}"),
            with_params(
                get(
                    "PodMetrics",
                    "PodMetrics",
                    "get",
                    "readMetricsV1beta1NamespacedPodMetrics",
                ),
                vec![path_param("name"), path_param("namespace")],
            ),
        ),
    ]
}

/// The upstream document, parsed once.
pub fn upstream() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        // The file is part of the build: a broken one fails every OpenAPI test at once.
        serde_json::from_str(SWAGGER).expect("fixtures/openapi swagger.json parses")
    })
}

fn upstream_definitions() -> &'static Map<String, Value> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    upstream()
        .get("definitions")
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// The upstream definition name of each (group, version, kind).
fn definition_index() -> &'static HashMap<(String, String, String), String> {
    static INDEX: OnceLock<HashMap<(String, String, String), String>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index = HashMap::new();
        for (name, def) in upstream_definitions() {
            for gvk in def
                .get("x-kubernetes-group-version-kind")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let text = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                index
                    .entry((text("group"), text("version"), text("kind")))
                    .or_insert_with(|| name.clone());
            }
        }
        index
    })
}

/// The definition name of a CRD kind, as kube-apiserver names it: the group reversed, the
/// version, the kind (`sh.keda.v1alpha1.ScaledObject`).
pub fn crd_definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// The definition of `rt`'s kind: upstream's for a built-in kind, the CRD's for a custom one.
pub fn definition_name(rt: &ResourceType) -> Option<String> {
    if rt.custom {
        return Some(crd_definition_name(&rt.group, &rt.version, &rt.kind));
    }
    definition_index()
        .get(&(rt.group.clone(), rt.version.clone(), rt.kind.clone()))
        .cloned()
}

/// The fields of `object` (a built-in kind's) that its upstream definition does not have, as
/// kube-apiserver's strict decoding names them (`spec.template.spec.containers[0].bogus`).
pub fn unknown_fields(rt: &ResourceType, object: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Some(def) = definition_name(rt).and_then(|n| upstream_definitions().get(&n)) {
        walk_unknown(def, object, "", &mut unknown);
    }
    unknown
}

fn resolve(schema: &Value) -> &Value {
    let mut schema = schema;
    while let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(DEFINITIONS))
    {
        match upstream_definitions().get(name) {
            Some(def) => schema = def,
            None => break,
        }
    }
    schema
}

fn walk_unknown(schema: &Value, value: &Value, path: &str, unknown: &mut Vec<String>) {
    let schema = resolve(schema);
    let field = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, v) in map {
                    match properties.get(key) {
                        Some(sub) => walk_unknown(sub, v, &field(key), unknown),
                        None => unknown.push(field(key)),
                    }
                }
            } else if let Some(sub @ Value::Object(_)) = schema.get("additionalProperties") {
                for (key, v) in map {
                    walk_unknown(sub, v, &field(key), unknown);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    walk_unknown(sub, v, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// What an upstream path addresses.
#[derive(Debug, PartialEq)]
enum Target {
    /// `/api/`, `/apis/`, `/version/`.
    Root,
    /// `/apis/{group}/`.
    Group(String),
    /// `/api/v1/`, `/apis/{group}/{version}/`.
    GroupVersion(String, String),
    /// A resource or one of its subresources.
    Resource {
        group: String,
        version: String,
        plural: String,
        subresource: Option<String>,
    },
    Other,
}

fn target(path: &str) -> Target {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api" | "apis" | "version"] => return Target::Root,
        ["apis", group] => return Target::Group((*group).to_owned()),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Target::Other,
    };
    let rest = match rest {
        ["watch", rest @ ..] => rest,
        rest => rest,
    };
    let rest = match rest {
        ["namespaces", "{namespace}", rest @ ..] if !rest.is_empty() => rest,
        rest => rest,
    };
    match rest {
        [] => Target::GroupVersion(group.to_owned(), version.to_owned()),
        [plural, rest @ ..] => Target::Resource {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: (*plural).to_owned(),
            subresource: rest.get(1).map(|s| (*s).to_owned()),
        },
    }
}

/// The verb an operation's `x-kubernetes-action` is.
fn verb_of(action: &str) -> &str {
    match action {
        "post" => "create",
        "put" => "update",
        "watchlist" => "watch",
        other => other,
    }
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

/// The upstream path item, kept if the twin serves it, with only the operations it serves.
fn served_path_item(registry: &Registry, path: &str, item: &Value) -> Option<(String, Value)> {
    let gv_served = |g: &str, v: &str| {
        registry
            .group_versions()
            .iter()
            .any(|(rg, rv)| rg == g && rv == v)
            || super::discovery::SUBRESOURCE_ONLY_GROUPS.contains(&(g, v))
    };
    match target(path) {
        Target::Root => Some((group_version_key("", ""), item.clone())),
        Target::Group(g) => registry
            .types
            .iter()
            .any(|t| t.group == g)
            .then(|| (group_version_key(&g, ""), item.clone())),
        Target::GroupVersion(g, v) => {
            gv_served(&g, &v).then(|| (group_version_key(&g, &v), item.clone()))
        }
        Target::Resource {
            group,
            version,
            plural,
            subresource,
        } => {
            let rt = registry.find(&group, &version, &plural)?;
            let served = match subresource.as_deref() {
                None => true,
                Some("status") => rt.status_subresource,
                Some("scale") => rt.scale_subresource.is_some(),
                Some("eviction") => plural == "pods" && group.is_empty(),
                Some(_) => false,
            };
            if !served {
                return None;
            }
            let mut item = item.clone();
            if subresource.is_none() {
                let verbs = super::discovery::verbs(rt);
                let object = item.as_object_mut()?;
                object.retain(|key, op| {
                    !METHODS.contains(&key.as_str())
                        || op
                            .get("x-kubernetes-action")
                            .and_then(Value::as_str)
                            .is_some_and(|a| verbs.contains(&verb_of(a)))
                });
                if !object.keys().any(|k| METHODS.contains(&k.as_str())) {
                    return None;
                }
            }
            Some((group_version_key(&group, &version), item))
        }
        Target::Other => None,
    }
}

/// The `/openapi/v3` document a path belongs to (`api/v1`, `apis/apps/v1`); `""` for the
/// root paths, `apis/{group}` for a group's.
fn group_version_key(group: &str, version: &str) -> String {
    match (group, version) {
        ("", "") => String::new(),
        ("", v) => format!("api/{v}"),
        (g, "") => format!("apis/{g}"),
        (g, v) => format!("apis/{g}/{v}"),
    }
}

/// Replaces, in every string of `value`, each `(from, to)` (whole strings in `refs`,
/// substrings in `words`), and upstream Deployment's group-version-kind with `kind`'s.
fn rewrite(value: &mut Value, refs: &[(String, String)], words: &[(String, String)], kind: &Value) {
    if let Some(map) = value.as_object_mut() {
        if let Some(gvk) = map.get_mut("x-kubernetes-group-version-kind") {
            if gvk.get("kind").and_then(Value::as_str) == Some("Deployment") {
                *gvk = kind.clone();
            }
        }
    }
    match value {
        Value::String(s) => {
            if let Some((_, to)) = refs.iter().find(|(from, _)| from == s) {
                *s = to.clone();
            } else {
                for (from, to) in words {
                    if s.contains(from.as_str()) {
                        *s = s.replace(from.as_str(), to);
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, refs, words, kind)),
        Value::Object(map) => map.values_mut().for_each(|v| rewrite(v, refs, words, kind)),
        _ => {}
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// A CRD kind's paths, made as kube-apiserver makes them: the same operations, parameters and
/// responses as a built-in kind's (upstream's Deployment, for a namespaced kind), its own
/// names, definitions and group-version-kind.
fn crd_paths(rt: &ResourceType) -> Vec<(String, Value)> {
    let paths = upstream().get("paths").and_then(Value::as_object);
    let Some(paths) = paths else {
        return Vec::new();
    };
    let def = crd_definition_name(&rt.group, &rt.version, &rt.kind);
    let camel = |s: &str| {
        s.split(['.', '-'])
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<String>()
    };
    let scope = if rt.namespaced { "Namespaced" } else { "" };
    let refs = vec![
        (
            format!("{DEFINITIONS}io.k8s.api.apps.v1.Deployment"),
            format!("{DEFINITIONS}{def}"),
        ),
        (
            format!("{DEFINITIONS}io.k8s.api.apps.v1.DeploymentList"),
            format!("{DEFINITIONS}{def}List"),
        ),
        (
            "apps_v1".to_owned(),
            format!("{}_{}", lower_first(&camel(&rt.group)), rt.version),
        ),
    ];
    let kind = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let gv = format!("{}{}", camel(&rt.group), camel(&rt.version));
    let words = vec![
        (
            "AppsV1NamespacedDeployment".to_owned(),
            format!("{gv}{scope}{}", rt.kind),
        ),
        (
            "AppsV1DeploymentForAllNamespaces".to_owned(),
            format!("{gv}{}ForAllNamespaces", rt.kind),
        ),
        ("Deployment".to_owned(), rt.kind.clone()),
    ];
    let template = "/apis/apps/v1/namespaces/{namespace}/deployments";
    let prefix = format!("/apis/{}/{}", rt.group, rt.version);
    let base = if rt.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural)
    } else {
        format!("{prefix}/{}", rt.plural)
    };
    let mut made = Vec::new();
    let mut subpaths = vec![("", ""), ("/{name}", "/{name}")];
    if rt.status_subresource {
        subpaths.push(("/{name}/status", "/{name}/status"));
    }
    if rt.scale_subresource.is_some() {
        subpaths.push(("/{name}/scale", "/{name}/scale"));
    }
    for (from, to) in subpaths {
        let Some(item) = paths.get(&format!("{template}{from}")) else {
            continue;
        };
        let mut item = item.clone();
        if !rt.namespaced {
            if let Some(params) = item.get_mut("parameters").and_then(Value::as_array_mut) {
                params.retain(|p| {
                    !p.get("$ref")
                        .and_then(Value::as_str)
                        .is_some_and(|r| r.starts_with(&format!("{PARAMETERS}namespace-")))
                });
            }
        }
        rewrite(&mut item, &refs, &words, &kind);
        made.push((format!("{base}{to}"), item));
    }
    if rt.namespaced {
        if let Some(item) = paths.get("/apis/apps/v1/deployments") {
            let mut item = item.clone();
            rewrite(&mut item, &refs, &words, &kind);
            made.push((format!("{prefix}/{}", rt.plural), item));
        }
    }
    made
}

/// The group-version-kind extension of a kind.
fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "version": version, "kind": kind}])
}

/// A CRD kind's schema as OpenAPI v2 has it (kube-apiserver drops what v2 cannot say:
/// `nullable`, and the types and `anyOf` of int-or-string fields), with `metadata` an
/// ObjectMeta.
fn crd_v2_definition(rt: &ResourceType) -> Value {
    fn to_v2(schema: &mut Value) {
        match schema {
            Value::Object(map) => {
                map.remove("nullable");
                if map.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
                    map.remove("anyOf");
                    map.remove("type");
                }
                map.values_mut().for_each(to_v2);
            }
            Value::Array(items) => items.iter_mut().for_each(to_v2),
            _ => {}
        }
    }
    let mut schema = crd_v3_schema(rt, DEFINITIONS);
    to_v2(&mut schema);
    schema
}

/// A CRD kind's schema as the CRD declares it, with `metadata` an ObjectMeta and the
/// group-version-kind; `$ref`s under `prefix`.
fn crd_v3_schema(rt: &ResourceType, prefix: &str) -> Value {
    let mut schema = rt
        .schema
        .clone()
        .unwrap_or_else(|| json!({"type": "object"}));
    let meta = json!({
        "allOf": [{"$ref": format!("{prefix}{OBJECT_META}")}],
        "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    });
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert("metadata".into(), meta);
    }
    schema["x-kubernetes-group-version-kind"] = gvk(&rt.group, &rt.version, &rt.kind);
    schema
}

/// A CRD kind's list.
fn crd_list_definition(rt: &ResourceType, prefix: &str) -> Value {
    let def = crd_definition_name(&rt.group, &rt.version, &rt.kind);
    json!({
        "description": format!("{}List is a list of {}", rt.kind, rt.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"},
            "items": {"type": "array", "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", rt.plural), "items": {"$ref": format!("{prefix}{def}")}},
            "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"},
            "metadata": {"allOf": [{"$ref": format!("{prefix}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")}], "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"},
        },
        "x-kubernetes-group-version-kind": gvk(&rt.group, &rt.version, &format!("{}List", rt.kind)),
    })
}

/// Every `$ref` under `value` that starts with `prefix`, without it.
fn refs_in(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix(prefix) {
                            out.insert(name.to_owned());
                        }
                    }
                    _ => refs_in(v, prefix, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, prefix, out)),
        _ => {}
    }
}

/// `roots` and every definition they reach.
fn closure(roots: BTreeSet<String>, definitions: &Map<String, Value>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.into_iter().collect();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(def) = definitions.get(&name) {
            let mut next = BTreeSet::new();
            refs_in(def, DEFINITIONS, &mut next);
            todo.extend(next.into_iter().filter(|n| !seen.contains(n)));
        }
    }
    seen
}

/// A v2 schema as OpenAPI 3.0 (kube-openapi's conversion): `$ref`s to `#/components/schemas/`,
/// a `$ref` with siblings wrapped in `allOf`.
fn schema_v3(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            let reference = map.get("$ref").and_then(Value::as_str).map(|r| {
                let name = r.strip_prefix(DEFINITIONS).unwrap_or(r);
                format!("{SCHEMAS}{name}")
            });
            for (key, v) in map {
                match key.as_str() {
                    "$ref" => {}
                    "properties" | "patternProperties" | "definitions" => {
                        let props = v
                            .as_object()
                            .map(|p| p.iter().map(|(k, s)| (k.clone(), schema_v3(s))).collect())
                            .unwrap_or_default();
                        out.insert(key.clone(), Value::Object(props));
                    }
                    "items" | "additionalProperties" | "not" => {
                        out.insert(key.clone(), schema_v3(v));
                    }
                    "allOf" | "anyOf" | "oneOf" => {
                        out.insert(
                            key.clone(),
                            Value::Array(
                                v.as_array()
                                    .map(|a| a.iter().map(schema_v3).collect())
                                    .unwrap_or_default(),
                            ),
                        );
                    }
                    _ => {
                        out.insert(key.clone(), v.clone());
                    }
                }
            }
            if let Some(reference) = reference {
                if out.is_empty() {
                    out.insert("$ref".into(), json!(reference));
                } else {
                    out.insert("allOf".into(), json!([{"$ref": reference}]));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// An upstream definition as OpenAPI 3.0 has it: IntOrString and Quantity say the types they
/// take (`oneOf`), as kube-openapi's v3 builder writes them.
fn definition_v3(name: &str, def: &Value) -> Value {
    let mut out = schema_v3(def);
    let one_of = match name {
        INT_OR_STRING => Some(json!([{"type": "integer"}, {"type": "string"}])),
        QUANTITY => Some(json!([{"type": "string"}, {"type": "number"}])),
        _ => None,
    };
    if let (Some(one_of), Some(map)) = (one_of, out.as_object_mut()) {
        map.remove("type");
        map.insert("oneOf".into(), one_of);
    }
    out
}

/// A v2 parameter, `$ref` resolved.
fn parameter(p: &Value, parameters: &Map<String, Value>) -> Value {
    p.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(PARAMETERS))
        .and_then(|name| parameters.get(name))
        .unwrap_or(p)
        .clone()
}

/// A v2 non-body parameter as v3: the type under `schema`.
fn parameter_v3(p: &Value) -> Value {
    let mut out = Map::new();
    let mut schema = Map::new();
    for (key, v) in p.as_object().into_iter().flatten() {
        match key.as_str() {
            "type" | "uniqueItems" | "format" | "items" | "default" | "enum" => {
                schema.insert(key.clone(), v.clone());
            }
            _ => {
                out.insert(key.clone(), v.clone());
            }
        }
    }
    out.insert("schema".into(), Value::Object(schema));
    Value::Object(out)
}

/// A v2 path item as v3.
fn path_item_v3(item: &Value, parameters: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (key, v) in item.as_object().into_iter().flatten() {
        if key == "parameters" {
            let params: Vec<Value> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| parameter_v3(&parameter(p, parameters)))
                .collect();
            out.insert(key.clone(), Value::Array(params));
            continue;
        }
        if !METHODS.contains(&key.as_str()) {
            out.insert(key.clone(), v.clone());
            continue;
        }
        let mime_list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_else(|| vec!["*/*".to_owned()])
        };
        let content = |schema: &Value, mimes: &[String]| -> Value {
            let schema = schema_v3(schema);
            Value::Object(
                mimes
                    .iter()
                    .map(|m| (m.clone(), json!({"schema": schema})))
                    .collect(),
            )
        };
        let mut op = Map::new();
        for (k, field) in v.as_object().into_iter().flatten() {
            match k.as_str() {
                "consumes" | "produces" | "schemes" => {}
                "parameters" => {
                    let mut params = Vec::new();
                    for p in field.as_array().into_iter().flatten() {
                        let p = parameter(p, parameters);
                        if p.get("in").and_then(Value::as_str) == Some("body") {
                            let mut body = json!({"content": content(p.get("schema").unwrap_or(&json!({})), &mime_list("consumes"))});
                            if p.get("required") == Some(&json!(true)) {
                                body["required"] = json!(true);
                            }
                            op.insert("requestBody".into(), body);
                        } else {
                            params.push(parameter_v3(&p));
                        }
                    }
                    op.insert("parameters".into(), Value::Array(params));
                }
                "responses" => {
                    let mut responses = Map::new();
                    for (code, r) in field.as_object().into_iter().flatten() {
                        let mut response = json!({"description": r.get("description").cloned().unwrap_or(json!(""))});
                        if let Some(schema) = r.get("schema") {
                            response["content"] = content(schema, &mime_list("produces"));
                        }
                        responses.insert(code.clone(), response);
                    }
                    op.insert("responses".into(), Value::Object(responses));
                }
                _ => {
                    op.insert(k.clone(), field.clone());
                }
            }
        }
        out.insert(key.clone(), Value::Object(op));
    }
    Value::Object(out)
}

/// The rendered documents of one registry.
pub struct Documents {
    /// `/openapi/v2`, JSON.
    pub v2: Bytes,
    /// `/openapi/v3`.
    pub v3_index: Bytes,
    /// `/openapi/v3/{key}` by key (`api/v1`, `apis/apps/v1`).
    pub v3: BTreeMap<String, Bytes>,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents")
            .field("v2_bytes", &self.v2.len())
            .field("v3", &self.v3.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// FNV-1a of `bytes`, as the index's hash.
fn hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

impl Documents {
    /// Renders every document `registry` serves.
    pub fn build(registry: &Registry) -> Documents {
        let doc = upstream();
        let empty = Map::new();
        let parameters = doc
            .get("parameters")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        // Paths, by the v3 document they belong to.
        let mut paths: BTreeMap<String, (String, Value)> = BTreeMap::new();
        for (path, item) in doc
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let Some((key, item)) = served_path_item(registry, path, item) {
                paths.insert(path.clone(), (key, item));
            }
        }
        let mut definitions = upstream_definitions().clone();
        definitions.extend(metrics_definitions());
        let metrics_key = group_version_key(super::metrics::GROUP, super::metrics::VERSION);
        for (path, item) in metrics_paths() {
            paths.insert(path, (metrics_key.clone(), item));
        }
        let mut crd_schemas: BTreeMap<String, Value> = BTreeMap::new();
        for rt in registry.types.iter().filter(|t| t.custom) {
            let key = group_version_key(&rt.group, &rt.version);
            for (path, item) in crd_paths(rt) {
                paths.insert(path, (key.clone(), item));
            }
            let name = crd_definition_name(&rt.group, &rt.version, &rt.kind);
            definitions.insert(name.clone(), crd_v2_definition(rt));
            definitions.insert(format!("{name}List"), crd_list_definition(rt, DEFINITIONS));
            crd_schemas.insert(name.clone(), crd_v3_schema(rt, SCHEMAS));
            crd_schemas.insert(format!("{name}List"), crd_list_definition(rt, SCHEMAS));
        }
        // The definitions and parameters a set of paths reaches.
        let reached = |items: &mut dyn Iterator<Item = &Value>| {
            let mut params = BTreeSet::new();
            let mut roots = BTreeSet::new();
            for item in items {
                refs_in(item, PARAMETERS, &mut params);
                refs_in(item, DEFINITIONS, &mut roots);
            }
            for p in &params {
                if let Some(p) = parameters.get(p) {
                    refs_in(p, DEFINITIONS, &mut roots);
                }
            }
            (params, closure(roots, &definitions))
        };

        let (params, defs) = reached(&mut paths.values().map(|(_, item)| item));
        let mut v2 = Map::new();
        v2.insert("swagger".into(), json!("2.0"));
        v2.insert(
            "info".into(),
            json!({"title": "Kubernetes", "version": super::discovery::GIT_VERSION}),
        );
        v2.insert(
            "paths".into(),
            Value::Object(
                paths
                    .iter()
                    .map(|(p, (_, item))| (p.clone(), item.clone()))
                    .collect(),
            ),
        );
        let pick = |names: &BTreeSet<String>, from: &Map<String, Value>| -> Value {
            Value::Object(
                names
                    .iter()
                    .filter_map(|n| from.get(n).map(|v| (n.clone(), v.clone())))
                    .collect(),
            )
        };
        v2.insert("definitions".into(), pick(&defs, &definitions));
        v2.insert("parameters".into(), pick(&params, parameters));
        for key in ["security", "securityDefinitions"] {
            if let Some(v) = doc.get(key) {
                v2.insert(key.into(), v.clone());
            }
        }
        let v2 = Bytes::from(serde_json::to_vec(&Value::Object(v2)).unwrap_or_default());

        let mut v3 = BTreeMap::new();
        let mut index = Map::new();
        let metrics_group_version = (
            super::metrics::GROUP.to_owned(),
            super::metrics::VERSION.to_owned(),
        );
        for (g, v) in registry
            .group_versions()
            .into_iter()
            .chain([metrics_group_version])
        {
            let key = group_version_key(&g, &v);
            let mine: Vec<(&String, &Value)> = paths
                .iter()
                .filter(|(_, (k, _))| *k == key)
                .map(|(p, (_, item))| (p, item))
                .collect();
            let (_, mut defs) = reached(&mut mine.iter().map(|(_, item)| *item));
            // Every kind of the group version, even one no path names.
            for rt in registry
                .types
                .iter()
                .filter(|t| t.group == g && t.version == v)
            {
                if let Some(name) = definition_name(rt) {
                    defs.extend(closure(BTreeSet::from([name]), &definitions));
                }
            }
            let schemas: Map<String, Value> = defs
                .iter()
                .filter_map(|n| {
                    let schema = match crd_schemas.get(n) {
                        Some(s) => s.clone(),
                        None => definition_v3(n, definitions.get(n)?),
                    };
                    Some((n.clone(), schema))
                })
                .collect();
            let document = json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": super::discovery::GIT_VERSION},
                "paths": mine.iter().map(|(p, item)| ((*p).clone(), path_item_v3(item, parameters))).collect::<Map<String, Value>>(),
                "components": {"schemas": schemas},
            });
            let bytes = Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
            index.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", hash(&bytes))}),
            );
            v3.insert(key, bytes);
        }
        let v3_index =
            Bytes::from(serde_json::to_vec(&json!({"paths": index})).unwrap_or_default());
        Documents { v2, v3_index, v3 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            target("/api/v1/"),
            Target::GroupVersion("".into(), "v1".into())
        );
        assert_eq!(target("/apis/apps/"), Target::Group("apps".into()));
        assert_eq!(
            target("/api/v1/namespaces/{namespace}/pods/{name}/eviction"),
            Target::Resource {
                group: "".into(),
                version: "v1".into(),
                plural: "pods".into(),
                subresource: Some("eviction".into())
            }
        );
        assert_eq!(
            target("/api/v1/namespaces/{name}/status"),
            Target::Resource {
                group: "".into(),
                version: "v1".into(),
                plural: "namespaces".into(),
                subresource: Some("status".into())
            }
        );
        assert_eq!(
            target("/apis/apps/v1/watch/namespaces/{namespace}/deployments"),
            Target::Resource {
                group: "apps".into(),
                version: "v1".into(),
                plural: "deployments".into(),
                subresource: None
            }
        );
    }

    #[test]
    fn unknown_fields_are_named_by_path() {
        let registry = Registry::standard().unwrap();
        let rt = registry.find("apps", "v1", "deployments").unwrap();
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "bogusMeta": 1},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i", "bogus": true,
                "resources": {"requests": {"cpu": "1"}}}]}}}});
        assert_eq!(
            unknown_fields(rt, &deployment),
            vec![
                "metadata.bogusMeta",
                "spec.template.spec.containers[0].bogus"
            ]
        );
    }

    #[test]
    fn documents_hold_the_served_paths_and_reached_definitions() {
        let registry = Registry::standard().unwrap();
        let docs = Documents::build(&registry);
        let v2: Value = serde_json::from_slice(&docs.v2).unwrap();
        let paths = v2["paths"].as_object().unwrap();
        assert!(paths.contains_key("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"));
        assert!(paths
            .contains_key("/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects/{name}"));
        assert!(paths.contains_key("/apis/karpenter.sh/v1/nodepools/{name}"));
        assert!(paths.contains_key("/apis/batch/v1/namespaces/{namespace}/jobs"));
        assert!(paths.contains_key("/apis/batch/v1/namespaces/{namespace}/jobs/{name}/status"));
        assert!(!paths.contains_key("/apis/batch/v1/namespaces/{namespace}/cronjobs"));
        assert!(!paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/exec"));
        let np = &paths["/apis/karpenter.sh/v1/nodepools/{name}"]["patch"];
        assert_eq!(np["operationId"], "patchKarpenterShV1NodePool");
        assert_eq!(np["x-kubernetes-group-version-kind"]["kind"], "NodePool");
        let defs = v2["definitions"].as_object().unwrap();
        assert!(defs.contains_key("io.k8s.api.core.v1.Container"));
        assert!(defs.contains_key("sh.keda.v1alpha1.ScaledObject"));
        assert!(defs.contains_key("io.k8s.api.batch.v1.Job"));
        assert!(!defs.contains_key("io.k8s.api.batch.v1.CronJob"));
        let apps: Value = serde_json::from_slice(&docs.v3["apis/apps/v1"]).unwrap();
        let schemas = apps["components"]["schemas"].as_object().unwrap();
        assert_eq!(
            schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["template"]["allOf"][0]
                ["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodTemplateSpec"
        );
        let patch =
            &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["schema"]["type"] == "string"));
        assert!(patch["requestBody"]["content"]["application/merge-patch+json"].is_object());
        let index: Value = serde_json::from_slice(&docs.v3_index).unwrap();
        assert!(index["paths"]["apis/keda.sh/v1alpha1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/apis/keda.sh/v1alpha1?hash="));
    }
}
