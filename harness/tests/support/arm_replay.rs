//! Azure Resource Manager replays for tests: the real payloads of `fixtures/recorded/arm/`
//! (see its PROVENANCE.md) and a mock resource group that can be tagged and deleted.

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The recordings' sanitized subscription id, kept as recorded.
pub const SUB: &str = "00000000-0000-0000-0000-000000000000";
/// The host the recordings' URLs point at.
pub const RECORDED_HOST: &str = "https://management.azure.com";

pub fn fixture(name: &str) -> Value {
    let file = format!(
        "{}/../fixtures/recorded/arm/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// `responses.<status>.body` of a spec example.
pub fn example(name: &str, status: &str) -> Value {
    fixture(name)["responses"][status]["body"].clone()
}

/// `response.body` of a recorded interaction.
pub fn recorded(name: &str) -> Value {
    fixture(name)["response"]["body"].clone()
}

/// The recorded resource group delete (spec example): 202 with a Location header, host adapted.
pub fn rg_delete_202(server: &MockServer) -> ResponseTemplate {
    let ex = fixture("resources_2025-04-01_ForceDeleteVMsInResourceGroup.json");
    let location = ex["responses"]["202"]["headers"]["location"]
        .as_str()
        .unwrap_or_default()
        .replace(RECORDED_HOST, &server.uri());
    ResponseTemplate::new(202).insert_header("location", location.as_str())
}

pub fn not_found() -> ResponseTemplate {
    ResponseTemplate::new(404)
        .set_body_json(recorded("recorded_arm_error_404_ResourceNotFound.json"))
}

/// The recorded resource group GET, with the id and name adapted to `name`.
pub fn resource_group(name: &str) -> Value {
    let mut body = recorded("recorded_resources_ResourceGroup_Get.json");
    body["id"] = Value::String(format!("/subscriptions/{SUB}/resourceGroups/{name}"));
    body["name"] = Value::String(name.to_owned());
    body
}

/// Resource group `name` on `server`: GET answers the recorded group until a DELETE is
/// accepted (the recorded 202), then (after one more GET that still finds it) 404; PUT answers
/// the recorded CreateOrUpdate body. Returns the group's id.
pub async fn mount_resource_group(server: &MockServer, name: &str) -> String {
    let id = format!("/subscriptions/{SUB}/resourceGroups/{name}");
    let deleted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = deleted.clone();
    let group = resource_group(name);
    Mock::given(method("GET"))
        .and(path(id.as_str()))
        .respond_with(move |_: &wiremock::Request| {
            // After the DELETE: found once more (deletion in progress), then gone.
            match seen.load(std::sync::atomic::Ordering::SeqCst) {
                0 => ResponseTemplate::new(200).set_body_json(&group),
                n => {
                    seen.store(n + 1, std::sync::atomic::Ordering::SeqCst);
                    if n == 1 {
                        ResponseTemplate::new(200).set_body_json(&group)
                    } else {
                        not_found()
                    }
                }
            }
        })
        .mount(server)
        .await;
    let mut created = example("resources_2025-03-01_CreateResourceGroup.json", "200");
    created["id"] = Value::String(id.clone());
    created["name"] = Value::String(name.to_owned());
    Mock::given(method("PUT"))
        .and(path(id.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(created))
        .mount(server)
        .await;
    let accepted = rg_delete_202(server);
    Mock::given(method("DELETE"))
        .and(path(id.as_str()))
        .respond_with(move |_: &wiremock::Request| {
            deleted.fetch_max(1, std::sync::atomic::Ordering::SeqCst);
            accepted.clone()
        })
        .mount(server)
        .await;
    id
}

/// The requests `server` received for `id`, as "METHOD" strings in order.
pub async fn calls(server: &MockServer, id: &str) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == id)
        .map(|r| r.method.to_string())
        .collect()
}
