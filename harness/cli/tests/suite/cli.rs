//! The `edw` binary end to end: every command against real Azurite, exit codes, and errors that
//! name their culprit without printing secrets.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::cli::{edw, edw_on, run, without_suite_azurite};
use crate::support::{eventually, Env};

#[test]
fn roundtrip_on_embedded_azurite_reports_exact_delivery() {
    let (code, stdout, stderr) = run(edw()
        .env_remove("EDW_AZURITE_QUEUE_ENDPOINT")
        .env_remove("EDW_AZURITE_TABLE_ENDPOINT")
        .args(["roundtrip", "--count", "120", "--workers", "3", "--json"]));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(report["exact"], true, "{report:#}");
    assert_eq!(report["reconciliation"]["sent"], 120);
    assert_eq!(report["reconciliation"]["processed_once"], 120);
    assert_eq!(
        report["reconciliation"]["lost"].as_array().map(Vec::len),
        Some(0)
    );
    assert_eq!(report["consume"]["processed"], 120);
}

#[tokio::test]
async fn produce_stats_and_consume_share_one_azurite() {
    let env = Env::start().await;
    let names = ["--queue", "cliqueue", "--table", "clitable"];

    let (code, stdout, stderr) = run(edw_on(&env).args(["produce", "--count", "30"]).args(names));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("sent 30 messages"), "{stdout}");

    let (code, stdout, stderr) = run(edw_on(&env).args(["queue", "stats", "--json"]).args(names));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let stats: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(stats[0]["queue"], "cliqueue");
    assert_eq!(stats[0]["approximate"], 30);
    assert_eq!(stats[0]["visible"], 30);
    assert_eq!(stats[0]["visible_is_lower_bound"], false);

    env.storage
        .queue("cliqueue")
        .send("not a sample message")
        .await
        .unwrap();
    let (code, stdout, stderr) = run(edw_on(&env)
        .args(["consume", "--until-empty", "--workers", "2"])
        .args(names));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("processed 30 messages"), "{stdout}");
    assert!(stdout.contains("poisoned 1 (malformed 1"), "{stdout}");
    assert_eq!(env.storage.table("clitable").count(None).await.unwrap(), 30);

    let (code, stdout, _) = run(edw_on(&env).args(["queue", "stats"]).args(names));
    assert_eq!(code, 0);
    assert!(stdout.contains("cliqueue: approximate 0"), "{stdout}");
    assert!(
        stdout.contains("cliqueue-poison: approximate 1"),
        "{stdout}"
    );
}

#[test]
fn config_shows_values_with_their_origin_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("deploy.state");
    std::fs::write(
        &state,
        "SUFFIX=ab12cd\r\nexport AZURE_COSMOSDB_TABLE=\"tbl\"\r\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(without_suite_azurite(&mut edw())
        .args(["config", "--state-file"])
        .arg(&state)
        .args(["--queue", "fromflag"])
        .env("AZURE_STORAGE_ACCOUNT_NAME", "storaksdemoab12cd")
        .env("AZURE_STORAGE_KEY", "c3VwZXItc2VjcmV0LWtleS12YWx1ZQ=="));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("AZURE_TABLE_NAME=tbl    # "), "{stdout}");
    assert!(stdout.contains("deploy.state:2"), "{stdout}");
    assert!(
        stdout.contains("AZURE_QUEUE_NAME=fromflag    # flag --queue"),
        "{stdout}"
    );
    assert!(
        stdout.contains("AQS_TARGET_NAMESPACE=aqs-demo    # the sample's default"),
        "{stdout}"
    );
    assert!(stdout.contains("AZURE_STORAGE_KEY=***"), "{stdout}");
    assert!(
        stdout.contains("storage: account \"storaksdemoab12cd\" with account key"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "  because AZURE_STORAGE_ACCOUNT_NAME (environment) and AZURE_STORAGE_KEY (environment) are set"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("c3VwZXItc2VjcmV0") && !stderr.contains("c3VwZXItc2VjcmV0"));
    assert!(
        stderr.contains("AZURE_COSMOSDB_TABLE is read as AZURE_TABLE_NAME"),
        "{stderr}"
    );
    // A piped stderr gets plain WARN lines, no terminal colour codes.
    assert!(
        stderr.contains("WARN") && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
}

#[test]
fn a_malformed_deploy_state_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("deploy.state");
    std::fs::write(&state, "SUFFIX=ab12cd\nRESOURCE_GROUP rg-aksdemo\n").unwrap();
    let (code, _, stderr) = run(edw().args(["queue", "stats", "--state-file"]).arg(&state));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{}:2: expected KEY=value", state.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn wrong_credentials_exit_3_without_printing_the_key() {
    let env = Env::start().await;
    let wrong = "d3Jvbmcta2V5LWZvci10aGUtY2xpLXRlc3Qtd3Jvbmcta2V5";
    let connection_string = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={wrong};QueueEndpoint={};TableEndpoint={};",
        env.azurite.queue_endpoint(),
        env.azurite.table_endpoint()
    );
    let (code, stdout, stderr) = run(without_suite_azurite(&mut edw())
        .args(["-vv", "produce", "--count", "1"])
        .env("AZURE_STORAGE_CONNECTION_STRING", &connection_string));
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stderr.contains("refused (403"), "{stderr}");
    assert!(
        !stderr.contains(wrong) && !stdout.contains(wrong),
        "{stderr}"
    );
}

/// Starts `edw azurite` with `env`; returns it and the queue and table endpoint values it
/// prints for `export`.
fn foreground_azurite(env: &[(&str, &str)]) -> (std::process::Child, String, String) {
    let mut command = edw();
    command
        .arg("azurite")
        .env_remove("EDW_AZURITE_QUEUE_ENDPOINT")
        .env_remove("EDW_AZURITE_TABLE_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut queue, mut table) = (String::new(), String::new());
    for line in lines {
        let line = line.unwrap();
        let line = line.trim();
        if let Some(value) = line.strip_prefix("export EDW_AZURITE_QUEUE_ENDPOINT=") {
            queue = value.to_owned();
        }
        if let Some(value) = line.strip_prefix("export EDW_AZURITE_TABLE_ENDPOINT=") {
            table = value.to_owned();
        }
        if line.contains("AZURE_STORAGE_CONNECTION_STRING=") {
            break;
        }
    }
    assert!(
        !queue.is_empty() && !table.is_empty(),
        "{queue:?} {table:?}"
    );
    (child, queue, table)
}

#[test]
fn azurite_runs_in_the_foreground_until_interrupted() {
    let (mut child, queue_endpoint, table_endpoint) = foreground_azurite(&[]);
    let endpoints = [queue_endpoint, table_endpoint];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let storage = edw_engine::storage::Storage::connect(
        &edw_engine::storage::StorageTarget::development(&endpoints[0], &endpoints[1]),
    )
    .unwrap();
    runtime.block_on(async {
        let queue = storage.queue("foreground");
        queue.create().await.unwrap();
        queue.send("hello").await.unwrap();
        assert_eq!(queue.approximate_count().await.unwrap(), 1);
    });

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "Ctrl-C is how `edw azurite` ends, and an interruption exits 130"
    );
    runtime.block_on(stops_serving(
        port_of(&endpoints[0]),
        "Azurite stopped with edw",
    ));
}

/// The loopback port of an Azurite endpoint (`http://127.0.0.1:PORT/account`).
fn port_of(endpoint: &str) -> u16 {
    endpoint
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no loopback port in {endpoint}"))
}

/// Waits until nothing accepts connections on `port` any more.
async fn stops_serving(port: u16, what: &str) {
    eventually(what, Duration::from_secs(10), || async move {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Err(_) => Ok(()),
            Ok(_) => Err(format!("port {port} still accepts connections")),
        }
    })
    .await;
}

/// An `edw` killed with SIGKILL runs no cleanup of its own: its Azurite's Node.js processes
/// still stop (they get SIGTERM when their parent dies), instead of serving on forever.
#[test]
fn a_killed_edw_leaves_no_azurite_running() {
    let (mut child, queue_endpoints, table_endpoint) =
        foreground_azurite(&[("EDW_AZURITE_QUEUE_PARTITIONS", "2")]);
    let ports: Vec<u16> = queue_endpoints
        .split(',')
        .chain([table_endpoint.as_str()])
        .map(port_of)
        .collect();
    assert_eq!(ports.len(), 3, "{queue_endpoints} {table_endpoint}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for &port in &ports {
        runtime
            .block_on(tokio::net::TcpStream::connect(("127.0.0.1", port)))
            .unwrap_or_else(|e| panic!("port {port} serves before the kill: {e}"));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for port in ports {
        runtime.block_on(stops_serving(port, "the killed edw's Azurite stopped"));
    }
}

#[test]
fn azurite_in_the_foreground_prints_every_queue_partition() {
    let (mut child, queue_endpoints, table_endpoint) =
        foreground_azurite(&[("EDW_AZURITE_QUEUE_PARTITIONS", "2")]);
    // What it prints is what `produce`/`consume`/`queue stats` take back: a list of two.
    let listed: Vec<&str> = queue_endpoints.split(',').collect();
    assert_eq!(listed.len(), 2, "{queue_endpoints}");
    let (code, stdout, stderr) = run(edw()
        .args(["produce", "--count", "6", "--queue", "partitioned"])
        .env("EDW_AZURITE_QUEUE_ENDPOINT", &queue_endpoints)
        .env("EDW_AZURITE_TABLE_ENDPOINT", &table_endpoint));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for endpoint in &listed {
            let alone = edw_engine::storage::Storage::connect(
                &edw_engine::storage::StorageTarget::development(endpoint, &table_endpoint),
            )
            .unwrap();
            let count = alone.queue("partitioned").approximate_count().await;
            assert_eq!(count.unwrap(), 3, "on {endpoint}");
        }
    });
    // Ctrl-C, so that edw stops its Azurite processes (a SIGKILL would orphan them).
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
}

#[test]
fn without_node_the_error_says_what_to_install() {
    let empty_cache = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(edw()
        .arg("azurite")
        .env_remove("EDW_AZURITE_QUEUE_ENDPOINT")
        .env_remove("EDW_AZURITE_TABLE_ENDPOINT")
        .env("PATH", empty_cache.path())
        .env("EDW_CACHE_DIR", empty_cache.path()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("Node.js"), "{stderr}");
    assert!(stderr.contains("apt-get install nodejs npm"), "{stderr}");
    assert!(stderr.contains("EDW_AZURITE_QUEUE_ENDPOINT"), "{stderr}");
}

/// A first Azurite install takes half a minute: it says so at the default verbosity, and says
/// when it is done, instead of being silent.
#[test]
fn a_first_azurite_install_shows_its_progress() {
    let empty_cache = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(edw()
        .args(["queue", "stats"])
        .env_remove("EDW_AZURITE_QUEUE_ENDPOINT")
        .env_remove("EDW_AZURITE_TABLE_ENDPOINT")
        .env("EDW_CACHE_DIR", empty_cache.path()));
    // The fresh Azurite has no queue yet: exit 3 naming it, after the install.
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(
        stderr.contains("installing Azurite") && stderr.contains("from npm into"),
        "{stderr}"
    );
    assert!(stderr.contains("installed in"), "{stderr}");
}

#[test]
fn bad_arguments_exit_2() {
    let (code, _, stderr) = run(edw().args(["produce", "--duration", "soon"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("\"soon\" is not a duration"), "{stderr}");
    let (code, _, stderr) = run(edw().args(["consume", "--batch", "64", "--until-empty"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("'--batch <BATCH>': 64 is not in 1..=32"),
        "{stderr}"
    );
    let (code, _, stderr) = run(edw().args(["produce", "--rate=-1", "--count", "3"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("rate must be a positive number"),
        "{stderr}"
    );
    let (code, _, stderr) = run(edw().args(["twin", "serve", "--activation-queue-length", "0"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--deploy-sample"), "{stderr}");
    let (code, _, stderr) = run(edw().args([
        "twin",
        "serve",
        "--deploy-sample",
        "--activation-queue-length=-1",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--activation-queue-length"), "{stderr}");
}
