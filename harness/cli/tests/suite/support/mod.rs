//! Shared test support: a real Azurite (the one of the test's nextest slot that
//! `ci/suite-azurite.sh` starts, or the test's own), run-scoped queue and table names, and an "eventually, within T" poll for
//! conditions that settle over time.

#![allow(dead_code)]

pub mod arm_replay;
pub mod cli;
pub mod served;
pub mod steps;

use std::future::Future;
use std::time::Duration;

use edw_engine::azurite::{Azurite, AzuriteOptions};
use edw_engine::storage::{Queue, Storage, Table};
use edw_engine::workload::poison_queue_name;
use edw_model::naming::{run_queue_name, run_table_name};

/// Azurite (embedded, or the one `EDW_AZURITE_*_ENDPOINT` names) and storage on it.
pub struct Env {
    pub azurite: Azurite,
    pub storage: Storage,
}

impl Env {
    /// The Azurite `EDW_AZURITE_*` names (under nextest, the slot's: every test names its queues
    /// and tables per run), else an embedded one of this test's own.
    pub async fn start() -> Env {
        Self::on(Azurite::start().await)
    }

    /// An embedded Azurite of this test's own, whatever `EDW_AZURITE_*` says: for a test that
    /// needs storage nobody else reads.
    pub async fn start_own() -> Env {
        Self::on(Azurite::start_with(&AzuriteOptions::default()).await)
    }

    fn on(azurite: Result<Azurite, edw_engine::azurite::AzuriteError>) -> Env {
        let azurite = azurite.unwrap_or_else(|e| panic!("Azurite: {e}"));
        let storage = Storage::connect(&azurite.storage_target()).expect("connect to Azurite");
        Env { azurite, storage }
    }

    /// A fresh queue, its poison queue and a fresh table, all created.
    pub async fn fresh(&self) -> (Queue, Queue, Table) {
        let queue = self.storage.queue(&run_queue_name("q"));
        let poison = self.storage.queue(&poison_queue_name(queue.name()));
        let table = self.storage.table(&run_table_name("t"));
        queue.create().await.expect("create queue");
        poison.create().await.expect("create poison queue");
        table.create().await.expect("create table");
        (queue, poison, table)
    }
}

/// The suite's Azurites (`ci/suite-azurite.sh` starts one per test slot and lists them in
/// `EDW_SUITE_AZURITE_POOL` as "queue table;queue table;…"), as (queue, table) endpoints; empty
/// outside nextest's setup. Only for a test that holds every slot (`.config/nextest.toml`
/// gives the chaos pair `threads-required = "num-test-threads"`, checked by
/// `workflows::the_tests_that_spread_over_the_suite_azurites_hold_every_slot`): nothing else
/// runs beside it, so it may spread its load over all of them instead of starting Node.js
/// processes of its own (about a second of CPU each on this machine).
pub fn suite_azurite_pool() -> Vec<(String, String)> {
    parse_suite_azurite_pool(&std::env::var("EDW_SUITE_AZURITE_POOL").unwrap_or_default())
}

fn parse_suite_azurite_pool(pool: &str) -> Vec<(String, String)> {
    pool.split(';')
        .filter_map(|entry| {
            let (queue, table) = entry.trim().split_once(' ')?;
            Some((queue.trim().to_owned(), table.trim().to_owned()))
        })
        .filter(|(queue, table)| !queue.is_empty() && !table.is_empty())
        .collect()
}

#[test]
fn the_suite_azurite_pool_lists_each_slots_queue_and_table_endpoints() {
    assert_eq!(
        parse_suite_azurite_pool(
            "http://127.0.0.1:1/devstoreaccount1 http://127.0.0.1:2/devstoreaccount1;http://127.0.0.1:3/devstoreaccount1 http://127.0.0.1:4/devstoreaccount1"
        ),
        vec![
            (
                "http://127.0.0.1:1/devstoreaccount1".to_owned(),
                "http://127.0.0.1:2/devstoreaccount1".to_owned()
            ),
            (
                "http://127.0.0.1:3/devstoreaccount1".to_owned(),
                "http://127.0.0.1:4/devstoreaccount1".to_owned()
            ),
        ]
    );
    assert!(parse_suite_azurite_pool("").is_empty());
    assert!(parse_suite_azurite_pool("only-a-queue-endpoint; ").is_empty());
}

/// Polls `probe` until it returns `Some`, failing with `what` and the last observation after
/// `within`.
pub async fn eventually<T, O, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    O: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, O>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(20);
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(observed) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not true within {within:?}; last observed: {observed:?}")
            }
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// The text of the `<tag>` child (`system-out`, `system-err`, `failure`) of the JUnit test case
/// named `case`, if the case has one.
pub fn junit_case_text<'a>(
    doc: &'a roxmltree::Document<'a>,
    case: &str,
    tag: &str,
) -> Option<&'a str> {
    doc.descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(case))?
        .children()
        .find(|n| n.has_tag_name(tag))
        .and_then(|n| n.text())
}

/// Asserts verify's counts line ("sent N, processed once N, duplicated N, lost N, stranded N,
/// poisoned N", found in `text`) for a run of `sent` messages that lost, duplicated and poisoned
/// none. A stranded tail is allowed (at most `max_stranded`, still on the queue at 0 replicas:
/// the walkthrough's configuration leaves one whenever KEDA's poll lands in the last messages
/// of a drain, the finding `stranded-tail`), so processed once + stranded = sent.
pub fn assert_every_message_accounted(text: &str, sent: u64, max_stranded: u64) {
    let line = text
        .lines()
        .find_map(|l| {
            let counts = l.find(", processed once ")?;
            Some(&l[l[..counts].rfind("sent ")?..])
        })
        .unwrap_or_else(|| panic!("no counts line (sent …, processed once …) in:\n{text}"));
    let count = |label: &str| -> u64 {
        line.split(", ")
            .find_map(|part| {
                part.strip_prefix(label)?
                    .trim()
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no \"{label}\" count in: {line}"))
    };
    let (once, stranded) = (count("processed once "), count("stranded "));
    assert_eq!(
        (
            count("sent "),
            count("duplicated "),
            count("lost "),
            count("poisoned ")
        ),
        (sent, 0, 0, 0),
        "{line}"
    );
    assert!(
        once + stranded == sent && stranded <= max_stranded,
        "processed once + stranded (at most {max_stranded}) must be {sent}: {line}"
    );
}

/// Asserts that summary.md `md` says its run passed with `n` warning(s) in its heading and in a
/// callout above the steps table; returns the callout's warning lines (`> - **step**: text`).
pub fn summary_warnings(md: &str, n: usize) -> Vec<&str> {
    let heading = md.lines().next().unwrap_or_default();
    let verdict = format!("— ⚠️ passed with {n} warning(s)");
    assert!(heading.ends_with(&verdict), "{heading}");
    let callout = md
        .find(&format!("> **{n} warning(s)** — the steps passed, but:"))
        .expect("the warnings callout");
    assert!(
        callout < md.find("### Steps").expect("steps"),
        "near the top: {md}"
    );
    let lines: Vec<&str> = md[callout..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("> - "))
        .collect();
    assert_eq!(lines.len(), n, "{md}");
    lines
}

#[test]
fn every_message_accounted_reads_the_counts_line_and_allows_only_a_stranded_tail() {
    let line = |once: u64, lost: u64, stranded: u64| {
        format!("ok   verify: sent 200 messages\n  WARN verify: sent 200, processed once {once}, duplicated 0, lost {lost}, stranded {stranded}, poisoned 0 (finding)\n")
    };
    assert_every_message_accounted(&line(200, 0, 0), 200, 20);
    assert_every_message_accounted(&line(197, 0, 3), 200, 20);
    for (text, why) in [
        (line(199, 1, 0), "a lost message"),
        (line(179, 0, 21), "a tail above the bound"),
        (line(199, 0, 0), "a message unaccounted"),
        ("sent 200 messages".to_owned(), "no counts line"),
    ] {
        let failed = std::panic::catch_unwind(|| assert_every_message_accounted(&text, 200, 20));
        assert!(failed.is_err(), "passed with {why}: {text}");
    }
}
