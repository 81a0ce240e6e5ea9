//! The Entra ID sign-in of `edw_engine::storage` (issue 16, "stale sign-in"): the credential chosen
//! from the environment, and the federated credential that asks GitHub's OIDC provider (or a
//! token file) for a fresh assertion whenever it needs a new Entra token. GitHub's OIDC
//! provider and Entra ID's token endpoint are wiremock servers replaying the payloads in
//! `fixtures/recorded/auth/` (see its PROVENANCE.md). Every setting is passed explicitly: no
//! test changes the process environment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use edw_engine::arm::{ArmClient, DefaultCredentialToken};
use edw_engine::storage::{
    AssertionSource, CredentialOptions, EntraCredential, EntraSignIn, FederatedIdentity,
    SignInError, DEFAULT_AUTHORITY_HOST,
};
use rstest::rstest;
use serde_json::Value;
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const TENANT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
/// What GitHub puts in ACTIONS_ID_TOKEN_REQUEST_TOKEN (a placeholder of realistic length).
const REQUEST_TOKEN: &str = "ghs-request-token-placeholder-0123456789abcdef";
/// The path of a runner's ACTIONS_ID_TOKEN_REQUEST_URL (its query is `api-version=2.0`).
const REQUEST_PATH: &str = "/00000000-0000-0000-0000-000000000000/idtoken/run/job";
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
const ARM_SCOPE: &str = "https://management.azure.com/.default";

fn fixture(name: &str) -> String {
    let file = format!(
        "{}/../../fixtures/recorded/auth/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The ID token in one of the recorded GitHub answers.
fn recorded_id_token(name: &str) -> String {
    let answer: Value = serde_json::from_str(&fixture(name)).expect("recorded JSON");
    answer["value"].as_str().expect("a value").to_owned()
}

const FIRST_ANSWER: &str = "github-oidc-token-response.json";
const SECOND_ANSWER: &str = "github-oidc-token-response-value-only.json";

/// A recorded answer as GitHub sends it.
fn github_answer(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "application/json; charset=utf-8")
}

/// The recorded Entra token answer.
fn entra_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(
        fixture("entra-token-response.json"),
        "application/json; charset=utf-8",
    )
}

/// The access token in the recorded Entra answer.
fn recorded_access_token() -> String {
    let answer: Value =
        serde_json::from_str(&fixture("entra-token-response.json")).expect("recorded JSON");
    answer["access_token"].as_str().expect("a token").to_owned()
}

fn token_path() -> String {
    format!("/{TENANT_ID}/oauth2/v2.0/token")
}

/// GitHub Actions federation against the two mock servers.
fn github_sign_in(github: &MockServer, entra: &MockServer) -> EntraSignIn {
    github_sign_in_at(
        &format!("{}{REQUEST_PATH}?api-version=2.0", github.uri()),
        entra,
    )
}

/// GitHub Actions federation with ID tokens from `request_url` and Entra ID at `entra`.
fn github_sign_in_at(request_url: &str, entra: &MockServer) -> EntraSignIn {
    EntraSignIn::from_env(env(&[
        ("ACTIONS_ID_TOKEN_REQUEST_URL", request_url),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
        ("AZURE_CLIENT_ID", CLIENT_ID),
        ("AZURE_TENANT_ID", TENANT_ID),
        ("AZURE_AUTHORITY_HOST", &entra.uri()),
    ]))
}

/// GitHub answers with the first recorded ID token, and is asked exactly `times` times.
async fn expect_github_requests(github: &MockServer, times: u64) {
    Mock::given(method("GET"))
        .respond_with(github_answer(FIRST_ANSWER))
        .expect(times)
        .mount(github)
        .await;
}

/// Entra ID exchanges each of `assertions` for the recorded token, and is asked for each
/// exactly once.
async fn expect_one_exchange_of_each(entra: &MockServer, assertions: &[&str]) {
    for assertion in assertions {
        Mock::given(method("POST"))
            .and(path(token_path()))
            .and(body_string_contains(format!(
                "client_assertion={assertion}"
            )))
            .respond_with(entra_answer())
            .expect(1)
            .mount(entra)
            .await;
    }
}

/// Options under which every Entra token is already within the refresh margin when it arrives
/// (the recorded one lives 86 399 s): what a long run sees near each token's end.
fn always_near_expiry() -> CredentialOptions {
    CredentialOptions {
        refresh_before_expiry: Duration::from_secs(25 * 3600),
        ..quick()
    }
}

/// The default refresh margin, short time limits and no retry waits.
fn quick() -> CredentialOptions {
    CredentialOptions {
        request_timeout: Duration::from_secs(5),
        transient_retries: 0,
        ..CredentialOptions::default()
    }
}

/// An environment lookup over `pairs`.
fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

/// No token text in `message`: not the request token, not an ID token, not an access token.
fn assert_no_token_text(message: &str) {
    for secret in [
        REQUEST_TOKEN.to_owned(),
        recorded_id_token(FIRST_ANSWER),
        recorded_id_token(SECOND_ANSWER),
        recorded_access_token(),
    ] {
        assert!(
            !message.contains(&secret),
            "a token is in the message: {message}"
        );
    }
    // Not even a piece of a JWT (every one starts with its base64url header).
    assert!(
        !message.contains("eyJ"),
        "a JWT is in the message: {message}"
    );
}

#[tokio::test]
async fn each_new_entra_token_is_exchanged_for_a_new_github_token() {
    let (github, entra) = (MockServer::start().await, MockServer::start().await);
    let (first, second) = (
        recorded_id_token(FIRST_ANSWER),
        recorded_id_token(SECOND_ANSWER),
    );
    assert_ne!(first, second, "the recordings hold two different ID tokens");
    // GitHub mints a new ID token for every request: the first answer once, then the second.
    Mock::given(method("GET"))
        .and(path(REQUEST_PATH))
        .respond_with(github_answer(FIRST_ANSWER))
        .up_to_n_times(1)
        .expect(1)
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path(REQUEST_PATH))
        .respond_with(github_answer(SECOND_ANSWER))
        .expect(1)
        .mount(&github)
        .await;
    // Entra sees each ID token exactly once: a credential that held on to the first one would
    // present it again (what the Azure CLI does, and fails with AADSTS700024 after 5 minutes).
    expect_one_exchange_of_each(&entra, &[&first, &second]).await;

    let credential = EntraCredential::new(&github_sign_in(&github, &entra), &always_near_expiry())
        .expect("credential");
    for _ in 0..2 {
        let token = credential.token(STORAGE_SCOPE).await.expect("a token");
        assert_eq!(token.expose(), recorded_access_token());
    }
    github.verify().await;
    entra.verify().await;
}

#[tokio::test]
async fn a_token_far_from_expiry_is_reused_for_its_scope() {
    let (github, entra) = (MockServer::start().await, MockServer::start().await);
    expect_github_requests(&github, 2).await;
    for scope in [
        "https%3A%2F%2Fstorage.azure.com%2F.default",
        "https%3A%2F%2Fmanagement.azure.com%2F.default",
    ] {
        Mock::given(method("POST"))
            .and(path(token_path()))
            .and(body_string_contains(format!("scope={scope}")))
            .respond_with(entra_answer())
            .expect(1)
            .mount(&entra)
            .await;
    }
    let credential =
        EntraCredential::new(&github_sign_in(&github, &entra), &quick()).expect("credential");
    // Three storage tokens and one ARM token: one exchange per scope.
    for scope in [STORAGE_SCOPE, STORAGE_SCOPE, ARM_SCOPE, STORAGE_SCOPE] {
        credential.token(scope).await.expect("a token");
    }
    github.verify().await;
    entra.verify().await;
}

#[rstest]
#[case::url_with_a_query("?api-version=2.0")]
#[case::url_without_a_query("")]
#[tokio::test]
async fn github_is_asked_for_entra_s_audience_with_the_request_token(#[case] query: &str) {
    let (github, entra) = (MockServer::start().await, MockServer::start().await);
    let mut wanted = Mock::given(method("GET"))
        .and(path(REQUEST_PATH))
        .and(query_param("audience", "api://AzureADTokenExchange"))
        .and(header(
            "authorization",
            format!("Bearer {REQUEST_TOKEN}").as_str(),
        ));
    if !query.is_empty() {
        wanted = wanted.and(query_param("api-version", "2.0"));
    }
    wanted
        .respond_with(github_answer(FIRST_ANSWER))
        .expect(1)
        .mount(&github)
        .await;
    let assertion = recorded_id_token(FIRST_ANSWER);
    Mock::given(method("POST"))
        .and(path(token_path()))
        .and(header(
            "content-type",
            "application/x-www-form-urlencoded",
        ))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains(
            "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
        ))
        .and(body_string_contains(format!("client_assertion={assertion}")))
        .and(body_string_contains(format!("client_id={CLIENT_ID}")))
        .and(body_string_contains(
            "scope=https%3A%2F%2Fstorage.azure.com%2F.default",
        ))
        .respond_with(entra_answer())
        .expect(1)
        .mount(&entra)
        .await;
    let sign_in = github_sign_in_at(&format!("{}{REQUEST_PATH}{query}", github.uri()), &entra);
    let token = EntraCredential::new(&sign_in, &quick())
        .expect("credential")
        .token(STORAGE_SCOPE)
        .await
        .unwrap_or_else(|e| panic!("no token: {e}"));
    assert_eq!(token.expose(), recorded_access_token());
    github.verify().await;
    entra.verify().await;
}

/// How GitHub's OIDC provider fails in a test.
#[derive(Debug, Clone, Copy)]
enum GithubFailure {
    /// 401, with a body that echoes the request's Authorization header (a proxy might).
    Unauthorized,
    /// 500 on every attempt.
    ServerError,
    /// Nothing listens at the URL.
    Unreachable,
    /// 200 with an HTML page instead of JSON.
    NotJson,
}

#[rstest]
#[case::unauthorized(GithubFailure::Unauthorized, &["HTTP 401", "id-token: write"])]
#[case::server_error(GithubFailure::ServerError, &["HTTP 500", "after 2 attempts"])]
#[case::unreachable(GithubFailure::Unreachable, &["no answer"])]
#[case::not_json(GithubFailure::NotJson, &["not the expected JSON"])]
#[tokio::test]
async fn a_failing_github_gives_a_clear_error_without_tokens(
    #[case] failure: GithubFailure,
    #[case] wanted: &[&str],
) {
    let (github, entra) = (MockServer::start().await, MockServer::start().await);
    let answer = match failure {
        GithubFailure::Unauthorized => Some(ResponseTemplate::new(401).set_body_string(format!(
            "{{\"message\":\"Unauthorized\",\"authorization\":\"Bearer {REQUEST_TOKEN}\"}}"
        ))),
        GithubFailure::ServerError => Some(ResponseTemplate::new(500)),
        GithubFailure::NotJson => Some(
            ResponseTemplate::new(200)
                .set_body_raw("<html><body>Service Unavailable</body></html>", "text/html"),
        ),
        GithubFailure::Unreachable => None,
    };
    let request_url = match answer {
        Some(answer) => {
            let attempts = if matches!(failure, GithubFailure::ServerError) {
                2
            } else {
                1
            };
            Mock::given(method("GET"))
                .respond_with(answer)
                .expect(attempts)
                .mount(&github)
                .await;
            format!("{}{REQUEST_PATH}?api-version=2.0", github.uri())
        }
        None => format!("http://{}{REQUEST_PATH}?api-version=2.0", closed_port()),
    };
    // Entra is never asked: there is no assertion to exchange.
    Mock::given(method("POST"))
        .respond_with(entra_answer())
        .expect(0)
        .mount(&entra)
        .await;
    let sign_in = github_sign_in_at(&request_url, &entra);
    let options = CredentialOptions {
        transient_retries: 1,
        ..quick()
    };
    let error = EntraCredential::new(&sign_in, &options)
        .expect("credential")
        .token(STORAGE_SCOPE)
        .await
        .expect_err("no token without GitHub");
    assert!(
        matches!(error, SignInError::GithubToken { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("ACTIONS_ID_TOKEN_REQUEST_URL"),
        "the message does not name the setting: {message}"
    );
    for part in wanted {
        assert!(message.contains(part), "{part:?} is not in: {message}");
    }
    assert_no_token_text(&message);
    assert_no_token_text(&format!("{error:?}"));
    github.verify().await;
    entra.verify().await;
}

/// An address nothing listens on (a port just released).
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    address.to_string()
}

#[tokio::test]
async fn an_assertion_entra_refuses_is_named_with_what_to_check() {
    let (github, entra) = (MockServer::start().await, MockServer::start().await);
    expect_github_requests(&github, 1).await;
    Mock::given(method("POST"))
        .and(path(token_path()))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            fixture("entra-token-error-AADSTS700024.json"),
            "application/json; charset=utf-8",
        ))
        .expect(1)
        .mount(&entra)
        .await;
    let error = EntraCredential::new(&github_sign_in(&github, &entra), &quick())
        .expect("credential")
        .token(STORAGE_SCOPE)
        .await
        .expect_err("Entra refused");
    let message = error.to_string();
    for part in [
        "HTTP 400",
        "invalid_client: AADSTS700024: Client assertion is not within its valid time range",
        &token_path(),
        CLIENT_ID,
        "GitHub Actions ID token",
        "federated credential",
        "api://AzureADTokenExchange",
    ] {
        assert!(message.contains(part), "{part:?} is not in: {message}");
    }
    assert!(
        !message.contains("Trace ID"),
        "only the explanation's first line: {message}"
    );
    assert_no_token_text(&message);
}

#[tokio::test]
async fn a_token_file_is_read_again_for_each_new_token() {
    let entra = MockServer::start().await;
    let (first, second) = (
        recorded_id_token(FIRST_ANSWER),
        recorded_id_token(SECOND_ANSWER),
    );
    expect_one_exchange_of_each(&entra, &[&first, &second]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, format!("{first}\n")).expect("write the token file");
    let sign_in = EntraSignIn::from_env(env(&[
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            file.to_str().expect("utf-8 path"),
        ),
        ("AZURE_CLIENT_ID", CLIENT_ID),
        ("AZURE_TENANT_ID", TENANT_ID),
        ("AZURE_AUTHORITY_HOST", &entra.uri()),
    ]));
    let credential = EntraCredential::new(&sign_in, &always_near_expiry()).expect("credential");
    credential.token(STORAGE_SCOPE).await.expect("first token");
    // What the kubelet (or a refresher) does: a new token in the same file.
    std::fs::write(&file, &second).expect("replace the token file");
    credential.token(STORAGE_SCOPE).await.expect("second token");
    entra.verify().await;

    std::fs::remove_file(&file).expect("remove the token file");
    let error = credential
        .token(STORAGE_SCOPE)
        .await
        .expect_err("no file, no token");
    let message = error.to_string();
    assert!(
        message.contains("AZURE_FEDERATED_TOKEN_FILE")
            && message.contains(&file.display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn azure_resource_manager_gets_its_token_from_the_same_credential() {
    let (github, entra, arm) = (
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
    );
    expect_github_requests(&github, 1).await;
    Mock::given(method("POST"))
        .and(path(token_path()))
        .and(body_string_contains(
            "scope=https%3A%2F%2Fmanagement.azure.com%2F.default",
        ))
        .respond_with(entra_answer())
        .expect(1)
        .mount(&entra)
        .await;
    let subscription = "/subscriptions/00000000-0000-0000-0000-000000000000";
    Mock::given(method("GET"))
        .and(path(subscription))
        .and(header(
            "authorization",
            format!("Bearer {}", recorded_access_token()).as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": subscription, "state": "Enabled"})),
        )
        .expect(1)
        .mount(&arm)
        .await;
    let credential =
        EntraCredential::new(&github_sign_in(&github, &entra), &quick()).expect("credential");
    let tokens = DefaultCredentialToken::from_credential(credential, ARM_SCOPE);
    assert!(
        tokens
            .describe()
            .starts_with("GitHub Actions OIDC federation"),
        "{}",
        tokens.describe()
    );
    let client = ArmClient::new(&arm.uri(), Arc::new(tokens)).expect("ARM client");
    client
        .get(subscription, "2022-12-01")
        .await
        .unwrap_or_else(|e| panic!("ARM: {e}"));
    github.verify().await;
    entra.verify().await;
    arm.verify().await;
}

/// The four variables GitHub Actions federation needs.
const GITHUB_FOUR: [(&str, &str); 4] = [
    (
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "https://run-actions-1-azure-eastus.actions.githubusercontent.com/1//idtoken/a/b?api-version=2.0",
    ),
    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
    ("AZURE_CLIENT_ID", CLIENT_ID),
    ("AZURE_TENANT_ID", TENANT_ID),
];

fn is_github(sign_in: &EntraSignIn) -> bool {
    matches!(
        sign_in,
        EntraSignIn::Federated {
            assertion: AssertionSource::GithubActions { .. },
            ..
        }
    )
}

#[test]
fn github_federation_is_chosen_only_when_all_four_variables_are_set() {
    let all = EntraSignIn::from_env(env(&GITHUB_FOUR));
    assert!(is_github(&all), "{all:?}");
    assert_eq!(
        all,
        EntraSignIn::Federated {
            identity: FederatedIdentity {
                client_id: CLIENT_ID.to_owned(),
                tenant_id: TENANT_ID.to_owned(),
                authority_host: DEFAULT_AUTHORITY_HOST.to_owned(),
            },
            assertion: AssertionSource::GithubActions {
                request_url: GITHUB_FOUR[0].1.to_owned(),
                request_token: edw_engine::secrets::Secret::new(REQUEST_TOKEN),
            },
        }
    );
    for missing in 0..GITHUB_FOUR.len() {
        let rest: Vec<(&str, &str)> = GITHUB_FOUR
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != missing)
            .map(|(_, pair)| *pair)
            .collect();
        let without = EntraSignIn::from_env(env(&rest));
        assert_eq!(
            without,
            EntraSignIn::DefaultChain,
            "without {}: {without:?}",
            GITHUB_FOUR[missing].0
        );
        // An empty value is no value.
        let mut empty: Vec<(&str, &str)> = GITHUB_FOUR.to_vec();
        empty[missing].1 = "";
        let with_empty = EntraSignIn::from_env(env(&empty));
        assert!(
            !is_github(&with_empty),
            "{} empty: {with_empty:?}",
            GITHUB_FOUR[missing].0
        );
    }
    assert_eq!(EntraSignIn::from_env(env(&[])), EntraSignIn::DefaultChain);
}

#[test]
fn a_token_file_is_used_when_github_is_not_and_github_wins_over_it() {
    let file = (
        "AZURE_FEDERATED_TOKEN_FILE",
        "/var/run/secrets/azure/tokens/azure-identity-token",
    );
    let host = ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/");
    let with_file = EntraSignIn::from_env(env(&[GITHUB_FOUR[2], GITHUB_FOUR[3], file, host]));
    assert_eq!(
        with_file,
        EntraSignIn::Federated {
            identity: FederatedIdentity {
                client_id: CLIENT_ID.to_owned(),
                tenant_id: TENANT_ID.to_owned(),
                authority_host: host.1.to_owned(),
            },
            assertion: AssertionSource::TokenFile(PathBuf::from(file.1)),
        }
    );
    let mut everything = GITHUB_FOUR.to_vec();
    everything.push(file);
    assert!(is_github(&EntraSignIn::from_env(env(&everything))));
    // A token file without the identity it signs in as: DefaultAzureCredential as before.
    assert_eq!(
        EntraSignIn::from_env(env(&[file])),
        EntraSignIn::DefaultChain
    );
}

#[test]
fn the_choice_is_described_without_secrets() {
    let github = EntraSignIn::from_env(env(&GITHUB_FOUR)).describe();
    assert!(
        github.contains("GitHub Actions OIDC federation")
            && github.contains(CLIENT_ID)
            && github.contains(TENANT_ID),
        "{github}"
    );
    assert!(!github.contains(REQUEST_TOKEN), "{github}");
    let default = EntraSignIn::DefaultChain.describe();
    assert!(default.contains("DefaultAzureCredential"), "{default}");
}

#[test]
fn an_unusable_request_url_is_named_before_anything_is_sent() {
    let mut settings = GITHUB_FOUR.to_vec();
    settings[0].1 = "idtoken?api-version=2.0";
    let error = EntraCredential::new(&EntraSignIn::from_env(env(&settings)), &quick())
        .expect_err("not a URL");
    let message = error.to_string();
    assert!(
        message.contains("ACTIONS_ID_TOKEN_REQUEST_URL"),
        "{message}"
    );
    assert_no_token_text(&message);
}
