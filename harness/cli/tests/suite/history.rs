//! `edw history`: runs added from their report folders, a planted slowdown flagged on exactly
//! its metric and night (and failing the report when the profile says so), a corrupted or
//! partial line named by its number while the rest is read, and concurrent adds from several
//! processes losing no line. (Real run folders: `gate.rs` adds a served twin's, `in_cluster_load.rs`
//! a local run's.)

use std::path::{Path, PathBuf};

use crate::support::cli::edw;

/// A run folder as `edw run` writes it (the fields history reads), for night `night`.
fn run_dir(root: &Path, night: usize, first_new_node: f64) -> PathBuf {
    let dir = root.join(format!("night-{night:02}"));
    std::fs::create_dir_all(&dir).unwrap();
    let timeline = serde_json::json!({
        "scenario": "flow::burst",
        "target": {"name": "aks", "description": "aks: a real cluster", "simulated": false},
        "started_at": format!("2026-11-{:02}T02:23:00Z", night + 1),
        "passed": true,
        "duration_seconds": 700.0,
        "phases": [
            {"name": "load start", "after_load_seconds": 0.0},
            {"name": "first scale-out", "after_load_seconds": 31.0 + (night % 3) as f64},
            {"name": "first new node", "after_load_seconds": first_new_node},
            {"name": "drained", "after_load_seconds": 260.0 - (night % 2) as f64 * 4.0}
        ]
    });
    std::fs::write(dir.join("timeline.json"), timeline.to_string()).unwrap();
    dir
}

fn output(command: &mut std::process::Command) -> (Option<i32>, String, String) {
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_planted_slowdown_is_flagged_on_its_metric_and_night_and_fails_when_the_profile_says() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("history/runs.jsonl");
    for night in 0..9 {
        let jitter = [0.0, 2.0, -1.5, 3.0, -2.0, 1.0, -0.5, 1.5, 0.0][night];
        let node = if night == 8 { 190.0 } else { 95.0 + jitter };
        let dir = run_dir(root.path(), night, node);
        let (code, stdout, stderr) = output(
            edw()
                .args(["history", "add", "--store"])
                .arg(&store)
                .arg(&dir),
        );
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        assert!(
            stdout.contains("added flow::burst on aks (passed, 3 metrics)"),
            "{stdout}"
        );
    }
    let out = root.path().join("out");
    let (code, stdout, stderr) = output(
        edw()
            .args(["history", "report", "--store"])
            .arg(&store)
            .arg("--out")
            .arg(&out),
    );
    assert_eq!(code, Some(0), "the shipped profile warns: {stdout}{stderr}");
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("regression"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    assert!(
        warnings[0]
            .starts_with("WARNING regression: phase.first_new_node on flow::burst aks: 190.0 s")
            && warnings[0].ends_with("2026-11-09T02:23:00Z"),
        "{stdout}"
    );
    let markdown = std::fs::read_to_string(out.join("history.md")).unwrap();
    let flagged: Vec<&str> = markdown.lines().filter(|l| l.starts_with("- 🔺")).collect();
    assert_eq!(
        flagged,
        ["- 🔺 flow::burst on aks phase.first_new_node: 2026-11-09T02:23:00Z (190.0 s)"],
        "{markdown}"
    );
    let svg = std::fs::read_to_string(out.join("history.svg")).unwrap();
    roxmltree::Document::parse(&svg).expect("history.svg is XML");
    assert_eq!(svg.matches("fill=\"#d62728\"").count(), 1, "{svg}");

    // A profile that fails on regressions fails the report.
    let profile = root.path().join("strict.yaml");
    std::fs::write(
        &profile,
        "profile: strict\nversion: 1\nregressions: fail\nrequired:\n  - {scenario: flow::burst, timeout: 30m}\n",
    )
    .unwrap();
    let (code, stdout, _) = output(
        edw()
            .args(["history", "report", "--store"])
            .arg(&store)
            .arg("--out")
            .arg(&out)
            .arg("--profile")
            .arg(&profile),
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("REGRESSION: phase.first_new_node"),
        "{stdout}"
    );
}

#[test]
fn a_corrupted_or_partial_line_is_named_and_the_rest_is_read() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("runs.jsonl");
    for night in 0..2 {
        let dir = run_dir(root.path(), night, 95.0);
        assert_eq!(
            output(
                edw()
                    .args(["history", "add", "--store"])
                    .arg(&store)
                    .arg(&dir)
            )
            .0,
            Some(0)
        );
    }
    // A line cut short (a killed writer) and garbage between the good ones.
    let text = std::fs::read_to_string(&store).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let damaged = format!(
        "{}\n{}\nnot json at all\n{}\n",
        lines[0],
        &lines[1][..lines[1].len() / 2],
        lines[1]
    );
    std::fs::write(&store, damaged).unwrap();
    let (code, stdout, stderr) = output(
        edw()
            .args(["history", "report", "--store"])
            .arg(&store)
            .arg("--out")
            .arg(root.path().join("out")),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("runs.jsonl line 2: not read"), "{stderr}");
    assert!(stderr.contains("runs.jsonl line 3: not read"), "{stderr}");
    assert!(
        !stderr.contains("line 1:") && !stderr.contains("line 4:"),
        "{stderr}"
    );
    assert!(stdout.starts_with("2 run(s)"), "{stdout}");
    // A folder that is not a run: named, nothing added.
    let (code, _, stderr) = output(
        edw()
            .args(["history", "add", "--store"])
            .arg(&store)
            .arg(root.path()),
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("timeline.json"), "{stderr}");
}

#[test]
fn concurrent_adds_from_several_processes_lose_no_line() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("runs.jsonl");
    let dirs: Vec<PathBuf> = (0..5).map(|n| run_dir(root.path(), n, 95.0)).collect();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (store, dirs) = (store.clone(), dirs.clone());
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let status = edw()
                        .args(["history", "add", "--store"])
                        .arg(&store)
                        .args(&dirs)
                        .output()
                        .unwrap()
                        .status;
                    assert!(status.success());
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let text = std::fs::read_to_string(&store).unwrap();
    let (entries, bad) = edw_model::history::parse(&text);
    assert!(bad.is_empty(), "{bad:?}");
    // 4 processes × 5 adds × 5 runs, each a whole line.
    assert_eq!(entries.len(), 100);
    assert_eq!(text.lines().count(), 100);
}
