//! `edw doctor` through the binary. Every run starts from an empty environment (PATH, HOME and
//! the working directory are temporary directories the test fills), so what the machine has
//! installed or exported cannot change the outcome. Azure Resource Manager is a wiremock
//! server; the tools are shell scripts; the cluster is an unreachable address or a served twin.
//!
//! Response bodies for `GET /subscriptions/{id}` and the feature GET are hand-written in the
//! shapes ARM documents for them: fixtures/recorded/arm/ has no recording of either endpoint.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

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
        let mut command = Command::new(env!("CARGO_BIN_EXE_edw"));
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
    let env = support::Env::start().await;
    let sandbox = Sandbox::new();
    let kubeconfig = sandbox.dir.path().join("twin.kubeconfig");
    let _served = support::served::serve_twin(&env, &kubeconfig, &[]);
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
