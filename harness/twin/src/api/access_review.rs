//! `authorization.k8s.io/v1` SelfSubjectAccessReview and SelfSubjectRulesReview: what
//! `kubectl auth can-i` (and `--list`) asks. The twin has no authorization, so every review
//! answers that everything is allowed. Reviews are answered, never stored, as a real API
//! server does: only `create` (POST to the collection) is served.

use http::{Method, Response};
use serde_json::{json, Value};

use crate::resources::ResourceType;
use crate::store::ApiError;

use super::{json_response, ApiBody, Req};

/// The API group of the reviews.
pub(crate) const GROUP: &str = "authorization.k8s.io";
const VERSION: &str = "v1";
const ACCESS_REVIEWS: &str = "selfsubjectaccessreviews";
const RULES_REVIEWS: &str = "selfsubjectrulesreviews";

/// Why every review is allowed.
pub const ALLOWED_REASON: &str =
    "the twin (simulated cluster) has no authorization: every request is allowed";

/// The review types, cluster-scoped, for the registry (discovery lists them with the verb
/// `create` only: see [`is_review`]).
pub(crate) fn review_types() -> [(&'static str, &'static str); 2] {
    [
        ("SelfSubjectAccessReview", ACCESS_REVIEWS),
        ("SelfSubjectRulesReview", RULES_REVIEWS),
    ]
}

/// True for a review type: it is created and answered, never stored or read.
pub(crate) fn is_review(rt: &ResourceType) -> bool {
    rt.group == GROUP && [ACCESS_REVIEWS, RULES_REVIEWS].contains(&rt.plural.as_str())
}

/// True when `plural` of this group is a review this module answers.
pub(crate) fn serves(plural: &str) -> bool {
    [ACCESS_REVIEWS, RULES_REVIEWS].contains(&plural)
}

/// `POST /apis/authorization.k8s.io/v1/{plural}`: the review back with its status (201).
pub(crate) fn handle(req: &Req, plural: &str) -> Result<Response<ApiBody>, ApiError> {
    if req.method != Method::POST {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ));
    }
    let review = req.object_body()?;
    let answered = match plural {
        ACCESS_REVIEWS => answer_access_review(review)?,
        _ => answer_rules_review(review),
    };
    Ok(json_response(201, &answered))
}

/// The review with the fields a server owns: kind, apiVersion, metadata.
fn answered(mut review: Value, kind: &str) -> Value {
    review["kind"] = json!(kind);
    review["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
    if !review.get("metadata").is_some_and(Value::is_object) {
        review["metadata"] = json!({});
    }
    if !review.get("spec").is_some_and(Value::is_object) {
        review["spec"] = json!({});
    }
    review
}

/// A SelfSubjectAccessReview: exactly one of `resourceAttributes` and
/// `nonResourceAttributes` (as kube-apiserver validates it), then allowed.
fn answer_access_review(review: Value) -> Result<Value, ApiError> {
    let mut review = answered(review, "SelfSubjectAccessReview");
    let given = |field: &str| review["spec"].get(field).is_some_and(Value::is_object);
    if given("resourceAttributes") == given("nonResourceAttributes") {
        return Err(ApiError::invalid(
            "SelfSubjectAccessReview.authorization.k8s.io",
            "",
            vec![(
                "spec.resourceAttributes".into(),
                "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
            )],
        ));
    }
    review["status"] = json!({"allowed": true, "reason": ALLOWED_REASON});
    Ok(review)
}

/// A SelfSubjectRulesReview: every verb on every resource and every non-resource URL.
fn answer_rules_review(review: Value) -> Value {
    let mut review = answered(review, "SelfSubjectRulesReview");
    review["status"] = json!({
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
        "incomplete": false,
    });
    review
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_review_is_allowed_and_keeps_its_spec() {
        let spec = json!({"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}});
        let review =
            answer_access_review(json!({"apiVersion": "authorization.k8s.io/v1", "spec": spec}))
                .unwrap();
        assert_eq!(review["spec"], spec);
        assert_eq!(review["kind"], "SelfSubjectAccessReview");
        assert_eq!(review["status"]["allowed"], true);
        assert_eq!(review["status"]["reason"], ALLOWED_REASON);
    }

    #[test]
    fn an_access_review_needs_exactly_one_kind_of_attributes() {
        let neither = answer_access_review(json!({"spec": {}})).unwrap_err();
        assert_eq!(neither.code, 422);
        let both = answer_access_review(json!({"spec": {
            "resourceAttributes": {"verb": "get"},
            "nonResourceAttributes": {"path": "/healthz", "verb": "get"},
        }}))
        .unwrap_err();
        assert_eq!(both.code, 422);
        assert!(answer_access_review(
            json!({"spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}})
        )
        .is_ok());
    }

    #[test]
    fn a_rules_review_allows_everything_completely() {
        let review = answer_rules_review(json!({"spec": {"namespace": "default"}}));
        assert_eq!(review["kind"], "SelfSubjectRulesReview");
        assert_eq!(review["spec"]["namespace"], "default");
        assert_eq!(review["status"]["incomplete"], false);
        assert_eq!(review["status"]["resourceRules"][0]["verbs"], json!(["*"]));
        assert_eq!(
            review["status"]["nonResourceRules"][0]["nonResourceURLs"],
            json!(["*"])
        );
        assert!(review["status"].get("evaluationError").is_none());
    }
}
