//! `edw run --parallel`: scenarios side by side on one local twin, each in its own namespace,
//! queue, table and NodePool, each passing with its own nodes and writing its own reports,
//! with a combined summary and the wall time set against the sequential sum.

use crate::support::Env;

fn junit_suite(run_dir: &std::path::Path) -> (String, String) {
    let xml = std::fs::read_to_string(run_dir.join("junit.xml")).expect("junit.xml");
    let doc = roxmltree::Document::parse(&xml).expect("XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("testsuite");
    let attribute = |name: &str| suite.attribute(name).unwrap_or_default().to_owned();
    assert_eq!(attribute("failures"), "0", "{xml}");
    assert_eq!(attribute("errors"), "0", "{xml}");
    (attribute("timestamp"), attribute("time"))
}

/// The run's NodePool, as its node-growth step names it.
fn pool_of(run_dir: &std::path::Path) -> String {
    let xml = std::fs::read_to_string(run_dir.join("junit.xml")).expect("junit.xml");
    let at = xml
        .find("expected nodes of NodePool ")
        .unwrap_or_else(|| panic!("no node-growth step in {xml}"));
    xml[at + "expected nodes of NodePool ".len()..]
        .split_whitespace()
        .next()
        .expect("a pool name")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_scenarios_side_by_side_on_one_twin_each_pass_with_their_own_nodes() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = crate::support::cli::edw_binary();
    command
        .args(["run", "--plain", "--report-dir"])
        .arg(dir.path())
        .args([
            "--scenario",
            "flow::burst,flow::scale_to_zero,flow::ceiling",
            "--parallel",
            "3",
        ]);
    crate::support::served::use_azurite(&mut command, &env);
    let output = command.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("side by side on local: 3 scenario(s), 3 at a time, 3 passed, in ")
            && stdout.contains("one after another they would have taken about "),
        "{stdout}"
    );
    let mut pools = Vec::new();
    let mut spans = Vec::new();
    for name in [
        "flow-burst-local",
        "flow-scale_to_zero-local",
        "flow-ceiling-local",
    ] {
        let run_dir = dir.path().join(name);
        let (started, took) = junit_suite(&run_dir);
        let started =
            time::OffsetDateTime::parse(&started, &time::format_description::well_known::Rfc3339)
                .expect("an RFC 3339 timestamp");
        let took: f64 = took.parse().expect("seconds");
        spans.push((name, started, started + time::Duration::seconds_f64(took)));
        // Each counts its own NodePool: the nodes it priced are its own NodeClaims, all of
        // them, and none of another run's.
        let pool = pool_of(&run_dir);
        let lifecycle: edw_model::lifecycle::Lifecycle =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("lifecycle.json")).unwrap())
                .unwrap();
        assert!(
            !lifecycle.nodeclaims.is_empty()
                && lifecycle
                    .nodeclaims
                    .iter()
                    .all(|c| c.nodepool.as_deref() == Some(pool.as_str())),
            "{name}: {:?}",
            lifecycle.nodeclaims
        );
        let timeline: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("timeline.json")).unwrap())
                .unwrap();
        let priced: u64 = timeline["cost"]["sizes"]
            .as_array()
            .expect("cost sizes")
            .iter()
            .map(|s| s["nodes"].as_u64().unwrap())
            .sum();
        assert_eq!(
            priced,
            lifecycle.nodeclaims.len() as u64,
            "{name}: {timeline:#}"
        );
        pools.push(pool);
    }
    pools.sort();
    pools.dedup();
    assert_eq!(pools.len(), 3, "each run its own NodePool: {pools:?}");
    // They ran at the same time: each run's span overlaps every other's.
    for (a, a_start, a_end) in &spans {
        for (b, b_start, b_end) in &spans {
            assert!(
                a_start < b_end && b_start < a_end,
                "{a} and {b} did not overlap"
            );
        }
    }
    let combined = std::fs::read_to_string(dir.path().join("summary.md")).expect("summary.md");
    // One section per run (Markdown escapes the underscores of scale_to_zero).
    for heading in [
        "## flow::burst on `local` — ✅ passed",
        "## flow::scale\\_to\\_zero on `local` — ✅ passed",
        "## flow::ceiling on `local` — ✅ passed",
    ] {
        assert!(combined.contains(heading), "{heading}: {combined}");
    }
    // Every run cleaned up: no ledger is left.
    let ledgers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".state"))
        .collect();
    assert!(ledgers.is_empty(), "{ledgers:?}");
}

#[test]
fn parallel_zero_is_refused_naming_the_flag() {
    let output = crate::support::cli::edw_binary()
        .args(["run", "--parallel", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--parallel"), "{stderr}");
}
