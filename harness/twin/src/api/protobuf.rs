//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`, what kubectl and client-go
//! send for built-in kinds): the `k8s\0` envelope around a `runtime.Unknown`, decoded with the
//! upstream `generated.proto` descriptors of the twin's Kubernetes version
//! (`fixtures/protobuf/kubernetes.binpb`, made by `ci/kubernetes-protobuf.sh`) into the same
//! JSON object the JSON path reads, so both paths store the same object.
//!
//! The mapping is kube-apiserver's: fields by their proto names (which are the JSON names),
//! `Time`/`MicroTime` as RFC 3339, `Quantity` as its string, `IntOrString` as a number or a
//! string, `RawExtension`/`FieldsV1`/`JSON` as the JSON they carry, bytes as base64. Go writes
//! every non-pointer field, empty or not; an empty string and a zero `Time` are what Go's JSON
//! leaves out (`omitempty`, `null`), so they are left out here too.

use std::sync::OnceLock;

use base64::Engine as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, ReflectMessage as _, Value as Pb,
};
use serde_json::{json, Map, Value};

use crate::store::ApiError;

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// The descriptors of every `generated.proto` of Kubernetes v1.33.2 (kubernetes/api,
/// apimachinery and apiextensions-apiserver at v0.33.2; provenance in
/// fixtures/protobuf/PROVENANCE.md).
const DESCRIPTORS: &[u8] = include_bytes!("../../../../fixtures/protobuf/kubernetes.binpb");

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The file is part of the build: a broken one fails every protobuf test at once.
        DescriptorPool::decode(DESCRIPTORS).expect("fixtures/protobuf/kubernetes.binpb decodes")
    })
}

/// True when `content_type` names the Kubernetes protobuf encoding.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or("").trim() == MEDIA_TYPE
}

/// The proto package of the types of `group` `version`.
fn package(group: &str, version: &str) -> String {
    match group {
        "" => format!("k8s.io.api.core.{version}"),
        "apiextensions.k8s.io" => {
            format!("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.{version}")
        }
        "internal.apiserver.k8s.io" => format!("k8s.io.api.apiserverinternal.{version}"),
        "meta.k8s.io" => format!("k8s.io.apimachinery.pkg.apis.meta.{version}"),
        _ => format!(
            "k8s.io.api.{}.{version}",
            group.split('.').next().unwrap_or(group)
        ),
    }
}

/// Decodes a protobuf body to the JSON object it stands for (with `apiVersion` and `kind`
/// from the envelope). 400 with kube-apiserver's wording when it is not one.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| {
        ApiError::bad_request(
            "the body is not a Kubernetes protobuf object: it does not start with the 4-byte prefix \"k8s\\x00\"",
        )
    })?;
    let unknown_desc = pool()
        .get_message_by_name(UNKNOWN)
        .ok_or_else(|| ApiError::new(500, "InternalError", "no runtime.Unknown descriptor"))?;
    let unknown = DynamicMessage::decode(unknown_desc, rest).map_err(|e| {
        ApiError::bad_request(format!(
            "error decoding the protobuf envelope (runtime.Unknown): {e}"
        ))
    })?;
    let text = |path: &[&str]| -> String {
        let mut message = unknown.clone();
        for (i, name) in path.iter().enumerate() {
            let value = message.get_field_by_name(name).map(|v| v.into_owned());
            match value {
                Some(Pb::Message(m)) if i + 1 < path.len() => message = m,
                Some(Pb::String(s)) if i + 1 == path.len() => return s,
                _ => return String::new(),
            }
        }
        String::new()
    };
    let api_version = text(&["typeMeta", "apiVersion"]);
    let kind = text(&["typeMeta", "kind"]);
    let encoding = text(&["contentEncoding"]);
    if !encoding.is_empty() {
        return Err(ApiError::bad_request(format!(
            "unsupported protobuf contentEncoding {encoding:?}"
        )));
    }
    let raw = match unknown.get_field_by_name("raw").map(|v| v.into_owned()) {
        Some(Pb::Bytes(b)) => b,
        _ => Default::default(),
    };
    if kind.is_empty() || api_version.is_empty() {
        return Err(ApiError::bad_request(
            "the protobuf envelope names no apiVersion and kind (runtime.Unknown typeMeta)",
        ));
    }
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    // Option kinds (DeleteOptions, ...) are registered in every group version but defined once,
    // in meta/v1.
    let desc = pool()
        .get_message_by_name(&format!("{}.{kind}", package(group, version)))
        .or_else(|| pool().get_message_by_name(&format!("k8s.io.apimachinery.pkg.apis.meta.v1.{kind}")))
        .ok_or_else(|| {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the twin cannot decode {kind} ({api_version}) from protobuf: no such built-in type in Kubernetes {}; send it as application/json", super::GIT_VERSION),
        )
    })?;
    let message = DynamicMessage::decode(desc, raw.as_ref()).map_err(|e| {
        ApiError::bad_request(format!(
            "error decoding {kind} ({api_version}) from protobuf: {e}"
        ))
    })?;
    let mut object = match to_json(&message) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!(kind));
    out.append(&mut object);
    Ok(Value::Object(out))
}

/// One message as Kubernetes JSON.
fn to_json(message: &DynamicMessage) -> Value {
    let desc = message.descriptor();
    let field = |name: &str| message.get_field_by_name(name).map(|v| v.into_owned());
    match desc.full_name() {
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time" => time(message, false),
        "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => time(message, true),
        "k8s.io.apimachinery.pkg.apis.meta.v1.Duration" => match field("duration") {
            Some(Pb::I64(nanos)) => json!(go_duration(nanos)),
            _ => json!("0s"),
        },
        "k8s.io.apimachinery.pkg.api.resource.Quantity" => match field("string") {
            Some(Pb::String(s)) => json!(s),
            _ => json!("0"),
        },
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => match field("type") {
            Some(Pb::I64(1)) => match field("strVal") {
                Some(Pb::String(s)) => json!(s),
                _ => json!(""),
            },
            _ => match field("intVal") {
                Some(Pb::I32(i)) => json!(i),
                _ => json!(0),
            },
        },
        "k8s.io.apimachinery.pkg.runtime.RawExtension"
        | "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1"
        | "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON" => {
            let raw = desc
                .fields()
                .next()
                .and_then(|f| match message.get_field(&f).into_owned() {
                    Pb::Bytes(b) => Some(b),
                    _ => None,
                });
            raw.and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .unwrap_or(Value::Null)
        }
        "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool" => {
            match field("schema") {
                Some(Pb::Message(m)) if message.has_field_by_name("schema") => to_json(&m),
                _ => json!(matches!(field("allows"), Some(Pb::Bool(true)))),
            }
        }
        "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray"
        | "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray" => {
            match field("schema") {
                Some(Pb::Message(m)) if message.has_field_by_name("schema") => to_json(&m),
                _ => {
                    let list = desc.fields().find(|f| f.is_list());
                    list.map(|f| value(&f, &message.get_field(&f)))
                        .unwrap_or(Value::Null)
                }
            }
        }
        _ if is_list_wrapper(message) => {
            let items = desc.get_field_by_name("items");
            items
                .map(|f| value(&f, &message.get_field(&f)))
                .unwrap_or_else(|| json!([]))
        }
        _ => {
            let mut object = Map::new();
            for (field, v) in message.fields() {
                let json = value(&field, v);
                if json.is_null() || json == json!("") {
                    continue;
                }
                object.insert(field.name().to_owned(), json);
            }
            Value::Object(object)
        }
    }
}

/// Types such as `ExtraValue` and `Verbs`: a message whose only field is a repeated `items`,
/// which Go marshals as the bare array (unlike `...List` kinds, which also have metadata).
fn is_list_wrapper(message: &DynamicMessage) -> bool {
    let desc = message.descriptor();
    let mut fields = desc.fields();
    matches!((fields.next(), fields.next()), (Some(f), None) if f.name() == "items" && f.is_list())
}

/// A field's value as JSON.
fn value(field: &FieldDescriptor, value: &Pb) -> Value {
    match value {
        Pb::List(items) => Value::Array(items.iter().map(|v| scalar(field, v)).collect()),
        Pb::Map(map) => {
            let value_field = match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field(),
                _ => return Value::Null,
            };
            let mut object = Map::new();
            for (key, v) in map {
                let key = match key {
                    MapKey::String(s) => s.clone(),
                    MapKey::I32(i) => i.to_string(),
                    MapKey::I64(i) => i.to_string(),
                    MapKey::U32(i) => i.to_string(),
                    MapKey::U64(i) => i.to_string(),
                    MapKey::Bool(b) => b.to_string(),
                };
                object.insert(key, scalar(&value_field, v));
            }
            Value::Object(object)
        }
        other => scalar(field, other),
    }
}

fn scalar(_field: &FieldDescriptor, value: &Pb) -> Value {
    match value {
        Pb::Bool(b) => json!(b),
        Pb::I32(i) => json!(i),
        Pb::I64(i) => json!(i),
        Pb::U32(i) => json!(i),
        Pb::U64(i) => json!(i),
        Pb::F32(f) => json!(f),
        Pb::F64(f) => json!(f),
        Pb::String(s) => json!(s),
        Pb::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Pb::EnumNumber(n) => json!(n),
        Pb::Message(m) => to_json(m),
        Pb::List(_) | Pb::Map(_) => Value::Null,
    }
}

/// `Time` (`MicroTime` with `micro`) as Go's JSON writes it; the zero time is `null`.
fn time(message: &DynamicMessage, micro: bool) -> Value {
    let seconds = match message.get_field_by_name("seconds").map(|v| v.into_owned()) {
        Some(Pb::I64(s)) => s,
        _ => 0,
    };
    let nanos = match message.get_field_by_name("nanos").map(|v| v.into_owned()) {
        Some(Pb::I32(n)) => n,
        _ => 0,
    };
    if seconds == 0 && nanos == 0 {
        return Value::Null;
    }
    let at = time::OffsetDateTime::from_unix_timestamp(seconds)
        .map(|t| t + time::Duration::nanoseconds(i64::from(nanos)))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let date = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if micro {
        json!(format!("{date}.{:06}Z", at.microsecond()))
    } else {
        json!(format!("{date}Z"))
    }
}

/// A duration in nanoseconds as Go's `time.Duration.String()` writes it (`1h2m3s`, `1.5s`).
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        return match n {
            n if n < 1_000 => format!("{sign}{n}ns"),
            n if n < 1_000_000 => format!("{sign}{}µs", trim(n as f64 / 1e3)),
            n => format!("{sign}{}ms", trim(n as f64 / 1e6)),
        };
    }
    let hours = n / 3_600_000_000_000;
    let minutes = n / 60_000_000_000 % 60;
    let seconds = (n % 60_000_000_000) as f64 / 1e9;
    let mut out = sign.to_owned();
    if hours > 0 {
        out += &format!("{hours}h");
    }
    if hours > 0 || minutes > 0 {
        out += &format!("{minutes}m");
    }
    out + &format!("{}s", trim(seconds))
}

fn trim(value: f64) -> String {
    let text = format!("{value:.9}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    /// A body as client-go writes it: the prefix, then a `runtime.Unknown` around `raw`.
    fn envelope(api_version: &str, kind: &str, raw: &DynamicMessage) -> Vec<u8> {
        let desc = pool().get_message_by_name(UNKNOWN).unwrap();
        let mut unknown = DynamicMessage::new(desc.clone());
        let type_meta_desc = pool()
            .get_message_by_name("k8s.io.apimachinery.pkg.runtime.TypeMeta")
            .unwrap();
        let mut type_meta = DynamicMessage::new(type_meta_desc);
        type_meta.set_field_by_name("apiVersion", Pb::String(api_version.into()));
        type_meta.set_field_by_name("kind", Pb::String(kind.into()));
        unknown.set_field_by_name("typeMeta", Pb::Message(type_meta));
        unknown.set_field_by_name("raw", Pb::Bytes(raw.encode_to_vec().into()));
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    fn message(name: &str) -> DynamicMessage {
        DynamicMessage::new(pool().get_message_by_name(name).unwrap())
    }

    #[test]
    fn every_served_built_in_kind_has_a_descriptor() {
        for (group, version, kind) in [
            ("", "v1", "Namespace"),
            ("", "v1", "Pod"),
            ("", "v1", "Node"),
            ("", "v1", "Event"),
            ("", "v1", "ServiceAccount"),
            ("", "v1", "ConfigMap"),
            ("", "v1", "Secret"),
            ("events.k8s.io", "v1", "Event"),
            ("apps", "v1", "Deployment"),
            ("apps", "v1", "ReplicaSet"),
            ("autoscaling", "v2", "HorizontalPodAutoscaler"),
            ("autoscaling", "v1", "Scale"),
            ("policy", "v1", "Eviction"),
            ("authorization.k8s.io", "v1", "SelfSubjectAccessReview"),
            ("authorization.k8s.io", "v1", "SelfSubjectRulesReview"),
            ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            ("meta.k8s.io", "v1", "DeleteOptions"),
        ] {
            let name = format!("{}.{kind}", package(group, version));
            assert!(
                pool().get_message_by_name(&name).is_some(),
                "{name} is not in the descriptor set"
            );
        }
    }

    #[test]
    fn a_config_map_decodes_to_the_json_object() {
        let mut meta = message("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        meta.set_field_by_name("name", Pb::String("c1".into()));
        // Go writes empty strings and the zero creationTimestamp too: JSON leaves them out.
        meta.set_field_by_name("generateName", Pb::String(String::new()));
        meta.set_field_by_name(
            "creationTimestamp",
            Pb::Message(message("k8s.io.apimachinery.pkg.apis.meta.v1.Time")),
        );
        let mut cm = message("k8s.io.api.core.v1.ConfigMap");
        cm.set_field_by_name("metadata", Pb::Message(meta));
        let data = cm.descriptor().get_field_by_name("data").unwrap();
        cm.set_field(
            &data,
            Pb::Map([(MapKey::String("a".into()), Pb::String("b".into()))].into()),
        );
        let binary = cm.descriptor().get_field_by_name("binaryData").unwrap();
        cm.set_field(
            &binary,
            Pb::Map(
                [(
                    MapKey::String("k".into()),
                    Pb::Bytes(b"\x00\x01".to_vec().into()),
                )]
                .into(),
            ),
        );
        let decoded = decode(&envelope("v1", "ConfigMap", &cm)).unwrap();
        assert_eq!(
            decoded,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"},
                   "data": {"a": "b"}, "binaryData": {"k": "AAE="}})
        );
    }

    #[test]
    fn quantities_int_or_strings_and_times_take_their_json_forms() {
        let mut quantity = message("k8s.io.apimachinery.pkg.api.resource.Quantity");
        quantity.set_field_by_name("string", Pb::String("250m".into()));
        assert_eq!(to_json(&quantity), json!("250m"));
        let mut port = message("k8s.io.apimachinery.pkg.util.intstr.IntOrString");
        port.set_field_by_name("type", Pb::I64(0));
        port.set_field_by_name("intVal", Pb::I32(8080));
        assert_eq!(to_json(&port), json!(8080));
        port.set_field_by_name("type", Pb::I64(1));
        port.set_field_by_name("strVal", Pb::String("25%".into()));
        assert_eq!(to_json(&port), json!("25%"));
        let mut at = message("k8s.io.apimachinery.pkg.apis.meta.v1.Time");
        at.set_field_by_name("seconds", Pb::I64(1_765_000_000));
        assert_eq!(to_json(&at), json!("2025-12-06T05:46:40Z"));
        let mut micro = message("k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime");
        micro.set_field_by_name("seconds", Pb::I64(1_765_000_000));
        micro.set_field_by_name("nanos", Pb::I32(123_456_789));
        assert_eq!(to_json(&micro), json!("2025-12-06T05:46:40.123456Z"));
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
    }

    #[test]
    fn a_body_without_the_prefix_or_with_an_unknown_kind_is_refused_with_its_reason() {
        let error = decode(b"{\"kind\":\"Pod\"}").unwrap_err();
        assert_eq!(error.code, 400);
        assert!(error.message.contains("k8s\\x00"), "{}", error.message);
        let error = decode(b"k8s\0\xff\xff\xff").unwrap_err();
        assert_eq!(error.code, 400);
        assert!(
            error.message.contains("runtime.Unknown"),
            "{}",
            error.message
        );
        let cm = message("k8s.io.api.core.v1.ConfigMap");
        let error = decode(&envelope("example.com/v1", "Widget", &cm)).unwrap_err();
        assert_eq!(error.code, 415);
        assert!(
            error.message.contains("Widget (example.com/v1)"),
            "{}",
            error.message
        );
    }

    fn served() -> crate::api::ApiServer {
        let clock = std::sync::Arc::new(crate::clock::VirtualClock::new(
            time::macros::datetime!(2026-01-01 00:00 UTC),
        ));
        let api = crate::api::ApiServer::new(
            crate::store::Store::new(clock, 3),
            std::sync::Arc::new(crate::resources::Registry::standard().unwrap()),
        );
        api.ensure_system_namespaces();
        api
    }

    async fn post(
        api: &crate::api::ApiServer,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let request = http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", content_type)
            .body(bytes::Bytes::from(body))
            .unwrap();
        let response = api.handle(request).await;
        let code = response.status().as_u16();
        let body = response.body().as_bytes().unwrap_or_default().to_vec();
        (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn config_map(name: &str) -> DynamicMessage {
        let mut meta = message("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        meta.set_field_by_name("name", Pb::String(name.into()));
        let mut cm = message("k8s.io.api.core.v1.ConfigMap");
        cm.set_field_by_name("metadata", Pb::Message(meta));
        cm
    }

    #[tokio::test]
    async fn the_api_stores_a_protobuf_body_and_answers_bad_ones_as_kube_apiserver_does() {
        let api = served();
        let path = "/api/v1/namespaces/default/configmaps";
        let (code, created) = post(
            &api,
            path,
            MEDIA_TYPE,
            envelope("v1", "ConfigMap", &config_map("c1")),
        )
        .await;
        assert_eq!(code, 201, "{created}");
        assert_eq!(created["metadata"]["name"], "c1");
        assert_eq!(created["metadata"]["namespace"], "default");

        // A malformed body, a kind that does not match the URL, a type the twin cannot read.
        let (code, status) = post(&api, path, MEDIA_TYPE, b"k8s\0\x0a\xff".to_vec()).await;
        assert_eq!(
            (code, status["reason"].as_str()),
            (400, Some("BadRequest")),
            "{status}"
        );
        let (code, status) = post(
            &api,
            "/api/v1/namespaces/default/pods",
            MEDIA_TYPE,
            envelope("v1", "ConfigMap", &config_map("c2")),
        )
        .await;
        assert_eq!(code, 400, "{status}");
        assert!(
            status["message"].as_str().unwrap().contains(
                "the kind in the data (ConfigMap) does not match the expected kind (Pod)"
            ),
            "{status}"
        );
        let (code, status) = post(&api, path, "application/cbor", b"{}".to_vec()).await;
        assert_eq!(
            (code, status["reason"].as_str()),
            (415, Some("UnsupportedMediaType")),
            "{status}"
        );
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("application/cbor"),
            "{status}"
        );

        // And it keeps serving.
        let (code, created) = post(
            &api,
            path,
            "application/json",
            serde_json::to_vec(
                &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c3"}}),
            )
            .unwrap(),
        )
        .await;
        assert_eq!(code, 201, "{created}");
    }

    #[tokio::test]
    async fn an_eviction_of_a_missing_pod_is_not_found_and_a_wrong_body_is_a_bad_request() {
        let api = served();
        let mut meta = message("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        meta.set_field_by_name("name", Pb::String("ghost".into()));
        let mut eviction = message("k8s.io.api.policy.v1.Eviction");
        eviction.set_field_by_name("metadata", Pb::Message(meta));
        let path = "/api/v1/namespaces/default/pods/ghost/eviction";
        let (code, status) = post(
            &api,
            path,
            MEDIA_TYPE,
            envelope("policy/v1", "Eviction", &eviction),
        )
        .await;
        assert_eq!(
            (code, status["reason"].as_str()),
            (404, Some("NotFound")),
            "{status}"
        );
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("pods \"ghost\" not found"),
            "{status}"
        );
        let (code, status) = post(
            &api,
            path,
            MEDIA_TYPE,
            envelope("v1", "ConfigMap", &config_map("ghost")),
        )
        .await;
        assert_eq!(code, 400, "{status}");
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("policy/v1 Eviction"),
            "{status}"
        );
    }

    #[test]
    fn a_raw_object_that_is_not_its_kind_is_a_bad_request() {
        let desc = pool().get_message_by_name(UNKNOWN).unwrap();
        let mut unknown = DynamicMessage::new(desc);
        let mut type_meta = message("k8s.io.apimachinery.pkg.runtime.TypeMeta");
        type_meta.set_field_by_name("apiVersion", Pb::String("v1".into()));
        type_meta.set_field_by_name("kind", Pb::String("Pod".into()));
        unknown.set_field_by_name("typeMeta", Pb::Message(type_meta));
        // Field 1 (metadata) as a varint: the wrong wire type for a message.
        unknown.set_field_by_name("raw", Pb::Bytes(vec![0x08, 0x01].into()));
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        let error = decode(&body).unwrap_err();
        assert_eq!(error.code, 400);
        assert!(
            error.message.contains("error decoding Pod (v1)"),
            "{}",
            error.message
        );
    }
}
