//! `edw_engine::arm` against wiremock replaying the real ARM payloads in `fixtures/recorded/arm/`
//! (spec examples and Azure CLI recordings, see its PROVENANCE.md). Payloads are adapted at
//! load time only where a field has to match the deploy.state names of the test deployment
//! (ids, names, scopes, principal ids, the federated credentials' issuer/subject, and the
//! management host in polling URLs, which must point at the mock); every other field is kept
//! as recorded. Each adaptation is commented where it is made.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edw_engine::arm::{
    self, names, ArmClient, ArmError, Check, CheckOutcome, ClientSettings, DeleteOutcome,
    Deployment, DeploymentError, ExpiryTags, ResourceGroups, StaticToken,
};
use serde_json::{json, Value};
use time::OffsetDateTime;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::arm_replay::{
    assignment, example, fixture, not_found, recorded, rg_delete_202, RECORDED_HOST, SUB,
};

/// The principal id of the recorded IdentityGet example (the workload identity).
const WORKLOAD_PRINCIPAL: &str = "25cc773c-7f05-40fc-a104-32d2300754ad";
/// The kubelet identity objectId of the recorded managed cluster.
const KUBELET_OBJECT_ID: &str = "00000000-0000-0000-0000-000000000001";

fn deployment() -> Deployment {
    Deployment::from_lookup(|key| {
        let suffix = "k3x9q2";
        let v = match key {
            "AZURE_SUBSCRIPTION_ID" => SUB.to_owned(),
            "SUFFIX" => suffix.to_owned(),
            "RESOURCE_GROUP" => format!("rg-aksdemo-{suffix}"),
            "AZURE_STORAGE_ACCOUNT_NAME" => format!("storaksdemo{suffix}"),
            "AZURE_QUEUE_NAME" => "aws2azmsgs".to_owned(),
            "AZURE_TABLE_NAME" => "aws2azpmts".to_owned(),
            "AZURE_CONTAINER_REGISTRY_NAME" => format!("acraksdemo{suffix}"),
            "AKS_MANAGED_IDENTITY_NAME" => format!("mi-aksdemo-{suffix}"),
            "AKS_CLUSTER_NAME" => format!("aks-aksdemo-{suffix}"),
            "WORKLOAD_MANAGED_IDENTITY_NAME" => format!("mi-aks-workload-identity-{suffix}"),
            "SERVICE_ACCOUNT" => "aqs-app-service-account".to_owned(),
            "FEDERATED_IDENTITY_CREDENTIAL_NAME" => format!("federated-credential-{suffix}"),
            "KEDA_SERVICE_ACCT_CRED_NAME" => format!("fed-cred-aksdemo-kedasvc-{suffix}"),
            _ => return None,
        };
        Some(v)
    })
    .expect("complete deployment")
}

fn settings() -> ClientSettings {
    ClientSettings {
        max_retries: 3,
        default_backoff: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
        operation_deadline: Duration::from_secs(20),
        request_timeout: Duration::from_secs(10),
    }
}

fn client_with(server: &MockServer, token: &str) -> ArmClient {
    ArmClient::with_settings(&server.uri(), Arc::new(StaticToken::new(token)), settings())
        .expect("client")
}

fn client(server: &MockServer) -> ArmClient {
    client_with(server, "test-token-0123456789")
}

/// Adaptation: `id` and `name` set to the deployment's resource.
fn named(mut body: Value, id: &str, name: &str) -> Value {
    body["id"] = json!(id);
    body["name"] = json!(name);
    body
}

/// Everything ARM answers for one deployment.
struct World {
    d: Deployment,
    rg: Value,
    account: Value,
    queue: Value,
    table: Value,
    registry: Value,
    aks_identity: Value,
    cluster: Value,
    workload: Value,
    fic_app: Value,
    fic_keda: Value,
    acr_assignments: Vec<Value>,
    storage_assignments: Vec<Value>,
    feature: Value,
}

fn conforming() -> World {
    let d = deployment();
    let cluster = named(
        recorded("recorded_aks_2025-10-01_ManagedCluster_Get_NAP_KEDA_WorkloadIdentity_OIDC.json"),
        &d.cluster_id(),
        &d.aks_cluster,
    );
    let issuer = cluster["properties"]["oidcIssuerProfile"]["issuerURL"].clone();
    // Federated credentials: issuer adapted to the recorded cluster's issuer URL, subject to
    // the deployment's namespace/service account (and keda-operator).
    let fic = |name: &str, subject: &str| {
        let mut body = named(
            example("msi_2026-05-31_FederatedIdentityCredentialGet.json", "200"),
            &d.federated_credential_id(name),
            name,
        );
        body["properties"]["issuer"] = issuer.clone();
        body["properties"]["subject"] = json!(subject);
        body
    };
    World {
        rg: named(
            recorded("recorded_resources_ResourceGroup_Get.json"),
            &d.resource_group_id(),
            &d.resource_group,
        ),
        account: named(
            example("storage_2025-08-01_StorageAccountGetProperties.json", "200"),
            &d.storage_account_id(),
            &d.storage_account,
        ),
        queue: named(
            example("storage_2025-08-01_QueueOperationPut.json", "200"),
            &d.queue_id(),
            &d.queue,
        ),
        table: named(
            example("storage_2023-01-01_TableOperationPut.json", "200"),
            &d.table_id(),
            &d.table,
        ),
        registry: named(
            example("containerregistry_2025-11-01_RegistryGet.json", "200"),
            &d.registry_id(),
            &d.container_registry,
        ),
        aks_identity: named(
            example("msi_2026-05-31_IdentityGet.json", "200"),
            &d.aks_identity_id(),
            &d.aks_managed_identity,
        ),
        workload: named(
            example("msi_2026-05-31_IdentityGet.json", "200"),
            &d.workload_identity_id(),
            &d.workload_identity,
        ),
        fic_app: fic(&d.federated_credential, &d.app_subject()),
        fic_keda: fic(
            &d.keda_credential,
            "system:serviceaccount:kube-system:keda-operator",
        ),
        acr_assignments: vec![assignment(
            &d.registry_id(),
            arm::api::ACR_PULL,
            KUBELET_OBJECT_ID,
        )],
        storage_assignments: vec![
            assignment(
                &d.storage_account_id(),
                arm::api::STORAGE_QUEUE_DATA_CONTRIBUTOR,
                WORKLOAD_PRINCIPAL,
            ),
            assignment(
                &d.storage_account_id(),
                arm::api::STORAGE_TABLE_DATA_CONTRIBUTOR,
                WORKLOAD_PRINCIPAL,
            ),
        ],
        // No Features payload is among the shared fixtures: this is the 200 body of the
        // Azure/azure-rest-api-specs example
        // specification/resources/resource-manager/Microsoft.Features/features/stable/2021-07-01/examples/registerFeature.json
        // (index commit 54923347f07c69f929305d5c2fd3fa7fda1dab96), verbatim.
        feature: json!({
            "name": "Feature1",
            "properties": { "state": "registered" },
            "id": "feature_id1",
            "type": "type1"
        }),
        cluster,
        d,
    }
}

async fn get_route(server: &MockServer, id: &str, api_version: &str, body: &Value) {
    Mock::given(method("GET"))
        .and(path(id))
        .and(query_param("api-version", api_version))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

async fn serve(server: &MockServer, w: &World) {
    let d = &w.d;
    use arm::api::*;
    get_route(server, &d.resource_group_id(), RESOURCE_GROUPS, &w.rg).await;
    get_route(server, &d.storage_account_id(), STORAGE, &w.account).await;
    get_route(server, &d.queue_id(), STORAGE, &w.queue).await;
    get_route(server, &d.table_id(), STORAGE_TABLES, &w.table).await;
    get_route(server, &d.registry_id(), CONTAINER_REGISTRY, &w.registry).await;
    get_route(
        server,
        &d.aks_identity_id(),
        MANAGED_IDENTITY,
        &w.aks_identity,
    )
    .await;
    get_route(server, &d.cluster_id(), MANAGED_CLUSTERS, &w.cluster).await;
    get_route(
        server,
        &d.workload_identity_id(),
        MANAGED_IDENTITY,
        &w.workload,
    )
    .await;
    get_route(
        server,
        &d.federated_credential_id(&d.federated_credential),
        MANAGED_IDENTITY,
        &w.fic_app,
    )
    .await;
    get_route(
        server,
        &d.federated_credential_id(&d.keda_credential),
        MANAGED_IDENTITY,
        &w.fic_keda,
    )
    .await;
    get_route(server, &d.nap_feature_id(), FEATURES, &w.feature).await;
    Mock::given(method("GET"))
        .and(path(format!(
            "{}/providers/Microsoft.Authorization/roleAssignments",
            d.registry_id()
        )))
        .and(query_param("api-version", ROLE_ASSIGNMENTS))
        .and(query_param("$filter", "atScope()"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "value": w.acr_assignments })),
        )
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments"
        )))
        .and(query_param("api-version", ROLE_ASSIGNMENTS))
        .and(query_param(
            "$filter",
            format!("principalId eq '{WORKLOAD_PRINCIPAL}'"),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "value": w.storage_assignments })),
        )
        .mount(server)
        .await;
}

async fn run(w: World) -> Vec<Check> {
    let server = MockServer::start().await;
    serve(&server, &w).await;
    let checks = arm::validate(&client(&server), &w.d).await;
    let got: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(got, names::ALL, "every check, in order");
    checks
}

fn summary(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| format!("{}: {:?}", c.name, c.outcome))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Exactly `name` failed, with a message containing each of `words`; every other check passed.
fn only_failed(checks: &[Check], name: &str, words: &[&str]) {
    for c in checks {
        if c.name == name {
            let message = c
                .message()
                .unwrap_or_else(|| panic!("{name} should fail:\n{}", summary(checks)));
            for w in words {
                assert!(message.contains(w), "{name}: {message:?} lacks {w:?}");
            }
        } else {
            assert!(
                c.is_passed(),
                "only {name} should fail:\n{}",
                summary(checks)
            );
        }
    }
}

#[tokio::test]
async fn conforming_deployment_passes_every_check() {
    let checks = run(conforming()).await;
    assert!(checks.iter().all(Check::is_passed), "{}", summary(&checks));
}

#[tokio::test]
async fn node_provisioning_manual_fails_only_that_check() {
    let mut w = conforming();
    w.cluster["properties"]["nodeProvisioningProfile"]["mode"] = json!("Manual");
    let cluster = w.d.aks_cluster.clone();
    let checks = run(w).await;
    only_failed(
        &checks,
        names::NODE_PROVISIONING,
        &[
            &cluster,
            "properties.nodeProvisioningProfile.mode",
            "Manual",
        ],
    );
}

#[tokio::test]
async fn keda_off_fails_only_that_check() {
    let mut w = conforming();
    w.cluster["properties"]["workloadAutoScalerProfile"]["keda"]["enabled"] = json!(false);
    let cluster = w.d.aks_cluster.clone();
    let checks = run(w).await;
    only_failed(
        &checks,
        names::KEDA,
        &[
            &cluster,
            "properties.workloadAutoScalerProfile.keda.enabled",
        ],
    );
}

#[tokio::test]
async fn missing_system_pool_taint_fails_only_that_check() {
    let mut w = conforming();
    if let Some(pool) = w.cluster["properties"]["agentPoolProfiles"][0].as_object_mut() {
        pool.remove("nodeTaints");
    }
    let cluster = w.d.aks_cluster.clone();
    let checks = run(w).await;
    only_failed(
        &checks,
        names::SYSTEM_POOL_TAINT,
        &[&cluster, "nodepool1", "nodeTaints", "CriticalAddonsOnly"],
    );
}

#[tokio::test]
async fn wrong_federated_subject_fails_only_that_check() {
    let mut w = conforming();
    w.fic_app["properties"]["subject"] =
        json!("system:serviceaccount:default:aqs-app-service-account");
    let credential = w.d.federated_credential.clone();
    let checks = run(w).await;
    only_failed(
        &checks,
        names::APP_FEDERATED_CREDENTIAL,
        &[
            &credential,
            "properties.subject",
            "system:serviceaccount:aqs-demo:aqs-app-service-account",
        ],
    );
}

#[tokio::test]
async fn missing_table_role_fails_only_that_check() {
    let mut w = conforming();
    w.storage_assignments.truncate(1);
    let account = w.d.storage_account.clone();
    let checks = run(w).await;
    only_failed(
        &checks,
        names::TABLE_ROLE,
        &[
            &account,
            "Storage Table Data Contributor",
            "roleDefinitionId",
        ],
    );
}

#[tokio::test]
async fn role_on_wrong_scope_fails_only_that_check_and_says_so() {
    // The sample's $STORAGE_RG_NAME bug: the role lands on another scope.
    for scope in [
        format!("/subscriptions/{SUB}/resourceGroups/rg-other-account"),
        String::new(),
    ] {
        let mut w = conforming();
        w.storage_assignments[1]["properties"]["scope"] = json!(scope);
        let account = w.d.storage_account.clone();
        let checks = run(w).await;
        let expected = if scope.is_empty() {
            "an empty scope"
        } else {
            "rg-other-account"
        };
        only_failed(
            &checks,
            names::TABLE_ROLE,
            &[&account, "wrong scope", "properties.scope", expected],
        );
    }
}

#[tokio::test]
async fn cluster_404_fails_naming_the_cluster() {
    let w = conforming();
    let server = MockServer::start().await;
    // The recorded 404 body, verbatim (it names the recording's cluster; ours comes from the id).
    Mock::given(method("GET"))
        .and(path(w.d.cluster_id()))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(recorded("recorded_arm_error_404_ResourceNotFound.json")),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    serve(&server, &w).await;
    let checks = arm::validate(&client(&server), &w.d).await;
    let failed: Vec<&Check> = checks.iter().filter(|c| c.is_failed()).collect();
    assert_eq!(failed.len(), 1, "{}", summary(&checks));
    assert_eq!(failed[0].name, names::CLUSTER);
    let message = failed[0].message().unwrap_or_default();
    assert!(message.contains(&w.d.aks_cluster), "{message}");
    assert!(
        message.contains("404") && message.contains("ResourceNotFound"),
        "{message}"
    );
    let skipped = checks
        .iter()
        .filter(|c| matches!(c.outcome, CheckOutcome::Skipped { .. }))
        .count();
    // Six cluster checks plus the two federated credentials (no issuer to compare with).
    assert_eq!(skipped, 8, "{}", summary(&checks));

    let err = client(&server)
        .get(&w.d.cluster_id(), arm::api::MANAGED_CLUSTERS)
        .await
        .expect_err("404");
    assert!(err.is_not_found());
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("ResourceNotFound"));
    assert!(err.to_string().contains(&w.d.aks_cluster));
}

#[tokio::test]
async fn throttled_429_honours_retry_after_then_succeeds() {
    let w = conforming();
    let server = MockServer::start().await;
    // No 429 payload was recorded (see PROVENANCE.md): status and Retry-After header only.
    Mock::given(method("GET"))
        .and(path(w.d.resource_group_id()))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    get_route(
        &server,
        &w.d.resource_group_id(),
        arm::api::RESOURCE_GROUPS,
        &w.rg,
    )
    .await;
    let started = Instant::now();
    let body = client(&server)
        .get(&w.d.resource_group_id(), arm::api::RESOURCE_GROUPS)
        .await
        .expect("200 after the retry");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(body["name"], json!(w.d.resource_group));
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        2
    );
}

#[tokio::test]
async fn throttling_that_never_ends_is_a_bounded_typed_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "0"))
        .mount(&server)
        .await;
    let d = deployment();
    let err = client(&server)
        .get(&d.resource_group_id(), arm::api::RESOURCE_GROUPS)
        .await
        .expect_err("503 forever");
    assert!(
        matches!(
            err,
            ArmError::Throttled {
                attempts: 4,
                status: 503,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&d.resource_group));
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        4
    );
}

/// The recorded 202's headers, with the management host replaced by the mock's (the only
/// adaptation: the client polls only its own origin).
fn recorded_202(server: &MockServer) -> (ResponseTemplate, String) {
    let rec = fixture("recorded_aks_ManagedCluster_Delete_202.json");
    let mut template = ResponseTemplate::new(202);
    let mut poll_path = String::new();
    if let Some(headers) = rec["response"]["headers"].as_object() {
        for (k, v) in headers {
            if k == "content-length" {
                continue;
            }
            let v = v
                .as_str()
                .unwrap_or_default()
                .replace(RECORDED_HOST, &server.uri());
            if k == "azure-asyncoperation" {
                let rest = v.trim_start_matches(&server.uri());
                poll_path = rest.split('?').next().unwrap_or_default().to_owned();
            }
            template = template.insert_header(k.as_str(), v.as_str());
        }
    }
    (template, poll_path)
}

#[tokio::test]
async fn long_running_delete_is_polled_to_completion() {
    let d = deployment();
    let server = MockServer::start().await;
    let (accepted, poll_path) = recorded_202(&server);
    assert!(poll_path.contains("/operations/"), "{poll_path}");
    Mock::given(method("DELETE"))
        .and(path(d.cluster_id()))
        .and(query_param("api-version", arm::api::MANAGED_CLUSTERS))
        .respond_with(accepted)
        .expect(1)
        .mount(&server)
        .await;
    // The two recorded polls (InProgress, then Succeeded), served at the 202's
    // Azure-AsyncOperation path (the recorded operation ids differ between the two files).
    let polls = fixture("recorded_aks_OperationStatus_InProgress_then_Succeeded.json");
    Mock::given(method("GET"))
        .and(path(poll_path.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(&polls[0]["response"]["body"]))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(poll_path.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(&polls[1]["response"]["body"]))
        .expect(1)
        .mount(&server)
        .await;
    client(&server)
        .delete(&d.cluster_id(), arm::api::MANAGED_CLUSTERS)
        .await
        .expect("operation succeeded");
    server.verify().await;
}

#[tokio::test]
async fn failed_operation_is_an_error_naming_the_resource() {
    let d = deployment();
    let server = MockServer::start().await;
    let (accepted, poll_path) = recorded_202(&server);
    Mock::given(method("DELETE"))
        .respond_with(accepted)
        .mount(&server)
        .await;
    // The recorded poll body with its status adapted to Failed.
    let mut body = fixture("recorded_aks_OperationStatus_InProgress_then_Succeeded.json")[1]
        ["response"]["body"]
        .clone();
    body["status"] = json!("Failed");
    Mock::given(method("GET"))
        .and(path(poll_path.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let err = client(&server)
        .delete(&d.cluster_id(), arm::api::MANAGED_CLUSTERS)
        .await
        .expect_err("Failed");
    assert!(matches!(err, ArmError::OperationFailed { .. }), "{err:?}");
    assert!(err.to_string().contains(&d.aks_cluster));
}

#[tokio::test]
async fn delete_resource_group_waits_for_404_and_is_idempotent() {
    let w = conforming();
    let server = MockServer::start().await;
    let id = w.d.resource_group_id();
    Mock::given(method("DELETE"))
        .and(path(id.as_str()))
        .and(query_param("api-version", arm::api::RESOURCE_GROUPS))
        .respond_with(rg_delete_202(&server))
        .expect(1)
        .mount(&server)
        .await;
    // Present for the first GET and one poll, then gone.
    Mock::given(method("GET"))
        .and(path(id.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(&w.rg))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(id.as_str()))
        .respond_with(not_found())
        .mount(&server)
        .await;
    let client = client(&server);
    let groups = ResourceGroups::new(&client, SUB);
    assert_eq!(
        groups.delete_resource_group(&w.d.resource_group).await,
        Ok(DeleteOutcome::Deleted)
    );
    let gets =
        |reqs: &[wiremock::Request]| reqs.iter().filter(|r| r.method.as_str() == "GET").count();
    assert_eq!(
        gets(&server.received_requests().await.unwrap_or_default()),
        3
    );
    assert_eq!(
        groups.delete_resource_group(&w.d.resource_group).await,
        Ok(DeleteOutcome::AlreadyAbsent)
    );
    server.verify().await;
}

#[tokio::test]
async fn sweep_deletes_exactly_the_expired_group() {
    let server = MockServer::start().await;
    let now = OffsetDateTime::now_utc();
    // Three groups from the recorded resource-group body, names and tags adapted.
    let group = |name: &str, tags: Option<Value>| {
        let mut g = named(
            recorded("recorded_resources_ResourceGroup_Get.json"),
            &format!("/subscriptions/{SUB}/resourceGroups/{name}"),
            name,
        );
        match tags {
            Some(t) => g["tags"] = t,
            None => {
                if let Some(o) = g.as_object_mut() {
                    o.remove("tags");
                }
            }
        }
        g
    };
    let groups = vec![
        group(
            "rg-edw-expired",
            Some(json!({"edw-run-id": "run-1", "edw-expires": "2020-01-01T00:00:00Z"})),
        ),
        group(
            "rg-edw-current",
            Some(json!({"edw-run-id": "run-2", "edw-expires": "2999-01-01T00:00:00+02:00"})),
        ),
        group("rg-untagged", None),
    ];
    Mock::given(method("GET"))
        .and(path(format!("/subscriptions/{SUB}/resourcegroups")))
        .and(query_param("api-version", arm::api::RESOURCE_GROUPS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "value": groups })))
        .mount(&server)
        .await;
    for (name, deletes) in [
        ("rg-edw-expired", 1),
        ("rg-edw-current", 0),
        ("rg-untagged", 0),
    ] {
        let id = format!("/subscriptions/{SUB}/resourceGroups/{name}");
        Mock::given(method("DELETE"))
            .and(path(id.as_str()))
            .respond_with(rg_delete_202(&server))
            .expect(deletes)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(id.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(groups_body(name)))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(id.as_str()))
            .respond_with(not_found())
            .mount(&server)
            .await;
    }
    let client = client(&server);
    let rgs = ResourceGroups::new(&client, SUB);
    let tags = ExpiryTags::default();
    let dry = rgs.sweep(&tags, now, true).await.expect("dry run");
    assert_eq!(dry.expired.len(), 1);
    assert_eq!(dry.expired[0].name, "rg-edw-expired");
    assert_eq!(dry.expired[0].run_id, "run-1");
    assert!(dry.deleted.is_empty());
    let report = rgs.sweep(&tags, now, false).await.expect("sweep");
    assert_eq!(report.deleted, vec!["rg-edw-expired".to_owned()]);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    server.verify().await;
}

fn groups_body(name: &str) -> Value {
    named(
        recorded("recorded_resources_ResourceGroup_Get.json"),
        &format!("/subscriptions/{SUB}/resourceGroups/{name}"),
        name,
    )
}

#[tokio::test]
async fn planted_token_never_appears_in_errors() {
    const PLANTED: &str = "eyJplanted.TOKEN-value-4f2a9c81";
    let server = MockServer::start().await;
    let d = deployment();
    // Hostile answers echoing the token: an ARM-shaped 401, a non-JSON 500, a malformed 200.
    Mock::given(method("GET"))
        .and(path(d.cluster_id()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {"code": "InvalidAuthenticationToken", "message": format!("token {PLANTED} rejected; Authorization: Bearer {PLANTED}")}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(d.resource_group_id()))
        .respond_with(ResponseTemplate::new(500).set_body_string(format!("oops {PLANTED}")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(d.storage_account_id()))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("{{\"id\": {PLANTED}")))
        .mount(&server)
        .await;
    let client = client_with(&server, PLANTED);
    let mut texts = Vec::new();
    for id in [
        d.cluster_id(),
        d.resource_group_id(),
        d.storage_account_id(),
    ] {
        let err = client.get(&id, "2025-10-01").await.expect_err("error");
        texts.push(format!("{err} {err:?}"));
    }
    for c in arm::validate(&client, &d).await {
        texts.push(format!("{c:?}"));
    }
    texts.push(format!("{client:?}"));
    // The token was sent.
    let sent = server.received_requests().await.unwrap_or_default();
    assert!(sent.iter().any(
        |r| r.headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {PLANTED}"))
    ));
    for t in &texts {
        assert!(!t.contains(PLANTED), "token leaked: {t}");
    }
}

#[tokio::test]
async fn malformed_json_is_an_error_naming_the_resource() {
    let server = MockServer::start().await;
    let d = deployment();
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"properties\": [1, 2"))
        .mount(&server)
        .await;
    let err = client(&server)
        .get(&d.cluster_id(), arm::api::MANAGED_CLUSTERS)
        .await
        .expect_err("malformed");
    assert!(matches!(err, ArmError::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains(&d.aks_cluster), "{err}");
    // validate() does not panic either: every check fails or is skipped.
    let checks = arm::validate(&client(&server), &d).await;
    assert!(
        checks.iter().all(|c| !c.is_passed()),
        "{}",
        summary(&checks)
    );
}

#[test]
fn deployment_from_config_names_every_missing_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = edw_engine::config::ConfigInputs {
        env: vec![
            ("RESOURCE_GROUP".to_owned(), "rg-aksdemo-k3x9q2".to_owned()),
            ("SUFFIX".to_owned(), "k3x9q2".to_owned()),
        ],
        working_dir: Some(dir.path().to_owned()),
        ..Default::default()
    };
    let config = edw_engine::config::Config::load(&inputs).expect("config");
    let err = Deployment::from_config(&config, &inputs.env).expect_err("incomplete");
    let DeploymentError::Missing { keys } = &err else {
        panic!("{err:?}");
    };
    for key in [
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AKS_CLUSTER_NAME",
        "KEDA_SERVICE_ACCT_CRED_NAME",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
        assert!(err.to_string().contains(key));
    }
    assert!(!keys
        .iter()
        .any(|k| k == "RESOURCE_GROUP" || k == "AZURE_QUEUE_NAME"));

    let mut env = inputs.env.clone();
    let d = deployment();
    for (k, v) in [
        ("AZURE_SUBSCRIPTION_ID", SUB),
        ("AZURE_STORAGE_ACCOUNT_NAME", d.storage_account.as_str()),
        (
            "AZURE_CONTAINER_REGISTRY_NAME",
            d.container_registry.as_str(),
        ),
        ("AKS_MANAGED_IDENTITY_NAME", d.aks_managed_identity.as_str()),
        ("AKS_CLUSTER_NAME", d.aks_cluster.as_str()),
        (
            "WORKLOAD_MANAGED_IDENTITY_NAME",
            d.workload_identity.as_str(),
        ),
        (
            "FEDERATED_IDENTITY_CREDENTIAL_NAME",
            d.federated_credential.as_str(),
        ),
        ("KEDA_SERVICE_ACCT_CRED_NAME", d.keda_credential.as_str()),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    let inputs = edw_engine::config::ConfigInputs { env, ..inputs };
    let config = edw_engine::config::Config::load(&inputs).expect("config");
    let from_config = Deployment::from_config(&config, &inputs.env).expect("complete");
    assert_eq!(from_config, d);
    assert_eq!(from_config.namespace, "aqs-demo");
}

#[test]
fn names_that_would_escape_the_resource_path_are_refused() {
    let err = Deployment::from_lookup(|k| {
        Some(if k == "AKS_CLUSTER_NAME" {
            "../x?y".to_owned()
        } else {
            "ok-name".to_owned()
        })
    })
    .expect_err("invalid");
    assert!(matches!(err, DeploymentError::Invalid { ref key, .. } if key == "AKS_CLUSTER_NAME"));
}

#[tokio::test]
async fn tagging_a_group_for_expiry_keeps_its_tags_and_adds_run_id_and_expiry() {
    let server = MockServer::start().await;
    let name = "rg-aksdemo-k3x9q2";
    let id = crate::support::arm_replay::mount_resource_group(&server, name).await;
    let client = client(&server);
    let groups = ResourceGroups::new(&client, SUB);
    let expires = OffsetDateTime::now_utc() + Duration::from_secs(6 * 3600);
    let tags = groups
        .tag_for_expiry(name, &ExpiryTags::default(), "edw-k3x9q2-1", expires)
        .await
        .expect("tagged");
    assert_eq!(tags["edw-run-id"], json!("edw-k3x9q2-1"));
    let requests = server.received_requests().await.unwrap_or_default();
    let put = requests
        .iter()
        .find(|r| r.method.as_str() == "PUT" && r.url.path() == id)
        .expect("a PUT of the group");
    let body: Value = serde_json::from_slice(&put.body).unwrap();
    // The recorded group's location and tags are kept; ours are added.
    assert_eq!(body["location"], json!("westus2"));
    assert_eq!(body["tags"]["product"], json!("azurecli"));
    assert_eq!(body["tags"]["edw-run-id"], json!("edw-k3x9q2-1"));
    let written = body["tags"]["edw-expires"].as_str().unwrap();
    let parsed =
        OffsetDateTime::parse(written, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(
        (parsed - expires).abs() < time::Duration::seconds(1),
        "{written}"
    );
}
