//! The aks run's own opening in the storage account's firewall (`edw run --storage-firewall
//! open-for-run`), against a mock Azure Resource Manager replaying the recorded Azure CLI
//! account that denies by default (IP rules 25.1.2.3 and 25.2.0.0/24, one subnet rule; id and
//! name adapted) and answering PATCHes as ARM does (tests/support/arm_replay.rs), with storage
//! on a real Azurite. The rule is recorded in the ledger before the PATCH that adds it, every
//! other rule is kept, and only the run's rule is removed: when the target cannot open, after
//! SIGKILL by `edw cleanup --run-state`, and by the cleanup step however the scenario ends.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edw_engine::runner::{Context, FlowSettings, RunOptions, Scenario, Step, StepFn};
use edw_engine::steps::storage_firewall::{cleanup_step, FirewallOpening};
use edw_model::report::StepStatus;
use serde_json::{json, Value};
use wiremock::MockServer;

use crate::support::arm_replay::{
    denying_account, example, mount_storage_account, storage_account_id, MockAccount, SUB,
};
use crate::support::cli::{edw, run as outcome, unreachable_kubeconfig, without_suite_azurite};
use crate::support::served::local_target;
use crate::support::steps::{fails, hangs, panics, passes, run_interrupting};
use crate::support::{eventually, Env};

const GROUP: &str = "rg-aksdemo-k3x9q2";
const ACCOUNT: &str = "storaksdemok3x9q2";
/// This machine's address, as EDW_RUNNER_IP gives it: in none of the recorded rules.
const ADDRESS: &str = "20.81.4.77";
const TOKEN: &str = "firewall-test-arm-token-never-printed";

/// `edw` in `dir` for the aks target: the mock ARM at `arm_url`, the deployment's names, storage
/// on the test's Azurite (a connection string: no data roles involved), this machine's address,
/// and a cluster that does not answer.
fn edw_aks(dir: &std::path::Path, arm_url: &str, env: &Env, address: &str) -> Command {
    let mut command = edw();
    without_suite_azurite(&mut command)
        .current_dir(dir)
        .env("EDW_ARM_TOKEN", TOKEN)
        .env("EDW_ARM_URL", arm_url)
        .env("EDW_ARM_POLL_INTERVAL", "50ms")
        .env("AZURE_SUBSCRIPTION_ID", SUB)
        .env("RESOURCE_GROUP", GROUP)
        .env("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)
        .env(
            "AZURE_STORAGE_CONNECTION_STRING",
            env.azurite.connection_string(),
        )
        .env("EDW_RUNNER_IP", address)
        .env("KUBECONFIG", unreachable_kubeconfig(dir));
    command
}

/// `edw run --target aks --storage-firewall open-for-run` with its reports in `dir/reports`.
fn edw_run_opening(dir: &std::path::Path, arm_url: &str, env: &Env, address: &str) -> Command {
    let mut command = edw_aks(dir, arm_url, env, address);
    command
        .args([
            "run",
            "--plain",
            "--target",
            "aks",
            "--storage-firewall",
            "open-for-run",
            "--report-dir",
        ])
        .arg(dir.join("reports"));
    command
}

/// The recorded account's network rules with `address` appended as an Allow rule.
fn with_rule(acls: &Value, address: &str) -> Value {
    let mut opened = acls.clone();
    opened["ipRules"]
        .as_array_mut()
        .expect("recorded ipRules")
        .push(json!({"value": address, "action": "Allow"}));
    opened
}

/// One aks run's surroundings: Azurite, a working directory, the mock ARM with the recorded
/// denying account (the ledger's text, or "<no ledger>", kept each time a PATCH arrives), and
/// the account's rules as recorded.
struct World {
    env: Env,
    dir: tempfile::TempDir,
    server: MockServer,
    ledger: std::path::PathBuf,
    account: MockAccount,
    ledger_at_patch: Arc<Mutex<Vec<String>>>,
    recorded: Value,
}

impl World {
    async fn new(first_patch_delay: Option<Duration>) -> World {
        let env = Env::start().await;
        let dir = tempfile::tempdir().unwrap();
        let server = MockServer::start().await;
        let ledger = dir.path().join("reports/edw-run.state");
        let ledger_at_patch = Arc::new(Mutex::new(Vec::new()));
        let (watch, path) = (ledger_at_patch.clone(), ledger.clone());
        let id = storage_account_id(GROUP, ACCOUNT);
        let account = mount_storage_account(
            &server,
            denying_account(&id, ACCOUNT),
            move |_| {
                let text =
                    std::fs::read_to_string(&path).unwrap_or_else(|_| "<no ledger>".to_owned());
                watch.lock().unwrap().push(text);
            },
            first_patch_delay,
        )
        .await;
        let recorded = account.network_acls();
        World {
            env,
            dir,
            server,
            ledger,
            account,
            ledger_at_patch,
            recorded,
        }
    }

    /// `edw run --target aks --storage-firewall open-for-run` from `address`.
    fn run_opening(&self, address: &str) -> Command {
        edw_run_opening(self.dir.path(), &self.server.uri(), &self.env, address)
    }

    /// The ledger line naming this machine's rule.
    fn ledger_line(&self) -> String {
        ledger_line(&self.server, ADDRESS)
    }

    fn ledger_text(&self) -> String {
        std::fs::read_to_string(&self.ledger).unwrap_or_default()
    }
}

fn ledger_line(server: &MockServer, address: &str) -> String {
    format!(
        "EDW_RUN_STORAGE_FIREWALL_RULE={}|{}|{address}",
        server.uri(),
        storage_account_id(GROUP, ACCOUNT)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_adds_its_address_keeping_every_rule_and_removes_it_when_the_target_cannot_open() {
    let w = World::new(None).await;
    let (code, stdout, stderr) = outcome(&mut w.run_opening(ADDRESS));
    let (account, recorded) = (&w.account, &w.recorded);

    // The cluster does not answer: environment failure, after the opening was undone.
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stderr.contains("ok   storage firewall: ")
            && stderr.contains("the run adds it for its duration"),
        "{stderr}"
    );
    assert!(stderr.contains("storage admits this machine"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "removed this run's IP rule {ADDRESS} from storage account {ACCOUNT} (its other rules untouched)"
        )),
        "{stderr}"
    );
    let patched = account.patched_acls();
    assert_eq!(patched.len(), 2, "{patched:#?}");
    // Added: every recorded rule kept (bypass, default action, both IP rules, the subnet), ours
    // appended.
    assert_eq!(patched[0], with_rule(recorded, ADDRESS));
    // Removed: exactly the recorded rules again.
    assert_eq!(&patched[1], recorded);
    assert_eq!(&account.network_acls(), recorded);
    // The body is the documented StorageAccounts_Update shape: properties.networkAcls, with the
    // fields the spec example's account shows.
    let documented = example("storage_2025-08-01_StorageAccountUpdate.json", "200");
    let known: Vec<&String> = documented["properties"]["networkAcls"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let first = account.patches.lock().unwrap()[0].clone();
    assert_eq!(
        first.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["properties"]
    );
    for key in first["properties"]["networkAcls"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(
            known.contains(&key),
            "{key} is not a documented networkAcls field"
        );
    }
    // The ledger named the rule before the PATCH that added it; once removed, it no longer does.
    let seen = w.ledger_at_patch.lock().unwrap().clone();
    assert!(seen[0].contains(&w.ledger_line()), "{seen:?}");
    let after = w.ledger_text();
    assert!(after.contains("EDW_RUN_TARGET=aks"), "{after}");
    assert!(!after.contains("EDW_RUN_STORAGE_FIREWALL_RULE"), "{after}");
    assert!(!stderr.contains(TOKEN) && !stdout.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_already_allowed_is_neither_added_recorded_nor_removed() {
    let w = World::new(None).await;
    // Inside the recorded rule 25.2.0.0/24.
    let (code, stdout, stderr) = outcome(&mut w.run_opening("25.2.0.77"));
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stderr.contains("storage firewall: 25.2.0.77 is already allowed by its IP rule 25.2.0.0/24: this run adds no rule and removes none"),
        "{stderr}"
    );
    assert!(
        w.account.patched_acls().is_empty(),
        "{:#?}",
        w.account.patched_acls()
    );
    assert_eq!(w.account.network_acls(), w.recorded);
    let text = w.ledger_text();
    assert!(!text.contains("EDW_RUN_STORAGE_FIREWALL_RULE"), "{text}");
}

/// edw killed (SIGKILL: no handler runs) while ARM is still answering the PATCH that adds its
/// rule: the ledger already names it, and `edw cleanup --run-state` removes it and only it
/// (a rule the team added meanwhile stays).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_opening_is_cleaned_from_its_ledger_leaving_the_teams_rules() {
    let w = World::new(Some(Duration::from_secs(60))).await;
    let (account, recorded) = (&w.account, &w.recorded);
    let mut child = w
        .run_opening(ADDRESS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let probe = account.clone();
    eventually(
        "the PATCH adding the run's rule reaches ARM",
        Duration::from_secs(60),
        || {
            let patches = probe.patched_acls().len();
            async move {
                if patches > 0 {
                    Ok(())
                } else {
                    Err(patches)
                }
            }
        },
    )
    .await;
    assert!(Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert_eq!(child.wait().unwrap().code(), None, "killed by a signal");
    let seen = w.ledger_at_patch.lock().unwrap().clone();
    assert!(seen[0].contains(&w.ledger_line()), "{seen:?}");
    // ARM applied it before the run died.
    assert_eq!(account.network_acls(), with_rule(recorded, ADDRESS));
    // Meanwhile the team allows an address of its own.
    let team = "20.99.1.1";
    {
        let mut state = account.state.lock().unwrap();
        let acls = with_rule(&state["properties"]["networkAcls"], team);
        state["properties"]["networkAcls"] = acls;
    }

    let mut cleanup = edw_aks(w.dir.path(), &w.server.uri(), &w.env, ADDRESS);
    cleanup
        .args(["cleanup", "--target", "aks", "--run-state"])
        .arg(&w.ledger);
    let (code, stdout, stderr) = outcome(&mut cleanup);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "removed this run's IP rule {ADDRESS} from storage account {ACCOUNT}"
        )),
        "{stdout}{stderr}"
    );
    // Only the run's rule went: the recorded ones and the team's stay.
    assert_eq!(account.network_acls(), with_rule(recorded, team));
    let text = w.ledger_text();
    assert!(
        text.contains("EDW_RUN_TARGET=aks") && !text.contains("EDW_RUN_STORAGE_FIREWALL_RULE"),
        "{text}"
    );
}

/// The cleanup step removes the run's rule (and nothing else) whatever ended the scenario,
/// even when `--keep-on-failure` keeps the rest; a rule already gone is left so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_rule_is_removed_however_the_run_ends() {
    std::env::set_var("EDW_ARM_TOKEN", TOKEN);
    std::env::set_var("EDW_ARM_POLL_INTERVAL", "50ms");
    let (target, config) = local_target().await;
    // (how it ends, the step, interrupted, keep on failure)
    let endings: [(&str, StepFn, bool, bool); 5] = [
        ("success", passes, false, false),
        ("a failed step", fails, false, false),
        ("a panic", panics, false, false),
        ("an interruption (Ctrl-C, SIGTERM)", hangs, true, false),
        ("a failed step with --keep-on-failure", fails, false, true),
    ];
    for (ending, step, interrupt, keep) in endings {
        let server = MockServer::start().await;
        let id = storage_account_id(GROUP, ACCOUNT);
        let mut opened = denying_account(&id, ACCOUNT);
        let recorded = opened["properties"]["networkAcls"].clone();
        opened["properties"]["networkAcls"] = with_rule(&recorded, ADDRESS);
        let account = mount_storage_account(&server, opened, |_| {}, None).await;
        let scenario = Scenario {
            name: "aks::storage-firewall".to_owned(),
            settings: FlowSettings::default(),
            steps: vec![Step::new("the run's work", Duration::from_secs(60), step)],
            cleanup: vec![
                Step::new("another cleanup", Duration::from_secs(10), passes),
                cleanup_step(),
            ],
        };
        let mut context = Context::new(target.clone(), config.clone(), scenario.settings.clone());
        context.storage_firewall_opening = Some(FirewallOpening {
            arm_url: server.uri(),
            account_id: id.clone(),
            address: ADDRESS.parse().unwrap(),
        });
        let options = RunOptions {
            keep_on_failure: keep,
            ..RunOptions::default()
        };
        let report = run_interrupting(&scenario, &mut context, &options, interrupt).await;
        assert_eq!(
            report.passed(),
            ending == "success",
            "{ending}: {:?}",
            report.steps
        );
        let removal = &report.cleanup[1];
        assert_eq!(removal.outcome, StepStatus::Passed, "{ending}: {removal:?}");
        assert_eq!(
            removal.details,
            [format!("removed this run's IP rule {ADDRESS} from storage account {ACCOUNT} (its other rules untouched)")],
            "{ending}"
        );
        if keep {
            assert!(
                matches!(&report.cleanup[0].outcome, StepStatus::Skipped { reason } if reason.contains("--keep-on-failure")),
                "{ending}: {:?}",
                report.cleanup[0]
            );
        }
        assert_eq!(account.network_acls(), recorded, "{ending}");
        assert_eq!(
            account.patched_acls(),
            std::slice::from_ref(&recorded),
            "{ending}"
        );
        assert!(context.storage_firewall_opening.is_none(), "{ending}");
    }

    // The rule is already gone (someone removed it): nothing is changed.
    let server = MockServer::start().await;
    let id = storage_account_id(GROUP, ACCOUNT);
    let account = mount_storage_account(&server, denying_account(&id, ACCOUNT), |_| {}, None).await;
    let scenario = Scenario {
        name: "aks::storage-firewall".to_owned(),
        settings: FlowSettings::default(),
        steps: vec![Step::new("the run's work", Duration::from_secs(60), passes)],
        cleanup: vec![cleanup_step()],
    };
    let mut context = Context::new(target.clone(), config.clone(), scenario.settings.clone());
    context.storage_firewall_opening = Some(FirewallOpening {
        arm_url: server.uri(),
        account_id: id,
        address: ADDRESS.parse().unwrap(),
    });
    let report = run_interrupting(&scenario, &mut context, &RunOptions::default(), false).await;
    assert_eq!(
        report.cleanup[0].details,
        [format!("this run's IP rule {ADDRESS} was no longer on storage account {ACCOUNT}: nothing removed")]
    );
    assert!(account.patched_acls().is_empty());
}
