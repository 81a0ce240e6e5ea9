//! Where the checked objects come from: the embedded templates rendered with the
//! configuration's variables (as the flow renders them), or a YAML/JSON text whose document of
//! a given kind is picked.

use std::collections::BTreeMap;

use serde_json::Value;

use super::FindingsError;
use crate::config::Config;
use crate::manifests::render;
use edw_model::run::{FlowSettings, Footprint, RunNames};

/// The variables the flow renders the manifests with (`Context::template_vars`), from the
/// configuration and the flow's default settings (the walkthrough's scaling numbers).
pub fn template_vars(config: &Config) -> BTreeMap<String, String> {
    // The walkthrough's names as configured (what the team deploys), not a run's own.
    let names = RunNames::for_run(&config.sample_names(), Footprint::UseDeployed);
    crate::manifests::template_vars(
        config,
        &names,
        &FlowSettings::default(),
        config.get("WORKLOAD_MANAGED_IDENTITY_CLIENT_ID"),
        None,
    )
}

/// The ScaledObject and NodePool the flow applies.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultObjects {
    pub scaled_object: Value,
    pub nodepool: Value,
}

/// Renders `scaledobject.yaml` and `default-pool.yaml` with [`template_vars`].
pub fn default_objects(config: &Config) -> Result<DefaultObjects, FindingsError> {
    let vars = template_vars(config);
    let pick = |template: &str, kind: &str| -> Result<Value, FindingsError> {
        render(template, &vars)?
            .into_iter()
            .find(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
            .ok_or_else(|| FindingsError::Document {
                source_name: format!("embedded template {template}"),
                reason: format!("no {kind} document"),
            })
    };
    Ok(DefaultObjects {
        scaled_object: pick("scaledobject.yaml", "ScaledObject")?,
        nodepool: pick("default-pool.yaml", "NodePool")?,
    })
}

/// The first document of `kind` in `text` (YAML or JSON, one or more documents);
/// `source_name` (a file name) is named in the error.
pub fn pick_document(source_name: &str, text: &str, kind: &str) -> Result<Value, FindingsError> {
    let error = |reason: String| FindingsError::Document {
        source_name: source_name.to_owned(),
        reason,
    };
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| error(format!("not YAML or JSON: {e}")))?;
    let kinds: Vec<String> = documents
        .iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            d.get("kind")
                .and_then(Value::as_str)
                .unwrap_or("(no kind)")
                .to_owned()
        })
        .collect();
    documents
        .into_iter()
        .find(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .ok_or_else(|| {
            error(if kinds.is_empty() {
                format!("no documents, expected a {kind}")
            } else {
                format!("not a {kind} (kinds: {})", kinds.join(", "))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigInputs;
    use crate::findings::{check, CheckInputs};

    #[test]
    fn the_defaults_are_the_walkthroughs() {
        let config = Config::load(&ConfigInputs::default()).expect("config");
        let objects = default_objects(&config).expect("objects");
        assert_eq!(objects.scaled_object["spec"]["maxReplicaCount"], 15);
        assert_eq!(objects.nodepool["metadata"]["name"], "default");
        let mut inputs = CheckInputs::new(objects.scaled_object);
        inputs.nodepool = Some(objects.nodepool);
        let ids: Vec<_> = check(&inputs).unwrap().into_iter().map(|f| f.id).collect();
        assert!(ids.contains(&"stranded-tail".to_owned()), "{ids:?}");
        assert!(
            !ids.contains(&"serial-node-removal".to_owned()),
            "budget 100 %: {ids:?}"
        );
    }

    #[test]
    fn documents_are_picked_by_kind_and_errors_name_the_source() {
        let text =
            "apiVersion: v1\nkind: Namespace\n---\nkind: ScaledObject\nmetadata: {name: a}\n";
        let so = pick_document("so.yaml", text, "ScaledObject").unwrap();
        assert_eq!(so["metadata"]["name"], "a");
        let err = pick_document("so.yaml", "kind: Deployment\n", "ScaledObject")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "so.yaml: not a ScaledObject (kinds: Deployment)");
        let err = pick_document("x.json", "{\"kind\": ", "ScaledObject")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.json: not YAML or JSON"), "{err}");
        let err = pick_document("e.yaml", "", "NodePool")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "e.yaml: no documents, expected a NodePool");
        let json = r#"{"kind": "ScaledObject", "spec": {"maxReplicaCount": 2}}"#;
        assert_eq!(
            pick_document("so.json", json, "ScaledObject").unwrap()["spec"]["maxReplicaCount"],
            2
        );
    }
}
