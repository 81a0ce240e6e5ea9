//! `edw sweep` through the binary against a mock Azure Resource Manager serving the recorded
//! resource-group payload: a dry run lists exactly the expired tagged group; without a
//! subscription the error says what to set. (Deletion itself is tested in arm.rs.)

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SUB: &str = "00000000-0000-0000-0000-000000000000";

fn recorded_group(name: &str, tags: Option<Value>) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/recorded/arm/recorded_resources_ResourceGroup_Get.json"
    ))
    .unwrap();
    let mut body = serde_json::from_str::<Value>(&text).unwrap()["response"]["body"].clone();
    body["id"] = json!(format!("/subscriptions/{SUB}/resourceGroups/{name}"));
    body["name"] = json!(name);
    match tags {
        Some(t) => body["tags"] = t,
        None => {
            body.as_object_mut().unwrap().remove("tags");
        }
    }
    body
}

#[tokio::test]
async fn a_dry_run_lists_exactly_the_expired_group() {
    let server = MockServer::start().await;
    let groups = json!({"value": [
        recorded_group("rg-edw-expired", Some(json!({"edw-run-id": "run-1", "edw-expires": "2020-01-01T00:00:00Z"}))),
        recorded_group("rg-edw-current", Some(json!({"edw-run-id": "run-2", "edw-expires": "2999-01-01T00:00:00Z"}))),
        recorded_group("rg-untagged", None),
    ]});
    Mock::given(method("GET"))
        .and(path(format!("/subscriptions/{SUB}/resourcegroups")))
        .respond_with(ResponseTemplate::new(200).set_body_json(groups))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(202))
        .expect(0)
        .mount(&server)
        .await;
    let token = "ZmFrZS1hcm0tdG9rZW4tZm9yLXRoZS1zd2VlcC10ZXN0";
    let output = crate::support::cli::edw_binary()
        .args(["sweep", "--subscription", SUB, "--arm-url", &server.uri()])
        .env("EDW_ARM_TOKEN", token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("would delete (pass --yes): rg-edw-expired (run run-1"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("rg-edw-current") && !stdout.contains("rg-untagged"),
        "{stdout}"
    );
    assert!(!stdout.contains(token) && !stderr.contains(token));
}

#[test]
fn without_a_subscription_the_error_says_what_to_set() {
    let output = crate::support::cli::edw_binary()
        .arg("sweep")
        .env_remove("AZURE_SUBSCRIPTION_ID")
        .env("EDW_ARM_TOKEN", "unused-token-value")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("AZURE_SUBSCRIPTION_ID"));
}
