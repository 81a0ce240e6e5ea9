//! Every object the twin serves against the schema the twin itself publishes: a virtual-clock
//! twin runs the worked example's burst (KEDA activates, the HPA scales, Karpenter makes
//! NodeClaims and nodes, pods run), then the test walks discovery (`/api/v1`, every
//! `/apis/{group}/{version}`), lists every listable resource, and checks each object against its
//! kind's schema in the twin's `/openapi/v3` document of its group version, `$ref`s resolved:
//! required fields present, no field the schema does not have, types (object, array, string,
//! integer, number, boolean; int-or-string; `oneOf`/`anyOf`/`allOf`), enums, `date-time`
//! strings that parse as RFC 3339 and Quantity strings in Kubernetes' quantity syntax. Every
//! violation is reported with the object's kind, namespace/name and the field's path.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use edw_twin::api::ApiServer;
use edw_twin::engine::Engine;
use edw_twin::params::TwinParams;
use edw_twin::queue::LoadProfile;
use edw_twin::sample::{deploy, ScalingConfig};
use http::Request;
use serde_json::Value;

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

async fn get(api: &ApiServer, path: &str) -> Value {
    let request = Request::get(path)
        .header("accept", "application/json")
        .body(Bytes::new())
        .expect("request");
    let response = api.handle(request).await;
    assert!(
        response.status().is_success(),
        "GET {path}: {}",
        response.status()
    );
    let body = response.body().as_bytes().expect("a whole body").to_vec();
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The twin after the worked example's burst: the sample's Deployment and ScaledObject, KEDA's
/// HPA, three Karpenter nodes and the pods on them.
fn twin_after_a_burst() -> Engine {
    let mut engine =
        Engine::new_virtual(TwinParams::default(), &LoadProfile::burst(30.0, 1000)).expect("twin");
    deploy(&engine.store, "aws2azmsgs", &ScalingConfig::default()).expect("the sample");
    engine.run_until(Duration::from_secs(180));
    engine
}

/// `/openapi/v3`'s schema of a kind, and the document it is in.
struct Schemas {
    documents: BTreeMap<String, Value>,
}

impl Schemas {
    async fn load(api: &ApiServer) -> Schemas {
        let index = get(api, "/openapi/v3").await;
        let mut documents = BTreeMap::new();
        for (key, entry) in index["paths"].as_object().expect("an index") {
            let url = entry["serverRelativeURL"].as_str().expect("a URL");
            documents.insert(key.clone(), get(api, url).await);
        }
        Schemas { documents }
    }

    /// The document of a group version and the name of `kind`'s schema in it.
    fn of(&self, group: &str, version: &str, kind: &str) -> Option<(&Value, String)> {
        let key = if group.is_empty() {
            format!("api/{version}")
        } else {
            format!("apis/{group}/{version}")
        };
        let document = self.documents.get(&key)?;
        let schemas = document["components"]["schemas"].as_object()?;
        let name = schemas.iter().find_map(|(name, schema)| {
            schema["x-kubernetes-group-version-kind"]
                .as_array()?
                .iter()
                .any(|gvk| {
                    gvk["group"] == group && gvk["version"] == version && gvk["kind"] == kind
                })
                .then(|| name.clone())
        })?;
        Some((document, name))
    }
}

/// Kubernetes' quantity syntax: a signed decimal number, then an optional binary (`Ki`…`Ei`),
/// decimal (`n u m k M G T P E`) or exponent (`e3`) suffix.
fn is_quantity(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let digits_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(digits_end);
    let number_ok = !number.is_empty() && number != "." && number.matches('.').count() <= 1;
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
    number_ok && suffix_ok
}

/// True when `schema` (through `$ref` and `allOf`) is a `date-time` string.
fn is_time(document: &Value, schema: &Value) -> bool {
    if schema["format"] == "date-time" {
        return true;
    }
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        return is_time(document, &document["components"]["schemas"][name]);
    }
    schema["allOf"]
        .as_array()
        .is_some_and(|all| all.iter().any(|s| is_time(document, s)))
}

/// Checks `value` at `path` against `schema` of `document`; pushes each violation.
fn check(document: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or(reference);
        let Some(target) = document["components"]["schemas"].get(name) else {
            out.push(format!("{path}: unresolved $ref {reference}"));
            return;
        };
        if name == QUANTITY {
            if let Value::String(text) = value {
                if !is_quantity(text) {
                    out.push(format!("{path}: {text:?} is not a quantity"));
                }
            }
        }
        return check(document, target, value, path, out);
    }
    if value.is_null() {
        // Clients read a null as an absent field (a required one is checked by its parent).
        return;
    }
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        check(document, sub, value, path, out);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(choices) = schema[key].as_array() {
            let mut branch_errors = Vec::new();
            let matched = choices.iter().any(|choice| {
                let mut errors = Vec::new();
                check(document, choice, value, path, &mut errors);
                branch_errors.extend(errors.iter().cloned());
                errors.is_empty()
            });
            if !matched {
                out.push(format!(
                    "{path}: matches none of {key} ({})",
                    branch_errors.join("; ")
                ));
            }
        }
    }
    let actual = edw_twin::api::validate::type_name(value);
    if schema["x-kubernetes-int-or-string"] == true {
        if !matches!(actual, "integer" | "string") {
            out.push(format!("{path}: {actual}, not an int-or-string"));
        }
        return;
    }
    if let Some(declared) = schema["type"].as_str() {
        let ok = declared == actual || (declared == "number" && actual == "integer");
        if !ok {
            out.push(format!("{path}: {actual} {value}, not {declared}"));
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            out.push(format!("{path}: {value} is not one of {options:?}"));
        }
    }
    match value {
        Value::String(text)
            if schema["format"] == "date-time"
                && time::OffsetDateTime::parse(
                    text,
                    &time::format_description::well_known::Rfc3339,
                )
                .is_err() =>
        {
            out.push(format!("{path}: {text:?} is not an RFC 3339 date-time"));
        }
        Value::Object(map) => {
            let join = |key: &str| {
                if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                }
            };
            for required in schema["required"].as_array().into_iter().flatten() {
                let key = required.as_str().unwrap_or_default();
                let missing = match map.get(key) {
                    None => true,
                    // Go writes a zero metav1.Time/MicroTime as null, required or not
                    // (kube-apiserver's events.k8s.io view of a core Event has
                    // `eventTime: null`).
                    Some(Value::Null) => !is_time(document, &schema["properties"][key]),
                    Some(_) => false,
                };
                if missing {
                    out.push(format!("{}: required, missing", join(key)));
                }
            }
            let properties = schema["properties"].as_object();
            let additional = schema.get("additionalProperties");
            let open = schema["x-kubernetes-preserve-unknown-fields"] == true
                || additional == Some(&Value::Bool(true))
                || (properties.is_none() && additional.is_none());
            for (key, v) in map {
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(sub), _) => check(document, sub, v, &join(key), out),
                    (None, Some(sub @ Value::Object(_))) => {
                        check(document, sub, v, &join(key), out)
                    }
                    (None, _) if !open => out.push(format!("{}: not in the schema", join(key))),
                    (None, _) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check(document, sub, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn quantities() {
    for good in [
        "1", "250m", "64Mi", "0.5", "1.5Gi", "100k", "1e3", "+1", "-2", ".5",
    ] {
        assert!(is_quantity(good), "{good}");
    }
    for bad in ["", "m", "1.2.3", "12 Mi", "1mb", "abc", "1Ki2"] {
        assert!(!is_quantity(bad), "{bad}");
    }
}

#[test]
fn the_checker_finds_what_is_wrong() {
    let document = serde_json::json!({"components": {"schemas": {
        QUANTITY: {"oneOf": [{"type": "string"}, {"type": "number"}]},
        "T": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"},
            "when": {"type": "string", "format": "date-time"},
            "cpu": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"},
            "port": {"x-kubernetes-int-or-string": true},
            "tags": {"type": "array", "items": {"type": "string"}}}}}}});
    let schema = serde_json::json!({"$ref": "#/components/schemas/T"});
    let mut out = Vec::new();
    let good = serde_json::json!({"name": "a", "when": "2026-01-01T00:00:00Z", "cpu": "250m", "port": 80, "tags": ["x"]});
    check(&document, &schema, &good, "", &mut out);
    assert!(out.is_empty(), "{out:?}");
    let bad = serde_json::json!({"when": "yesterday", "cpu": "lots", "port": true, "tags": [1], "extra": 1});
    check(&document, &schema, &bad, "", &mut out);
    let text = out.join("\n");
    for expected in [
        "name: required, missing",
        "when: \"yesterday\" is not an RFC 3339 date-time",
        "cpu: \"lots\" is not a quantity",
        "port: boolean, not an int-or-string",
        "tags[0]: integer 1, not string",
        "extra: not in the schema",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_object_matches_the_served_schema() {
    let engine = twin_after_a_burst();
    let (nodes, _) = engine.store.list("nodes", None, None, None);
    assert!(
        nodes.iter().any(|n| n
            .pointer("/metadata/labels/karpenter.sh~1nodepool")
            .is_some()),
        "no Karpenter node after the burst"
    );
    let (pods, _) = engine.store.list("pods", Some("aqs-demo"), None, None);
    assert!(
        pods.iter()
            .any(|p| p.pointer("/status/phase") == Some(&Value::from("Running"))),
        "no workload pod ran"
    );
    let api = ApiServer::new(engine.store.clone(), engine.registry.clone());
    let schemas = Schemas::load(&api).await;

    let mut group_versions = vec![String::from("/api/v1")];
    for group in get(&api, "/apis").await["groups"]
        .as_array()
        .expect("groups")
    {
        for version in group["versions"].as_array().expect("versions") {
            group_versions.push(format!(
                "/apis/{}",
                version["groupVersion"].as_str().expect("a group version")
            ));
        }
    }
    let mut violations = Vec::new();
    let mut checked: BTreeMap<String, usize> = BTreeMap::new();
    for gv_path in &group_versions {
        let list = get(&api, gv_path).await;
        let (group, version) = match list["groupVersion"].as_str().expect("groupVersion") {
            gv if gv.contains('/') => gv.split_once('/').expect("group/version"),
            v => ("", v),
        };
        for resource in list["resources"].as_array().expect("resources") {
            let name = resource["name"].as_str().expect("a name");
            let listable = resource["verbs"]
                .as_array()
                .is_some_and(|v| v.contains(&Value::from("list")));
            if name.contains('/') || !listable {
                continue;
            }
            let kind = resource["kind"].as_str().expect("a kind");
            let Some((document, schema_name)) = schemas.of(group, version, kind) else {
                violations.push(format!(
                    "{group}/{version} {kind}: no schema in /openapi/v3"
                ));
                continue;
            };
            let schema = serde_json::json!({"$ref": format!("#/components/schemas/{schema_name}")});
            let objects = get(&api, &format!("{gv_path}/{name}")).await;
            for object in objects["items"].as_array().expect("items") {
                let id = format!(
                    "{kind}.{group}/{version} {}/{}",
                    object["metadata"]["namespace"].as_str().unwrap_or(""),
                    object["metadata"]["name"].as_str().unwrap_or("")
                );
                let mut found = Vec::new();
                check(document, &schema, object, "", &mut found);
                violations.extend(found.into_iter().map(|v| format!("{id}: {v}")));
                *checked
                    .entry(format!("{kind}.{group}/{version}"))
                    .or_default() += 1;
            }
        }
    }
    // The burst made what the controllers make.
    for kind in [
        "Pod./v1",
        "Node./v1",
        "Event./v1",
        "Event.events.k8s.io/v1",
        "Namespace./v1",
        "Deployment.apps/v1",
        "ReplicaSet.apps/v1",
        "DaemonSet.apps/v1",
        "HorizontalPodAutoscaler.autoscaling/v2",
        "ScaledObject.keda.sh/v1alpha1",
        "NodePool.karpenter.sh/v1",
        "NodeClaim.karpenter.sh/v1",
        "CustomResourceDefinition.apiextensions.k8s.io/v1",
        "NodeMetrics.metrics.k8s.io/v1beta1",
        "PodMetrics.metrics.k8s.io/v1beta1",
    ] {
        assert!(
            checked.get(kind).is_some_and(|n| *n > 0),
            "no {kind} objects checked: {checked:?}"
        );
    }
    assert!(
        violations.is_empty(),
        "{} violations in {checked:?}:\n{}",
        violations.len(),
        violations.join("\n")
    );
}
