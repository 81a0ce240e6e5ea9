//! `edw doctor` through the binary. Every run starts from an empty environment (PATH, HOME and
//! the working directory are temporary directories the test fills), so what the machine has
//! installed or exported cannot change the outcome. Azure Resource Manager is a wiremock
//! server; the tools are shell scripts; the cluster is an unreachable address or a served twin.
//!
//! Response bodies for `GET /subscriptions/{id}` and the feature GET are hand-written in the
//! shapes ARM documents for them: fixtures/recorded/arm/ has no recording of either endpoint.

use std::path::PathBuf;
use std::process::{Output, Stdio};

use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A sanitized subscription id, as in the ARM recordings.
const SUB: &str = "00000000-0000-0000-0000-000000000000";
const FEATURE_PATH: &str = "/providers/Microsoft.Features/providers/Microsoft.ContainerService/features/NodeAutoProvisioningPreview";

/// An empty environment for one run: PATH (the `bin` folder), HOME and the working directory.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let sandbox = Sandbox {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(sandbox.bin()).unwrap();
        std::fs::create_dir(sandbox.dir.path().join("home")).unwrap();
        sandbox
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// An executable shell script `name` in the `bin` folder.
    fn tool(&self, name: &str, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let file = self.bin().join(name);
        std::fs::write(&file, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        file
    }

    /// `edw doctor` with `args`, only PATH and HOME set besides `env`.
    fn doctor(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = crate::support::cli::edw_binary();
        command
            .arg("doctor")
            .args(args)
            .env_clear()
            .env("PATH", self.bin())
            .env("HOME", self.dir.path().join("home"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        Run(command.output().unwrap())
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let file = self.dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        file
    }
}

struct Run(Output);

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    fn code(&self) -> Option<i32> {
        self.0.status.code()
    }

    /// The one line of check `name` (`ok   name: …`, `FAIL name: …`, `skip name: …`).
    fn line(&self, name: &str) -> String {
        let stdout = self.stdout();
        let lines: Vec<&str> = stdout
            .lines()
            .filter(|l| {
                l.get(5..)
                    .is_some_and(|rest| rest.starts_with(&format!("{name}: ")))
            })
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line for {name:?}\nstdout:\n{stdout}\nstderr:\n{}",
            self.stderr()
        );
        lines[0].to_owned()
    }
}

/// `GET /subscriptions/{id}`: a hand-written body in the documented shape (Subscriptions - Get).
fn subscription_body(state: &str) -> Value {
    json!({
        "id": format!("/subscriptions/{SUB}"),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": SUB,
        "tenantId": "11111111-1111-1111-1111-111111111111",
        "displayName": "edw conformance",
        "state": state,
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off"
        }
    })
}

/// The feature GET: a hand-written body in the documented shape (Features - Get).
fn feature_body(state: &str) -> Value {
    json!({
        "properties": {"state": state},
        "id": format!("/subscriptions/{SUB}{FEATURE_PATH}"),
        "type": "Microsoft.Features/providers/features",
        "name": "Microsoft.ContainerService/NodeAutoProvisioningPreview"
    })
}

/// ARM answering the subscription (once) and the feature (once) with these states.
async fn arm(subscription: &str, feature: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/subscriptions/{SUB}")))
        .and(query_param("api-version", "2022-12-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription_body(subscription)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/subscriptions/{SUB}{FEATURE_PATH}")))
        .and(query_param("api-version", "2021-07-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(feature_body(feature)))
        .expect(1)
        .mount(&server)
        .await;
    server
}

/// The `az` stand-in: `extension show --name aks-preview --output none` ends with `code`.
fn az_script(code: u8) -> String {
    format!(
        r#"if [ "$1 $2 $3 $4 $5 $6" = "extension show --name aks-preview --output none" ]; then
  [ {code} -eq 0 ] || echo "ERROR: The extension aks-preview is not installed." >&2
  exit {code}
fi
echo "unexpected az call: $*" >&2
exit 64"#
    )
}

#[tokio::test]
async fn aks_without_tools_fails_kubectl_az_and_jq_with_their_fixes() {
    let sandbox = Sandbox::new();
    let server = arm("Enabled", "Registered").await;
    let run = sandbox.doctor(
        &["--target", "aks", "--subscription", SUB],
        &[
            ("EDW_ARM_TOKEN", "doctor-test-token-without-tools"),
            ("EDW_ARM_URL", &server.uri()),
        ],
    );
    for (tool, fix) in [
        (
            "kubectl",
            "fix: install kubectl: https://kubernetes.io/docs/tasks/tools/",
        ),
        (
            "az",
            "fix: install the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli",
        ),
        ("jq", "fix: install jq: https://jqlang.org/download/"),
    ] {
        let line = run.line(&format!("tool {tool}"));
        assert!(
            line.starts_with(&format!("FAIL tool {tool}: {tool} is not on PATH")),
            "{line}"
        );
        assert!(line.contains(fix), "{line}");
    }
    // Not needed on aks: skipped, not failed.
    assert!(run.line("tool helm").starts_with("skip "));
    assert!(run.line("tool kind").starts_with("skip "));
    let extension = run.line("aks-preview extension");
    assert!(
        extension.starts_with("skip aks-preview extension: az is not on PATH"),
        "{extension}"
    );
    assert_eq!(run.code(), Some(3), "{}", run.stdout());
}

#[tokio::test]
async fn aks_tools_an_enabled_subscription_and_a_registered_feature_pass() {
    let sandbox = Sandbox::new();
    let kubectl = sandbox.tool("kubectl", "exit 0");
    let az = sandbox.tool("az", &az_script(0));
    let jq = sandbox.tool("jq", "exit 0");
    let server = arm("Enabled", "Registered").await;
    let run = sandbox.doctor(
        &["--target", "aks"],
        &[
            ("EDW_ARM_TOKEN", "doctor-test-token-with-tools"),
            ("EDW_ARM_URL", &server.uri()),
            ("AZURE_SUBSCRIPTION_ID", SUB),
        ],
    );
    for (name, file) in [("kubectl", &kubectl), ("az", &az), ("jq", &jq)] {
        assert_eq!(
            run.line(&format!("tool {name}")),
            format!("ok   tool {name}: {}", file.display())
        );
    }
    assert_eq!(
        run.line("ARM token"),
        "ok   ARM token: acquired (EDW_ARM_TOKEN) and accepted by ARM"
    );
    assert_eq!(
        run.line("subscription"),
        format!("ok   subscription: \"edw conformance\" ({SUB}) Enabled")
    );
    assert_eq!(
        run.line("NodeAutoProvisioningPreview feature"),
        "ok   NodeAutoProvisioningPreview feature: NodeAutoProvisioningPreview state Registered"
    );
    assert_eq!(
        run.line("aks-preview extension"),
        "ok   aks-preview extension: installed"
    );
    // No kubeconfig and no storage in the sandbox: those two fail, hence the exit code.
    assert!(run
        .line("cluster")
        .starts_with("FAIL cluster: no usable kubeconfig"));
    assert!(run
        .line("storage")
        .starts_with("FAIL storage: no storage configured"));
    assert_eq!(run.code(), Some(3), "{}", run.stdout());
}

#[tokio::test]
async fn a_feature_not_registered_fails_with_the_register_command() {
    let sandbox = Sandbox::new();
    sandbox.tool("az", &az_script(0));
    let server = arm("Enabled", "NotRegistered").await;
    let run = sandbox.doctor(
        &["--target", "aks", "--subscription", SUB],
        &[
            ("EDW_ARM_TOKEN", "doctor-test-token-not-registered"),
            ("EDW_ARM_URL", &server.uri()),
        ],
    );
    let line = run.line("NodeAutoProvisioningPreview feature");
    assert!(
        line.starts_with(
            "FAIL NodeAutoProvisioningPreview feature: state \"NotRegistered\", expected Registered"
        ),
        "{line}"
    );
    assert!(
        line.contains("fix: `az feature register --namespace Microsoft.ContainerService --name NodeAutoProvisioningPreview`"),
        "{line}"
    );
    assert!(run.line("subscription").starts_with("ok   "));
    assert_eq!(run.code(), Some(3));
}

#[tokio::test]
async fn a_disabled_subscription_fails() {
    let sandbox = Sandbox::new();
    let server = arm("Disabled", "Registered").await;
    let run = sandbox.doctor(
        &["--target", "aks", "--subscription", SUB],
        &[
            ("EDW_ARM_TOKEN", "doctor-test-token-disabled"),
            ("EDW_ARM_URL", &server.uri()),
        ],
    );
    let line = run.line("subscription");
    assert!(
        line.starts_with(&format!(
            "FAIL subscription: \"edw conformance\" ({SUB}) is \"Disabled\", expected Enabled"
        )),
        "{line}"
    );
    assert_eq!(run.code(), Some(3));
}

#[tokio::test]
async fn a_missing_aks_preview_extension_fails_with_the_add_command() {
    let sandbox = Sandbox::new();
    sandbox.tool("az", &az_script(1));
    let server = arm("Enabled", "Registered").await;
    let run = sandbox.doctor(
        &["--target", "aks", "--subscription", SUB],
        &[
            ("EDW_ARM_TOKEN", "doctor-test-token-no-extension"),
            ("EDW_ARM_URL", &server.uri()),
        ],
    );
    assert_eq!(
        run.line("aks-preview extension"),
        "FAIL aks-preview extension: not installed: ERROR: The extension aks-preview is not installed. \
         — fix: `az extension add --name aks-preview` (or `az extension update --name aks-preview`)"
    );
    assert_eq!(run.code(), Some(3));
}

#[tokio::test]
async fn without_a_subscription_the_token_is_tried_on_the_subscription_list() {
    let sandbox = Sandbox::new();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/subscriptions"))
        .and(query_param("api-version", "2022-12-01"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [subscription_body("Enabled")]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let run = sandbox.doctor(
        &["--target", "aks"],
        &[
            ("EDW_ARM_TOKEN", "doctor-test-token-no-subscription"),
            ("EDW_ARM_URL", &server.uri()),
        ],
    );
    assert_eq!(
        run.line("ARM token"),
        "ok   ARM token: acquired (EDW_ARM_TOKEN); ARM lists 1 subscription(s) for it"
    );
    let line = run.line("subscription");
    assert!(
        line.starts_with("FAIL subscription: no subscription given — fix: pass --subscription"),
        "{line}"
    );
    assert!(run
        .line("NodeAutoProvisioningPreview feature")
        .starts_with("skip "));
    assert_eq!(run.code(), Some(3));
}

#[tokio::test]
async fn the_arm_token_never_appears_in_the_output() {
    let sandbox = Sandbox::new();
    let token = "edw-doctor-SECRET-token-7f3a9c21d4";
    let server = MockServer::start().await;
    // A hostile error body that quotes the token back (real ARM says only "The access token
    // is invalid."): the message is printed, the token must not be.
    Mock::given(method("GET"))
        .and(path(format!("/subscriptions/{SUB}")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {
                "code": "InvalidAuthenticationToken",
                "message": format!("The access token {token} is invalid.")
            }
        })))
        .mount(&server)
        .await;
    let run = sandbox.doctor(
        &["-vvv", "--target", "aks", "--subscription", SUB],
        &[("EDW_ARM_TOKEN", token), ("EDW_ARM_URL", &server.uri())],
    );
    let line = run.line("ARM token");
    assert!(
        line.starts_with(
            "FAIL ARM token: a token was acquired, but ARM refused it (HTTP 401, InvalidAuthenticationToken): The access token *** is invalid."
        ),
        "{line}"
    );
    // The token was really sent, so it was in the process to leak.
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().any(|r| r
        .headers
        .get("authorization")
        .is_some_and(|v| v.to_str().unwrap() == format!("Bearer {token}"))));
    let (stdout, stderr) = (run.stdout(), run.stderr());
    assert!(!stdout.contains(token), "{stdout}");
    assert!(!stderr.contains(token), "{stderr}");
    assert_eq!(run.code(), Some(3));
}

fn kubeconfig(server: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: gone\ncurrent-context: gone\nusers:\n- name: gone\n  user:\n    token: {token}\npreferences: {{}}\n"
    )
}

#[test]
fn an_unreachable_cluster_fails_naming_its_server() {
    let sandbox = Sandbox::new();
    let kube_token = "kubeconfig-user-token-5be0c7a1e2";
    let config = sandbox.write(
        "gone.kubeconfig",
        &kubeconfig("https://127.0.0.1:1", kube_token),
    );
    let run = sandbox.doctor(
        &["--target", "kube"],
        &[("KUBECONFIG", config.to_str().unwrap())],
    );
    let line = run.line("cluster");
    assert!(
        line.starts_with("FAIL cluster: https://127.0.0.1:1/ does not answer /version"),
        "{line}"
    );
    assert!(line.contains("— fix: start the cluster"), "{line}");
    assert!(!run.stdout().contains(kube_token) && !run.stderr().contains(kube_token));
    // Azure is not the kube target's business: skipped, not passed.
    for name in [
        "ARM token",
        "subscription",
        "NodeAutoProvisioningPreview feature",
    ] {
        assert!(run.line(name).starts_with("skip "), "{}", run.line(name));
    }
    assert_eq!(run.code(), Some(3));
}

#[test]
fn the_local_target_needs_node_and_npm_only() {
    let sandbox = Sandbox::new();
    let run = sandbox.doctor(&[], &[]);
    let line = run.line("storage");
    assert!(
        line.starts_with(
            "FAIL storage: the embedded Azurite needs Node.js and npm, and node and npm not on PATH"
        ),
        "{line}"
    );
    assert_eq!(run.code(), Some(3));

    sandbox.tool("node", "exit 0");
    sandbox.tool("npm", "exit 0");
    let run = sandbox.doctor(&[], &[]);
    assert!(
        run.line("storage")
            .starts_with("ok   storage: embedded Azurite"),
        "{}",
        run.stdout()
    );
    for name in [
        "tool kubectl",
        "tool az",
        "tool jq",
        "tool helm",
        "tool kind",
        "ARM token",
        "subscription",
        "NodeAutoProvisioningPreview feature",
        "aks-preview extension",
        "cluster",
    ] {
        assert!(run.line(name).starts_with("skip "), "{}", run.line(name));
    }
    assert_eq!(run.code(), Some(0), "{}", run.stdout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_twin_with_azurite_passes_every_kube_check() {
    let env = crate::support::Env::start().await;
    let sandbox = Sandbox::new();
    let kubeconfig = sandbox.dir.path().join("twin.kubeconfig");
    let _served = crate::support::served::serve_twin(&env, &kubeconfig, &[]);
    for tool in ["kubectl", "helm", "kind"] {
        sandbox.tool(tool, "exit 0");
    }
    // A client whose engine answers `docker version --format {{.Server.Version}}`.
    sandbox.tool(
        "docker",
        r#"[ "$1 $2 $3" = "version --format {{.Server.Version}}" ] && echo 27.3.1"#,
    );
    let run = sandbox.doctor(
        &["--target", "kube"],
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ("EDW_AZURITE_QUEUE_ENDPOINT", env.azurite.queue_endpoint()),
            ("EDW_AZURITE_TABLE_ENDPOINT", env.azurite.table_endpoint()),
        ],
    );
    let cluster = run.line("cluster");
    assert!(
        cluster.starts_with("ok   cluster: http://127.0.0.1:")
            && cluster.ends_with("a SIMULATED cluster (an edw twin)"),
        "{cluster}"
    );
    for (name, endpoint) in [
        ("storage queue", env.azurite.queue_endpoint()),
        ("storage table", env.azurite.table_endpoint()),
    ] {
        assert_eq!(
            run.line(name),
            format!("ok   {name}: Azurite {endpoint} accepts connections")
        );
    }
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    assert_eq!(
        run.line("docker engine"),
        "ok   docker engine: Docker Engine 27.3.1"
    );
}

#[test]
fn a_docker_client_without_an_engine_fails_the_kube_target_only() {
    let sandbox = Sandbox::new();
    // As on a machine with the client alone: the client runs, the daemon does not answer.
    sandbox.tool(
        "docker",
        "echo 'Client: Docker Engine - Community'; echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2; exit 1",
    );
    let run = sandbox.doctor(&["--target", "kube"], &[]);
    let line = run.line("docker engine");
    assert!(
        line.starts_with("FAIL docker engine: the docker client reaches no engine: Cannot connect to the Docker daemon"),
        "{line}"
    );
    assert!(line.contains("fix: start the Docker engine"), "{line}");
    // The tool itself is there: only the engine is missing.
    assert!(run.line("tool docker").starts_with("ok   tool docker: "));
    assert_eq!(run.code(), Some(3));
    // Other targets do not need an engine: skipped, never passed.
    for target in ["local", "aks"] {
        let run = sandbox.doctor(&["--target", target], &[]);
        let line = run.line("docker engine");
        assert!(
            line.starts_with("skip docker engine: only kind") && line.contains(target),
            "{line}"
        );
    }
    // Without the client there is no engine to ask: skipped, the tool check fails instead.
    std::fs::remove_file(sandbox.bin().join("docker")).unwrap();
    let run = sandbox.doctor(&["--target", "kube"], &[]);
    assert!(run
        .line("docker engine")
        .starts_with("skip docker engine: docker is not on PATH"));
    assert!(run.line("tool docker").starts_with("FAIL tool docker: "));
}

// ---- What only the team can fix (aks): storage firewall, data roles, Kubernetes version ----
//
// The storage account is the recorded Azure CLI account that denies by default (IP rules
// 25.1.2.3 and 25.2.0.0/24, one subnet rule); the cluster is the recorded AKS 1.32.6 in
// westus2; the region's versions are the spec example's list (1.23–1.26). Ids and names are
// adapted to the deploy.state below, and every other change is made visibly in the test.

const GROUP: &str = "rg-aksdemo-k3x9q2";
const ACCOUNT: &str = "storaksdemok3x9q2";
const CLUSTER: &str = "aks-aksdemo-k3x9q2";
/// A key in base64, as account keys are (never printed).
const STORAGE_KEY: &str = "ZG9jdG9yLXRlc3Qta2V5LWZvci1zdG9yYWtzZGVtbw==";

impl Sandbox {
    /// The sample's deploy.state in the working directory, with `lines` (KEY=value).
    fn deploy_state(&self, lines: &[&str]) {
        std::fs::create_dir_all(self.dir.path().join("deployment")).unwrap();
        self.write("deployment/deploy.state", &(lines.join("\n") + "\n"));
    }
}

/// The environment of an aks doctor run against `server`: a token, the subscription, and
/// storage endpoints on loopback (the storage TCP check must not leave the machine).
fn aks_env<'a>(server: &'a MockServer, token: &'a str) -> Vec<(&'static str, String)> {
    vec![
        ("EDW_ARM_TOKEN", token.to_owned()),
        ("EDW_ARM_URL", server.uri()),
        ("AZURE_SUBSCRIPTION_ID", SUB.to_owned()),
        ("EDW_QUEUE_ENDPOINT", "http://127.0.0.1:1/".to_owned()),
        ("EDW_TABLE_ENDPOINT", "http://127.0.0.1:1/".to_owned()),
    ]
}

fn doctor_aks(sandbox: &Sandbox, env: &[(&'static str, String)]) -> Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sandbox.doctor(&["--target", "aks"], &env)
}

/// A sandbox whose deploy.state names the account (and, with a cluster, the cluster), an
/// account key for storage (no data roles needed), and the recorded denying account on ARM.
async fn firewall_world(server: &MockServer) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.deploy_state(&[
        "SUFFIX=k3x9q2",
        &format!("RESOURCE_GROUP={GROUP}"),
        &format!("AZURE_STORAGE_ACCOUNT_NAME={ACCOUNT}"),
    ]);
    mount_denying_account(server).await;
    sandbox
}

async fn mount_denying_account(server: &MockServer) {
    let id = crate::support::arm_replay::storage_account_id(GROUP, ACCOUNT);
    crate::support::arm_replay::mount_storage_account(
        server,
        crate::support::arm_replay::denying_account(&id, ACCOUNT),
        |_| {},
        None,
    )
    .await;
}

/// `edw doctor --target aks` on the recorded denying account, storage reached with an
/// account key (no data roles needed), with `extra` variables.
async fn doctor_with_account_key(extra: &[(&'static str, &str)]) -> Run {
    let server = arm("Enabled", "Registered").await;
    let sandbox = firewall_world(&server).await;
    let mut env = aks_env(&server, "doctor-test-token-firewall");
    env.push(("AZURE_STORAGE_KEY", STORAGE_KEY.to_owned()));
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    doctor_aks(&sandbox, &env)
}

#[tokio::test]
async fn a_storage_firewall_that_denies_this_machine_fails_with_the_exact_fix() {
    let run = doctor_with_account_key(&[("EDW_RUNNER_IP", "20.81.4.77")]).await;
    let line = run.line("storage firewall");
    assert!(
        line.starts_with(&format!(
            "FAIL storage firewall: storage account {ACCOUNT} denies by default (networkAcls.defaultAction Deny) and this machine's address 20.81.4.77 (from EDW_RUNNER_IP) is in none of its IP rules (25.1.2.3, 25.2.0.0/24); its 1 virtual network rule(s) admit only their subnets"
        )),
        "{line}"
    );
    for fix in [
        format!("`az storage account network-rule add --resource-group {GROUP} --account-name {ACCOUNT} --ip-address 20.81.4.77`"),
        "`--storage-firewall open-for-run`, or EDW_STORAGE_FIREWALL=open-for-run".to_owned(),
        "produce and verify from inside the cluster".to_owned(),
    ] {
        assert!(line.contains(&fix), "{fix}\n{line}");
    }
    // An account key needs no data role; no cluster is named: skipped, never passed.
    assert!(run
        .line("storage data roles")
        .starts_with("skip storage data roles: storage is reached with an account key"));
    assert!(run
        .line("Kubernetes version")
        .starts_with("skip Kubernetes version: the AKS cluster is not known: AKS_CLUSTER_NAME"));
    assert_eq!(run.code(), Some(3), "{}", run.stdout());
    assert!(!run.stdout().contains(STORAGE_KEY) && !run.stderr().contains(STORAGE_KEY));

    // The team opted in to the run's own opening: the run will add the address.
    let run = doctor_with_account_key(&[
        ("EDW_RUNNER_IP", "20.81.4.77"),
        ("EDW_STORAGE_FIREWALL", "open-for-run"),
    ])
    .await;
    let line = run.line("storage firewall");
    assert!(
        line.starts_with("ok   storage firewall: ")
            && line.contains("the run adds it for its duration and removes it however it ends"),
        "{line}"
    );
}

#[tokio::test]
async fn an_address_inside_an_allowed_cidr_passes_naming_the_rule() {
    // Inside the recorded rule 25.2.0.0/24.
    let run = doctor_with_account_key(&[("EDW_RUNNER_IP", "25.2.0.77")]).await;
    assert_eq!(
        run.line("storage firewall"),
        format!("ok   storage firewall: storage account {ACCOUNT} denies by default, and this machine's address 25.2.0.77 (from EDW_RUNNER_IP) is allowed by its IP rule 25.2.0.0/24")
    );
}

#[tokio::test]
async fn an_unknown_public_address_is_a_skip_naming_what_to_set() {
    // No EDW_RUNNER_IP, and an echo service that does not answer.
    let run = doctor_with_account_key(&[("EDW_PUBLIC_IP_URL", "http://127.0.0.1:1/")]).await;
    let line = run.line("storage firewall");
    assert!(
        line.starts_with(&format!("skip storage firewall: storage account {ACCOUNT} denies by default (networkAcls.defaultAction Deny, 2 IP rule(s)), and this machine's public address is unknown: the address echo service http://127.0.0.1:1/ did not answer")),
        "{line}"
    );
    assert!(
        line.contains("set EDW_RUNNER_IP=<this machine's public IPv4 address>"),
        "{line}"
    );
}

/// A JSON Web Token whose payload names `oid` (signed with nothing: ARM would check the
/// signature, the harness only reads the claims).
fn jwt(oid: &str) -> String {
    use base64::Engine as _;
    let part = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.dGVzdC1zaWduYXR1cmUtbm90LWNoZWNrZWQ",
        part(json!({"typ": "JWT", "alg": "RS256"})),
        part(
            json!({"aud": "https://management.azure.com", "oid": oid, "idtyp": "user", "scp": "user_impersonation"})
        )
    )
}

#[tokio::test]
async fn missing_data_roles_fail_with_the_role_assignment_command() {
    use crate::support::arm_replay::{assignment, storage_account_id};
    use edw_engine::arm::api::{STORAGE_QUEUE_DATA_CONTRIBUTOR, STORAGE_TABLE_DATA_CONTRIBUTOR};
    let account_id = storage_account_id(GROUP, ACCOUNT);
    let group_id = format!("/subscriptions/{SUB}/resourceGroups/{GROUP}");
    let token = jwt(OID);
    // Storage Queue Data Contributor inherited from the resource group; no table role.
    let (run, sandbox) = doctor_with_assignments(
        &token,
        vec![assignment(&group_id, STORAGE_QUEUE_DATA_CONTRIBUTOR, OID)],
        None,
    )
    .await;
    let line = run.line("storage data roles");
    assert!(
        line.starts_with(&format!("FAIL storage data roles: the signed-in User {OID} has no Storage Table Data Contributor on storage account {ACCOUNT}")),
        "{line}"
    );
    assert!(
        line.contains(&format!("— fix: `az role assignment create --assignee-object-id {OID} --assignee-principal-type User --role \"Storage Table Data Contributor\" --scope {account_id}`")),
        "{line}"
    );
    // The queue role it has (on the group) needs no fix.
    assert!(
        !line.contains("--role \"Storage Queue Data Contributor\""),
        "{line}"
    );
    assert!(run.line("storage firewall").starts_with("ok   "));
    assert_eq!(run.code(), Some(3), "{}", run.stdout());
    assert!(!run.stdout().contains(&token) && !run.stderr().contains(&token));

    // Both roles, the table one from the subscription: passed, naming where each is held.
    let (run, _) = doctor_with_assignments(
        &token,
        vec![
            assignment(&group_id, STORAGE_QUEUE_DATA_CONTRIBUTOR, OID),
            assignment(
                &format!("/subscriptions/{SUB}"),
                STORAGE_TABLE_DATA_CONTRIBUTOR,
                OID,
            ),
        ],
        Some(sandbox),
    )
    .await;
    assert_eq!(
        run.line("storage data roles"),
        format!("ok   storage data roles: the signed-in User {OID} has Storage Queue Data Contributor (on {group_id}) and Storage Table Data Contributor (on /subscriptions/{SUB})")
    );
}

/// The signed-in user's object id in the test tokens.
const OID: &str = "6f8e2b1c-3d4a-4e5f-9a0b-1c2d3e4f5a6b";

/// `edw doctor --target aks` signed in with `token` (storage through Entra ID: an account name
/// and no key; an address the account allows), ARM listing `assignments` once for [`OID`] at the
/// account's scope (at and above it, groups included); in `sandbox` or a new one.
async fn doctor_with_assignments(
    token: &str,
    assignments: Vec<Value>,
    sandbox: Option<Sandbox>,
) -> (Run, Sandbox) {
    let server = arm("Enabled", "Registered").await;
    let account_id = crate::support::arm_replay::storage_account_id(GROUP, ACCOUNT);
    let listed = Mock::given(method("GET"))
        .and(path(format!(
            "{account_id}/providers/Microsoft.Authorization/roleAssignments"
        )))
        .and(query_param("api-version", "2022-04-01"))
        .and(query_param(
            "$filter",
            format!("atScope() and assignedTo('{OID}')"),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "value": assignments })))
        .expect(1)
        .mount_as_scoped(&server)
        .await;
    let sandbox = match sandbox {
        Some(sandbox) => {
            mount_denying_account(&server).await;
            sandbox
        }
        None => firewall_world(&server).await,
    };
    let mut env = aks_env(&server, token);
    env.push(("EDW_RUNNER_IP", "25.1.2.3".to_owned()));
    let run = doctor_aks(&sandbox, &env);
    drop(listed);
    (run, sandbox)
}

/// ARM answering the recorded cluster (`change` applied to it, visibly) and the spec example's
/// versions for its region (`versions` applied).
async fn kubernetes_world(
    change_cluster: impl FnOnce(&mut Value),
    change_versions: impl FnOnce(&mut Value),
) -> (MockServer, Sandbox) {
    use crate::support::arm_replay::{example, recorded};
    let server = arm("Enabled", "Registered").await;
    let cluster_id = format!(
        "/subscriptions/{SUB}/resourceGroups/{GROUP}/providers/Microsoft.ContainerService/managedClusters/{CLUSTER}"
    );
    let mut cluster =
        recorded("recorded_aks_2025-10-01_ManagedCluster_Get_NAP_KEDA_WorkloadIdentity_OIDC.json");
    cluster["id"] = json!(cluster_id);
    cluster["name"] = json!(CLUSTER);
    change_cluster(&mut cluster);
    Mock::given(method("GET"))
        .and(path(cluster_id.as_str()))
        .and(query_param("api-version", "2025-10-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(cluster))
        .mount(&server)
        .await;
    let mut versions = example(
        "containerservice_2025-10-01_KubernetesVersions_List.json",
        "200",
    );
    change_versions(&mut versions);
    // The recorded cluster is in westus2 (the example's placeholder location is location1).
    Mock::given(method("GET"))
        .and(path(format!(
            "/subscriptions/{SUB}/providers/Microsoft.ContainerService/locations/westus2/kubernetesVersions"
        )))
        .and(query_param("api-version", "2025-10-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(versions))
        .mount(&server)
        .await;
    let sandbox = Sandbox::new();
    sandbox.deploy_state(&[
        "SUFFIX=k3x9q2",
        &format!("RESOURCE_GROUP={GROUP}"),
        &format!("AKS_CLUSTER_NAME={CLUSTER}"),
    ]);
    (server, sandbox)
}

#[tokio::test]
async fn an_unsupported_kubernetes_version_fails_with_the_upgrade_command() {
    // As recorded: 1.32.6, and the region's list (1.23–1.26) does not have 1.32.
    let (server, sandbox) = kubernetes_world(|_| {}, |_| {}).await;
    let run = doctor_aks(&sandbox, &aks_env(&server, "doctor-test-token-k8s"));
    let line = run.line("Kubernetes version");
    assert!(
        line.starts_with(&format!("FAIL Kubernetes version: managed cluster {CLUSTER} runs 1.32.6, and AKS in westus2 no longer supports 1.32 (standard support: 1.23, 1.24, 1.25)")),
        "{line}"
    );
    assert!(
        line.contains(&format!("`az aks upgrade --resource-group {GROUP} --name {CLUSTER} --kubernetes-version <version>`"))
            && line.contains("`az aks get-versions --location westus2 --output table`"),
        "{line}"
    );
    assert_eq!(run.code(), Some(3));

    // Changed: the cluster on 1.25.5, which the list supports.
    let (server, sandbox) = kubernetes_world(
        |cluster| cluster["properties"]["currentKubernetesVersion"] = json!("1.25.5"),
        |_| {},
    )
    .await;
    let run = doctor_aks(&sandbox, &aks_env(&server, "doctor-test-token-k8s-ok"));
    assert_eq!(
        run.line("Kubernetes version"),
        format!("ok   Kubernetes version: managed cluster {CLUSTER} runs 1.25.5, supported in westus2 (standard support: 1.23, 1.24, 1.25)")
    );

    // Changed: 1.25 offered with long-term support only, the cluster on KubernetesOfficial.
    let (server, sandbox) = kubernetes_world(
        |cluster| cluster["properties"]["currentKubernetesVersion"] = json!("1.25.5"),
        |versions| {
            versions["values"][2]["capabilities"]["supportPlan"] = json!(["AKSLongTermSupport"])
        },
    )
    .await;
    let run = doctor_aks(&sandbox, &aks_env(&server, "doctor-test-token-k8s-lts"));
    let line = run.line("Kubernetes version");
    assert!(
        line.starts_with(&format!("FAIL Kubernetes version: managed cluster {CLUSTER} runs 1.25.5: 1.25 has only long-term support in westus2 and the cluster's supportPlan is KubernetesOfficial")),
        "{line}"
    );
    assert!(
        line.contains("--k8s-support-plan AKSLongTermSupport"),
        "{line}"
    );
}
