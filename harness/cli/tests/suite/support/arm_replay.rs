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
        "{}/../../fixtures/recorded/arm/{name}",
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

/// The recorded storage account that denies by default (Azure CLI cassette: IP rules
/// 25.1.2.3 and 25.2.0.0/24, one subnet rule), with `id` and `name` adapted to the test's.
pub fn denying_account(id: &str, name: &str) -> Value {
    let mut body = recorded("recorded_storage_StorageAccount_Get_Deny_IpRules_VnetRule.json");
    body["id"] = Value::String(id.to_owned());
    body["name"] = Value::String(name.to_owned());
    body
}

/// A storage account on the mock ARM whose PATCHes change what its GETs return, as ARM's do:
/// a PATCH's `properties.networkAcls` replaces the account's. Every PATCH body is kept.
#[derive(Clone)]
pub struct MockAccount {
    pub id: String,
    pub state: std::sync::Arc<std::sync::Mutex<Value>>,
    pub patches: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl MockAccount {
    /// The account's `properties.networkAcls` now.
    pub fn network_acls(&self) -> Value {
        self.state.lock().unwrap()["properties"]["networkAcls"].clone()
    }

    /// The `properties.networkAcls` of every PATCH received, in order.
    pub fn patched_acls(&self) -> Vec<Value> {
        self.patches
            .lock()
            .unwrap()
            .iter()
            .map(|b| b["properties"]["networkAcls"].clone())
            .collect()
    }
}

/// Mounts `account` (GET and PATCH at api-version 2025-08-01, the recorded payloads') at its
/// `id`. `on_patch` runs when a PATCH arrives, before it is applied (to see what the harness
/// had recorded by then); the first PATCH's answer is held back `first_patch_delay` (a slow
/// ARM, to interrupt the run in the middle).
pub async fn mount_storage_account(
    server: &MockServer,
    account: Value,
    on_patch: impl Fn(&Value) + Send + Sync + 'static,
    first_patch_delay: Option<std::time::Duration>,
) -> MockAccount {
    use wiremock::matchers::query_param;
    let id = account["id"].as_str().expect("account id").to_owned();
    let mock = MockAccount {
        id: id.clone(),
        state: std::sync::Arc::new(std::sync::Mutex::new(account)),
        patches: std::sync::Arc::new(std::sync::Mutex::new(Vec::new())),
    };
    let state = mock.state.clone();
    Mock::given(method("GET"))
        .and(path(id.as_str()))
        .and(query_param("api-version", "2025-08-01"))
        .respond_with(move |_: &wiremock::Request| {
            ResponseTemplate::new(200).set_body_json(state.lock().unwrap().clone())
        })
        .mount(server)
        .await;
    let (state, patches) = (mock.state.clone(), mock.patches.clone());
    Mock::given(method("PATCH"))
        .and(path(id.as_str()))
        .and(query_param("api-version", "2025-08-01"))
        .respond_with(move |request: &wiremock::Request| {
            let body: Value = match serde_json::from_slice(&request.body) {
                Ok(body) => body,
                Err(e) => return ResponseTemplate::new(400).set_body_string(e.to_string()),
            };
            on_patch(&body);
            let mut patches = patches.lock().unwrap();
            patches.push(body.clone());
            let mut state = state.lock().unwrap();
            if let Some(acls) = body.pointer("/properties/networkAcls") {
                state["properties"]["networkAcls"] = acls.clone();
            }
            let answer = ResponseTemplate::new(200).set_body_json(state.clone());
            match first_patch_delay {
                Some(delay) if patches.len() == 1 => answer.set_delay(delay),
                _ => answer,
            }
        })
        .mount(server)
        .await;
    mock
}

/// A storage account id in the recordings' subscription.
pub fn storage_account_id(group: &str, account: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/{account}")
}

/// A role assignment: the recorded ListForScope item with roleDefinitionId, principalId,
/// principalType and scope adapted to the deployment.
pub fn assignment(scope: &str, role: &str, principal: &str) -> Value {
    let mut a = example(
        "authorization_2022-04-01_RoleAssignments_ListForScope.json",
        "200",
    )["value"][0]
        .clone();
    a["properties"]["roleDefinitionId"] = serde_json::json!(format!(
        "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    ));
    a["properties"]["principalId"] = serde_json::json!(principal);
    a["properties"]["principalType"] = serde_json::json!("ServicePrincipal");
    a["properties"]["scope"] = serde_json::json!(scope);
    a["id"] = serde_json::json!(format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignments/{}",
        a["name"].as_str().unwrap_or_default()
    ));
    a
}
