//! The report writers for scenario runs: JUnit XML (snapshot, schema, structure), the JSON
//! timeline and lifecycle, the SVG chart, the Markdown summary (its latencies included), and
//! that no secret reaches any of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use edw_engine::findings::{Finding, Severity};
use edw_engine::report::{
    junit, lifecycle_json, summary_markdown, svg_chart, svg_chart_with, timeline_json, write_all,
    ChartClock,
};
use edw_engine::secrets::Secret;
use edw_model::lifecycle::{Lifecycle, NodeClaimLife, PodLife, ScaleEvent, LIFECYCLE_FORMAT};
use edw_model::report::{
    MeasuredClock, Observation, Phase, Read, ScenarioReport, StepReport, StepStatus, TargetInfo,
};
use edw_twin::cost::{estimate, NodeSpan};
use proptest::prelude::*;
use time::macros::datetime;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------
// Fixtures

const T0: OffsetDateTime = datetime!(2026-03-02 09:30:00 UTC);
const T1: OffsetDateTime = datetime!(2026-03-02 10:00:00 +01:00);

fn step(name: &str, outcome: StepStatus, start: u64, millis: u64) -> StepReport {
    step_at(T0, name, outcome, start, millis)
}

fn step_at(
    base: OffsetDateTime,
    name: &str,
    outcome: StepStatus,
    start: u64,
    millis: u64,
) -> StepReport {
    StepReport {
        name: name.to_owned(),
        outcome,
        started_at: base + Duration::from_secs(start),
        duration: Duration::from_millis(millis),
        details: Vec::new(),
        properties: Vec::new(),
        warnings: Vec::new(),
    }
}

fn with_details(mut s: StepReport, details: &[&str]) -> StepReport {
    s.details = details.iter().map(|d| (*d).to_owned()).collect();
    s
}

fn with_properties(mut s: StepReport, properties: &[(&str, &str)]) -> StepReport {
    s.properties = properties
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    s
}

fn finding(id: &str, severity: Severity, subject: &str, message: &str) -> Finding {
    Finding {
        id: id.to_owned(),
        severity,
        subject: subject.to_owned(),
        message: message.to_owned(),
        consequence: format!("the consequence of {id}"),
        fix: format!("the fix for {id}"),
    }
}

/// The walkthrough's findings: a risk and an info (with text that needs escaping).
fn walkthrough_findings() -> Vec<Finding> {
    vec![
        finding(
            "stranded-tail",
            Severity::Risk,
            "ScaledObject aws2az-queue-scaleobj: spec.triggers[0].metadata.activationQueueLength",
            "minReplicaCount is 0 and activationQueueLength is 20: a queue of 20 or fewer is never read",
        ),
        finding(
            "legacy-hpa-ramp",
            Severity::Info,
            "ScaledObject aws2az-queue-scaleobj: spec.advanced.horizontalPodAutoscalerConfig.behavior",
            "no HPA behavior | ramp 1 → 4 → 8 → 15 <per 15 s>",
        ),
    ]
}

fn nodes(pool: u64) -> BTreeMap<String, u64> {
    BTreeMap::from([("system".to_owned(), 1), ("edw-burst".to_owned(), pool)])
}

/// A passing run on the twin: 20 observations, every phase reached.
fn passing_simulated() -> ScenarioReport {
    // (queue, desired, running, pool nodes) every 10 s.
    let shape: [(u64, u64, u64, u64); 20] = [
        (0, 0, 0, 0),
        (1000, 0, 0, 0),
        (1000, 4, 0, 0),
        (960, 10, 3, 1),
        (820, 10, 6, 2),
        (640, 10, 10, 3),
        (450, 10, 10, 3),
        (260, 10, 10, 3),
        (90, 10, 10, 3),
        (0, 10, 10, 3),
        (0, 10, 10, 3),
        (0, 5, 5, 3),
        (0, 0, 0, 3),
        (0, 0, 0, 3),
        (0, 0, 0, 2),
        (0, 0, 0, 1),
        (0, 0, 0, 1),
        (0, 0, 0, 0),
        (0, 0, 0, 0),
        (0, 0, 0, 0),
    ];
    let timeline = shape
        .iter()
        .enumerate()
        .map(|(i, &(queue, desired, running, pool))| Observation {
            t: i as f64 * 10.0,
            queue: Some(queue),
            desired,
            ready: running,
            running,
            pending: desired.saturating_sub(running),
            nodes: nodes(pool),
            nodeclaims: pool,
            hpa_desired: Some(desired),
            unread: Vec::new(),
        })
        .collect();
    let phase = |name: &str, after: Option<f64>| Phase {
        name: name.to_owned(),
        after_load: after,
    };
    ScenarioReport {
        load_started_at: None,
        scenario: "burst::scale-out-and-drain".to_owned(),
        target: TargetInfo {
            name: "local".to_owned(),
            description: "local: simulated AKS (the twin, clock x20) + embedded Azurite".to_owned(),
            simulated: true,
            clock: MeasuredClock::TwinSimulated,
        },
        started_at: T0,
        duration: Duration::from_secs(195),
        steps: vec![
            with_details(
                step("deploy workload", StepStatus::Passed, 0, 1_250),
                &["applied 4 objects to namespace aqs-demo"],
            ),
            with_properties(
                step("produce 1000 messages", StepStatus::Passed, 2, 8_400),
                &[("messages", "1000")],
            ),
            with_properties(
                with_details(
                    step("scale out", StepStatus::Passed, 10, 52_000),
                    &[
                        "desired replicas: expected 10, observed 10",
                        "new nodes: expected > 0, observed 3",
                    ],
                ),
                &[("max_replicas", "10"), ("nodes_added", "3")],
            ),
            step("drain queue", StepStatus::Passed, 62, 30_000),
            step("scale to zero", StepStatus::Passed, 92, 30_000),
            step("nodes consolidated", StepStatus::Passed, 122, 50_000),
        ],
        cleanup: vec![
            step("delete workload", StepStatus::Passed, 180, 2_000),
            step("delete queue and table", StepStatus::Passed, 182, 900),
        ],
        timeline,
        phases: vec![
            phase("load start", Some(0.0)),
            phase("first scale-out", Some(12.0)),
            phase("max replicas", Some(20.0)),
            phase("first new node", Some(20.0)),
            phase("drained", Some(80.0)),
            phase("scaled to zero", Some(110.0)),
            phase("nodes consolidated", Some(160.0)),
        ],
        diagnostics: None,
        findings: walkthrough_findings(),
        // Three D2als_v6 claims, from 20/30/40 s to 150/160/170 s: 390 s = 0.108 node-h.
        cost: Some(estimate(
            &[20.0, 30.0, 40.0].map(|from| span("Standard_D2als_v6", from, from + 130.0)),
        )),
        lifecycle: None,
        prediction: None,
    }
}

fn span(size: &str, from: f64, until: f64) -> NodeSpan {
    NodeSpan::ended(size, "eastus", from, until)
}

/// A failing run on AKS: a failed step with a multi-line message, a skipped step, a
/// diagnostics bundle, phases that did not happen and a queue that could not always be read.
fn failing_cluster() -> ScenarioReport {
    let timeline = (0..6)
        .map(|i| Observation {
            t: f64::from(i) * 15.0,
            queue: if i == 2 { None } else { Some(1000) },
            desired: 0,
            ready: 0,
            running: 0,
            pending: 0,
            nodes: BTreeMap::from([("system".to_owned(), 2)]),
            nodeclaims: 0,
            hpa_desired: None,
            unread: Vec::new(),
        })
        .collect();
    ScenarioReport {
        load_started_at: None,
        scenario: "burst::scale-out-and-drain".to_owned(),
        target: TargetInfo {
            name: "aks".to_owned(),
            description: "aks: cluster edw-aks (westeurope), storage account edwstore".to_owned(),
            simulated: false,
            clock: MeasuredClock::Real,
        },
        started_at: T1,
        duration: Duration::from_secs(331),
        steps: vec![
            step_at(T1, "deploy workload", StepStatus::Passed, 0, 4_100),
            with_details(
                step_at(
                    T1,
                    "scale out",
                    StepStatus::Failed {
                        message: "desired replicas stayed at 0 for 300 s\nexpected: > 0 within 300 s\nobserved: 0 (KEDA reported \"no metrics\" & <nothing> else)".to_owned(),
                    },
                    5,
                    300_000,
                ),
                &[
                    "ScaledObject aqs-app: Ready=False, reason ScaledObjectCheckFailed",
                    "queue depth stayed at 1000",
                ],
            ),
            step_at(
                    T1,
                "drain queue",
                StepStatus::Skipped {
                    reason: "an earlier step failed".to_owned(),
                },
                305,
                0,
            ),
        ],
        cleanup: vec![with_details(
            step_at(T1, "delete workload", StepStatus::Passed, 306, 20_000),
            &["deleted 4 objects"],
        )],
        timeline,
        phases: vec![
            Phase {
                name: "load start".to_owned(),
                after_load: Some(0.0),
            },
            Phase {
                name: "first scale-out".to_owned(),
                after_load: None,
            },
            Phase {
                name: "drained".to_owned(),
                after_load: None,
            },
        ],
        diagnostics: Some(
            "$ kubectl -n aqs-demo get scaledobject aqs-app -o yaml\nstatus:\n  conditions:\n  - type: Ready\n    status: \"False\"\n```\nevents: <none>\n"
                .to_owned(),
        ),
        findings: Vec::new(),
        // A size the price snapshot does not have: named, not priced.
        cost: Some(estimate(&[
            span("Standard_D4als_v6", 0.0, 1800.0),
            span("Standard_E4s_v5", 0.0, 3600.0),
        ])),
        lifecycle: None,
        prediction: None,
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

fn snapshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name)
}

/// Compares `actual` with the checked-in snapshot `name`, byte for byte;
/// `EDW_UPDATE_SNAPSHOTS=1` rewrites the snapshot instead.
fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshot_path(name);
    if std::env::var("EDW_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("snapshot dir")).expect("create snapshots");
        std::fs::write(&path, actual).expect("write snapshot");
        eprintln!("updated snapshot {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "snapshot {} cannot be read ({e}); run with EDW_UPDATE_SNAPSHOTS=1 to write it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "output differs from snapshot {} (EDW_UPDATE_SNAPSHOTS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

fn xmllint_available() -> bool {
    Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Validates `xml` against `fixtures/schemas/junit.xsd` with xmllint, when installed.
fn validate_against_schema(xml: &str, label: &str) {
    if !xmllint_available() {
        println!("SKIPPED: xmllint not installed (schema validation of {label})");
        return;
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/schemas/junit.xsd");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("{label}.xml"));
    std::fs::write(&file, xml).expect("write xml");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("run xmllint");
    assert!(
        out.status.success(),
        "{label} does not validate against {}:\n{}{}",
        schema.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn count(doc: &roxmltree::Document, tag: &str) -> usize {
    doc.descendants().filter(|n| n.has_tag_name(tag)).count()
}

fn property<'a>(suite: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    suite
        .descendants()
        .find(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
        .and_then(|n| n.attribute("value"))
}

// ---------------------------------------------------------------------------------------
// JUnit

#[test]
fn junit_passing_simulated_run_matches_snapshot_and_schema() {
    let xml = junit(&[passing_simulated()]).expect("junit");
    assert_snapshot("junit_simulated_pass.xml", &xml);
    validate_against_schema(&xml, "junit_simulated_pass");

    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    assert_eq!(count(&doc, "testsuite"), 1);
    assert_eq!(count(&doc, "testcase"), 8);
    assert_eq!(count(&doc, "failure"), 0);
    assert_eq!(count(&doc, "skipped"), 0);
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("testsuite");
    assert_eq!(
        suite.attribute("name"),
        Some("burst::scale-out-and-drain [local] [simulated]")
    );
    assert_eq!(suite.attribute("tests"), Some("8"));
    assert_eq!(
        suite.attribute("timestamp"),
        Some("2026-03-02T09:30:00.000+00:00")
    );
    assert_eq!(property(suite, "target"), Some("local"));
    assert_eq!(property(suite, "simulated"), Some("true"));
    assert_eq!(property(suite, "phase.first scale-out"), Some("12.000"));
    assert_eq!(property(suite, "scale out.max_replicas"), Some("10"));
    assert_eq!(
        property(suite, "finding.stranded-tail"),
        Some("risk: minReplicaCount is 0 and activationQueueLength is 20: a queue of 20 or fewer is never read")
    );
    assert_eq!(
        property(suite, "finding.legacy-hpa-ramp"),
        Some("info: no HPA behavior | ramp 1 → 4 → 8 → 15 <per 15 s>")
    );
    let names: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert!(names.contains(&"cleanup: delete workload"), "{names:?}");
}

#[test]
fn junit_two_runs_match_snapshot_and_schema() {
    let xml = junit(&[passing_simulated(), failing_cluster()]).expect("junit");
    assert_snapshot("junit_two_runs.xml", &xml);
    validate_against_schema(&xml, "junit_two_runs");

    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    assert_eq!(count(&doc, "testsuite"), 2);
    assert_eq!(count(&doc, "testcase"), 8 + 4);
    assert_eq!(count(&doc, "failure"), 1);
    assert_eq!(count(&doc, "skipped"), 1);
    let root = doc.root_element();
    assert_eq!(root.attribute("tests"), Some("12"));
    assert_eq!(root.attribute("failures"), Some("1"));

    let suite = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testsuite")
                && n.attribute("name") == Some("burst::scale-out-and-drain [aks]")
        })
        .expect("the aks suite, without [simulated]");
    assert_eq!(property(suite, "target"), Some("aks"));
    assert_eq!(property(suite, "simulated"), Some("false"));
    assert_eq!(property(suite, "phase.drained"), Some("n/a"));
    assert!(
        !suite.descendants().any(|n| n.has_tag_name("property")
            && n.attribute("name")
                .is_some_and(|a| a.starts_with("finding."))),
        "no findings, no finding properties"
    );
    assert_eq!(
        suite.attribute("timestamp"),
        Some("2026-03-02T10:00:00.000+01:00")
    );

    let failure = suite
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .expect("failure");
    let message = failure.attribute("message").expect("message");
    assert!(
        message.starts_with("desired replicas stayed at 0 for 300 s"),
        "{message}"
    );
    let text = failure.text().unwrap_or_default();
    assert!(
        text.contains("observed: 0 (KEDA reported \"no metrics\" & <nothing> else)"),
        "{text}"
    );
    assert!(text.contains("ScaledObject aqs-app: Ready=False"), "{text}");
    let skipped = suite
        .descendants()
        .find(|n| n.has_tag_name("skipped"))
        .expect("skipped");
    assert_eq!(skipped.attribute("message"), Some("an earlier step failed"));
    let out = suite
        .children()
        .find(|n| n.has_tag_name("system-out"))
        .and_then(|n| n.text())
        .unwrap_or_default();
    assert!(
        out.contains("kubectl -n aqs-demo get scaledobject"),
        "{out}"
    );
}

#[test]
fn junit_of_nothing_is_an_empty_report() {
    let xml = junit(&[]).expect("junit");
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    assert_eq!(count(&doc, "testsuite"), 0);
    validate_against_schema(&xml, "junit_empty");
}

// ---------------------------------------------------------------------------------------
// Timeline JSON

#[test]
fn timeline_json_has_scenario_target_phases_and_observations() {
    let report = passing_simulated();
    let json: serde_json::Value =
        serde_json::from_str(&timeline_json(&report)).expect("valid JSON");
    assert_eq!(json["scenario"], "burst::scale-out-and-drain");
    assert_eq!(json["target"]["name"], "local");
    assert_eq!(json["target"]["simulated"], true);
    assert_eq!(json["passed"], true);
    assert_eq!(json["phases"].as_array().map(Vec::len), Some(7));
    assert_eq!(json["phases"][1]["after_load_seconds"], 12.0);
    assert_eq!(json["timeline"].as_array().map(Vec::len), Some(20));
    assert_eq!(json["timeline"][5]["total_nodes"], 4);
    assert_eq!(json["timeline"][5]["nodes"]["edw-burst"], 3);

    let failing: serde_json::Value =
        serde_json::from_str(&timeline_json(&failing_cluster())).expect("valid JSON");
    assert_eq!(failing["passed"], false);
    assert_eq!(
        failing["phases"][1]["after_load_seconds"],
        serde_json::Value::Null
    );
    assert_eq!(failing["timeline"][2]["queue"], serde_json::Value::Null);
}

// ---------------------------------------------------------------------------------------
// SVG

fn parse_svg(svg: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(svg).expect("well-formed SVG")
}

#[test]
fn svg_plots_every_series_and_phase_and_says_simulated() {
    let report = passing_simulated();
    let svg = svg_chart(&report);
    let doc = parse_svg(&svg);
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert_eq!(
        doc.root_element().tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let title = doc
        .descendants()
        .find(|n| n.has_tag_name("title"))
        .and_then(|n| n.text())
        .expect("title");
    assert!(title.contains("burst::scale-out-and-drain"), "{title}");
    assert!(title.contains("local"), "{title}");
    assert!(title.contains("SIMULATED"), "{title}");
    let visible = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("title"))
        .and_then(|n| n.text())
        .expect("visible title");
    assert!(visible.contains("SIMULATED"), "{visible}");

    let polylines: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .collect();
    assert_eq!(polylines.len(), 4);
    for id in [
        "series-queue",
        "series-desired",
        "series-running",
        "series-nodes",
    ] {
        let line = polylines
            .iter()
            .find(|n| n.attribute("id") == Some(id))
            .unwrap_or_else(|| panic!("no polyline {id}"));
        let points = line.attribute("points").unwrap_or_default();
        assert!(points.split(' ').count() >= 20, "{id}: {points}");
    }
    let markers: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("phase-marker"))
        .collect();
    assert_eq!(markers.len(), 7);
    assert!(markers
        .iter()
        .all(|m| m.attribute("stroke-dasharray").is_some()));
    // The drained marker sits at 80 s of a 0–190 s axis.
    let drained_x: f64 = markers[4]
        .attribute("x1")
        .and_then(|x| x.parse().ok())
        .expect("x1");
    assert!(
        (drained_x - (80.0 + 80.0 / 190.0 * 840.0)).abs() < 0.2,
        "{drained_x}"
    );
    for text in ["queue depth", "desired replicas", "running pods", "nodes"] {
        assert!(svg.contains(text), "legend lacks {text}");
    }
    assert!(!svg.contains("href"), "the SVG must not reference anything");
}

/// A sample whose Deployment, pod or node read failed is left out of that series (its zeros are
/// defaults, not a scale-in), and timeline.json says what it could not read.
#[test]
fn a_sample_that_could_not_read_the_workload_is_no_dip_to_zero() {
    let mut report = passing_simulated();
    let blind = 5;
    assert!(report.timeline[blind].desired > 0 && report.timeline[blind].running > 0);
    report.timeline[blind] = Observation {
        t: report.timeline[blind].t,
        queue: report.timeline[blind].queue,
        unread: vec![Read::Deployment, Read::Pods, Read::Nodes],
        ..Observation::default()
    };
    let svg = svg_chart(&report);
    let doc = parse_svg(&svg);
    let points = |id: &str| -> usize {
        doc.descendants()
            .find(|n| n.attribute("id") == Some(id))
            .and_then(|n| n.attribute("points"))
            .unwrap_or_default()
            .split(' ')
            .count()
    };
    let full = svg_chart(&passing_simulated());
    let full_doc = parse_svg(&full);
    let full_points = |id: &str| -> usize {
        full_doc
            .descendants()
            .find(|n| n.attribute("id") == Some(id))
            .and_then(|n| n.attribute("points"))
            .unwrap_or_default()
            .split(' ')
            .count()
    };
    for id in ["series-desired", "series-running", "series-nodes"] {
        assert!(
            points(id) < full_points(id),
            "{id} still plots the unread sample"
        );
    }
    assert_eq!(points("series-queue"), full_points("series-queue"));
    let json: serde_json::Value = serde_json::from_str(&timeline_json(&report)).unwrap();
    assert_eq!(
        json["timeline"][blind]["unread"],
        serde_json::json!(["deployment", "pods", "nodes"])
    );
    assert_eq!(
        json["timeline"][0].get("unread"),
        None,
        "absent when all was read"
    );
}

#[test]
fn svg_of_a_cluster_run_does_not_say_simulated_and_survives_odd_input() {
    let svg = svg_chart(&failing_cluster());
    let doc = parse_svg(&svg);
    let title = doc
        .descendants()
        .find(|n| n.has_tag_name("title"))
        .and_then(|n| n.text())
        .expect("title");
    assert!(
        title.contains("aks") && !title.contains("SIMULATED"),
        "{title}"
    );
    // Only the load start happened.
    assert_eq!(
        doc.descendants()
            .filter(|n| n.attribute("class") == Some("phase-marker"))
            .count(),
        1
    );
    assert!(svg.contains("did not happen: first scale-out, drained"));

    let mut odd = failing_cluster();
    odd.timeline.clear();
    odd.scenario = "<&\"'>\u{0}\u{1b}[31m".to_owned();
    odd.phases.push(Phase {
        name: "nan".to_owned(),
        after_load: Some(f64::NAN),
    });
    let svg = svg_chart(&odd);
    parse_svg(&svg);
    assert!(svg.contains("no observations recorded"));

    let mut odd = passing_simulated();
    odd.timeline[3].t = f64::INFINITY;
    odd.timeline[4].t = f64::NAN;
    odd.timeline[5].queue = Some(u64::MAX);
    odd.timeline[6].nodes.insert("huge".into(), u64::MAX / 2);
    parse_svg(&svg_chart(&odd));
    parse_svg(&svg_chart_with(
        &odd,
        ChartClock {
            load_start: f64::NAN,
            time_scale: 0.0,
        },
    ));
}

#[test]
fn svg_clock_scales_phase_markers() {
    let report = passing_simulated();
    let svg = svg_chart_with(
        &report,
        ChartClock {
            load_start: 10.0,
            time_scale: 2.0,
        },
    );
    let doc = parse_svg(&svg);
    let xs: Vec<f64> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("phase-marker"))
        .filter_map(|n| n.attribute("x1").and_then(|x| x.parse().ok()))
        .collect();
    // load start at 10 s, drained at 10 + 80/2 = 50 s, on a 0–190 s axis 840 px wide.
    let x = |t: f64| 80.0 + t / 190.0 * 840.0;
    assert!((xs[0] - x(10.0)).abs() < 0.2, "{xs:?}");
    assert!((xs[4] - x(50.0)).abs() < 0.2, "{xs:?}");
}

// ---------------------------------------------------------------------------------------
// Markdown summary

#[test]
fn summary_names_target_steps_phases_peaks_and_diagnostics() {
    let md = summary_markdown(&[passing_simulated(), failing_cluster()]);
    assert!(
        md.contains("## burst::scale-out-and-drain on `local` — ✅ passed"),
        "{md}"
    );
    assert!(
        md.contains("## burst::scale-out-and-drain on `aks` — ❌ failed"),
        "{md}"
    );
    assert_eq!(
        md.matches("SIMULATED (twin) — not a cluster result")
            .count(),
        1,
        "{md}"
    );
    assert!(md.contains("local: simulated AKS (the twin, clock x20) + embedded Azurite"));
    assert!(md.contains("aks: cluster edw-aks (westeurope)"));
    for name in [
        "deploy workload",
        "produce 1000 messages",
        "scale out",
        "drain queue",
        "scale to zero",
        "nodes consolidated",
        "cleanup: delete workload",
        "cleanup: delete queue and table",
    ] {
        assert!(
            md.contains(&format!("| {name} | ")),
            "no row for {name}:\n{md}"
        );
    }
    assert!(
        md.contains("| deploy workload | ✅ passed | 1.2 s |"),
        "{md}"
    );
    assert!(md.contains("| scale out | ❌ failed | 5m 00s | desired replicas stayed at 0 for 300 s<br>expected: &gt; 0 within 300 s<br>observed: 0 (KEDA reported \"no metrics\" &amp; &lt;nothing&gt; else) |"), "{md}");
    assert!(
        md.contains("| drain queue | ⏭ skipped | 0.000 s | an earlier step failed |"),
        "{md}"
    );
    assert!(md.contains("| first scale-out | 12.000 |"), "{md}");
    assert!(md.contains("| drained | n/a |"), "{md}");
    // Peaks of the passing run: 10 desired, 10 running, 4 nodes (3 + system), 1000 queued.
    assert!(md.contains("| 10 | 10 | 4 | 1000 |"), "{md}");
    // The passing run's findings, in a table, escaped; the failing run has none.
    assert_eq!(md.matches("### Findings").count(), 1, "{md}");
    assert!(
        md.contains("| Severity | Finding | Subject | Message | Consequence | Fix |"),
        "{md}"
    );
    assert!(md.contains("| ❗ risk | `stranded-tail` | ScaledObject aws2az-queue-scaleobj: spec.triggers\\[0\\].metadata.activationQueueLength | minReplicaCount is 0 and activationQueueLength is 20: a queue of 20 or fewer is never read | the consequence of stranded-tail | the fix for stranded-tail |"), "{md}");
    assert!(
        md.contains("| ℹ️ info | `legacy-hpa-ramp` |")
            && md.contains("no HPA behavior \\| ramp 1 → 4 → 8 → 15 &lt;per 15 s&gt;"),
        "{md}"
    );
    // The failing run's diagnostics, collapsed, fenced past the backticks they contain.
    assert_eq!(md.matches("<details>").count(), 1);
    assert!(md.contains("<summary>Diagnostics</summary>"));
    assert!(
        md.contains("````text\n$ kubectl -n aqs-demo get scaledobject"),
        "{md}"
    );
}

// ---------------------------------------------------------------------------------------
// write_all

#[test]
fn write_all_writes_the_four_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("nested/run");
    let written = write_all(&failing_cluster(), &out).expect("write_all");
    for path in written.paths() {
        assert!(path.starts_with(&out), "{}", path.display());
        let content = std::fs::read_to_string(path).expect("read");
        assert!(!content.is_empty(), "{} is empty", path.display());
    }
    assert!(written.junit.ends_with("junit.xml"));
    assert!(written.timeline_json.ends_with("timeline.json"));
    assert!(written.timeline_svg.ends_with("timeline.svg"));
    assert!(written.summary.ends_with("summary.md"));

    // A file where the directory should be: an error naming it, not a panic.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").expect("write");
    let err = write_all(&failing_cluster(), &blocker.join("sub")).expect_err("must fail");
    assert!(err.to_string().contains("file"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Secrets

const ACCOUNT_KEY: &str = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRg==";
const SAS_SIG: &str = "AbCdEf%2BGhIjKlMnOpQ%3D";
const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOi.payload.signature";

fn outputs(report: &ScenarioReport) -> Vec<(&'static str, String)> {
    vec![
        ("junit", junit(std::slice::from_ref(report)).expect("junit")),
        ("timeline.json", timeline_json(report)),
        (
            "lifecycle.json",
            lifecycle_json(report).expect("a planted lifecycle"),
        ),
        ("timeline.svg", svg_chart(report)),
        ("summary.md", summary_markdown(std::slice::from_ref(report))),
    ]
}

/// `report` with `text` planted in every free text it has.
fn plant(mut report: ScenarioReport, text: &str) -> ScenarioReport {
    report.scenario = format!("burst {text}");
    report.target.description = format!("aks: {text}");
    for s in report.steps.iter_mut().chain(report.cleanup.iter_mut()) {
        s.details.push(format!("saw {text} here"));
        s.properties
            .push((format!("key {text}"), format!("value {text}")));
        match &mut s.outcome {
            StepStatus::Failed { message } => message.push_str(&format!("\nconnection: {text}")),
            StepStatus::Skipped { reason } => reason.push_str(&format!(" ({text})")),
            StepStatus::Passed => {}
        }
    }
    report.phases.push(Phase {
        name: format!("phase {text}"),
        after_load: Some(1.0),
    });
    if let Some(o) = report.timeline.first_mut() {
        o.nodes.insert(format!("pool {text}"), 1);
    }
    report.cost = Some(estimate(&[span(&format!("size {text}"), 0.0, 60.0)]));
    report.lifecycle = Some(Lifecycle {
        pods: vec![PodLife {
            name: format!("aqs-app {text}"),
            node: Some(format!("node {text}")),
            created: Some(1.0),
            running: Some(2.0),
            ..PodLife::default()
        }],
        nodeclaims: vec![NodeClaimLife {
            name: format!("claim {text}"),
            nodepool: Some(format!("pool {text}")),
            instance_type: Some(format!("size {text}")),
            created: Some(1.0),
            node_ready: Some(3.0),
            ..NodeClaimLife::default()
        }],
        ..planted_lifecycle()
    });
    report.diagnostics = Some(format!(
        "{}\nenv: {text}\n",
        report.diagnostics.unwrap_or_default()
    ));
    report.findings.push(Finding {
        id: format!("planted {text}"),
        severity: Severity::Warning,
        subject: format!("subject {text}"),
        message: format!("message {text}"),
        consequence: format!("consequence {text}"),
        fix: format!("fix {text}"),
    });
    report
}

#[test]
fn no_secret_reaches_any_report() {
    let registered = Secret::new("edw-registered-secret-7f3a9c21");
    let planted = format!(
        "DefaultEndpointsProtocol=https;AccountName=edwstore;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net \
         https://edwstore.queue.core.windows.net/q?sv=2022-11-02&sig={SAS_SIG}&se=2026-03-03 \
         Authorization: Bearer {TOKEN} token={}",
        registered.expose()
    );
    for report in [
        plant(passing_simulated(), &planted),
        plant(failing_cluster(), &planted),
    ] {
        let mut all = outputs(&report);
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_all(&report, dir.path()).expect("write_all");
        for path in written.paths() {
            all.push(("file", std::fs::read_to_string(path).expect("read")));
        }
        for (name, out) in &all {
            for secret in [ACCOUNT_KEY, SAS_SIG, TOKEN, registered.expose()] {
                assert!(!out.contains(secret), "{name} contains {secret}:\n{out}");
            }
            // The surroundings survive: redaction removes only the secret.
            assert!(out.contains("AccountName=edwstore"), "{name}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn registered_secrets_never_reach_a_report(
        value in "[A-Za-z0-9]{6}[A-Za-z0-9+/=_.-]{6,40}",
        before in "[ -~]{0,12}",
        after in "[ -~]{0,12}",
    ) {
        let secret = Secret::new(value.clone());
        let text = format!("{before} {} {after}\nline two: {}", secret.expose(), secret.expose());
        for base in [passing_simulated(), failing_cluster()] {
            let report = plant(base, &text);
            for (name, out) in outputs(&report) {
                prop_assert!(!out.contains(&value), "{} contains {}", name, value);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Clocks and costs (issue 17 items 3 and 4)

/// Step durations are real time everywhere; the phases, the timeline and the node-hours are
/// on the target's clock, and each report says which: simulated seconds on the local twin,
/// real seconds on a cluster, simulated seconds of a served twin that states its clock, and
/// real seconds of the harness (not the twin's) against one that does not.
#[test]
fn every_report_names_the_clock_of_its_figures() {
    for (clock, phase_header, node_hours, axis) in [
        (
            MeasuredClock::TwinSimulated,
            "| Phase | After load start, in simulated seconds (the twin's governed clock) |",
            "| Node-hours (simulated s) |",
            "time since the run started (simulated seconds (the twin&apos;s governed clock))",
        ),
        (
            MeasuredClock::Real,
            "| Phase | After load start, in real seconds (wall clock) |",
            "| Node-hours (real s) |",
            "time since the run started (real seconds (wall clock))",
        ),
        (
            MeasuredClock::ServedTwinSimulated,
            "| Phase | After load start, in simulated seconds (the served twin's governed clock, read over its API) |",
            "| Node-hours (simulated s) |",
            "time since the run started (simulated seconds (the served twin&apos;s governed clock",
        ),
        (
            MeasuredClock::RealAgainstServedTwin,
            "| Phase | After load start, in real seconds on the harness's wall clock (the served twin's own simulated clock runs faster, at its --scale) |",
            "| Node-hours (real s) |",
            "time since the run started (real seconds on the harness&apos;s wall clock",
        ),
    ] {
        let mut report = passing_simulated();
        report.target.clock = clock;
        let md = summary_markdown(std::slice::from_ref(&report));
        for label in [
            phase_header,
            node_hours,
            "| Step | Result | Duration (real time) | Message |",
            "**Duration:** 3m 15s (real time)",
            &format!(
                "**Clock:** step durations are real time; the timeline, phases and node-hours are {}",
                clock.describe()
            ),
            &format!("_20 observations, from 0 to 190 {} after the run started._", clock.unit()),
        ] {
            assert!(md.contains(label), "{clock:?}: no {label:?} in\n{md}");
        }
        let svg = svg_chart(&report);
        assert!(svg.contains(axis), "{clock:?}: the axis does not name its clock");
        assert!(
            svg.contains(&format!("drained (+80.0 {})", clock.unit())),
            "{clock:?}: a phase marker without its clock"
        );
        assert!(svg.contains("3m 15s (real time)"), "{clock:?}");
        let xml = junit(std::slice::from_ref(&report)).expect("junit");
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let suite = doc
            .descendants()
            .find(|n| n.has_tag_name("testsuite"))
            .expect("testsuite");
        assert_eq!(property(suite, "clock.steps"), Some("real time"));
        assert_eq!(property(suite, "clock.phases"), Some(clock.describe()));
        let json: serde_json::Value =
            serde_json::from_str(&timeline_json(&report)).expect("valid JSON");
        assert_eq!(json["clock"]["steps_and_duration"], "real time");
        assert_eq!(
            json["clock"]["timeline_phases_and_node_hours"],
            clock.describe()
        );
    }
}

/// The nodes by VM size, their node-hours and the estimated cost, with the price snapshot's
/// region and date; a twin estimate is labelled simulated, and a size without a price is named
/// and left out of the total, never guessed.
#[test]
fn every_report_shows_nodes_by_size_node_hours_and_the_estimated_cost() {
    let md = summary_markdown(&[passing_simulated()]);
    for label in [
        "### Nodes by size and estimated cost",
        "| VM size | NodeClaims | Node-hours (simulated s) | USD per hour (eastus snapshot of 2026-06-18) | Estimated USD |",
        "| Standard\\_D2als\\_v6 | 3 | 0.108 | 0.0804 | 0.0087 |",
        "**SIMULATED estimate** (the twin chose the sizes): **Total:** $0.0087 for 0.108 node-h (3 nodes).",
        "prices: eastus snapshot of 2026-06-18",
    ] {
        assert!(md.contains(label), "no {label:?} in\n{md}");
    }
    let cluster = summary_markdown(&[failing_cluster()]);
    for label in [
        "| Standard\\_D4als\\_v6 | 1 | 0.500 | 0.161 | 0.0805 |",
        "| Standard\\_E4s\\_v5 | 1 | 1.000 | no price for Standard\\_E4s\\_v5 | n/a |",
        "**Total:** $0.0805 for 1.500 node-h (2 nodes); without Standard\\_E4s\\_v5 (no price).",
    ] {
        assert!(cluster.contains(label), "no {label:?} in\n{cluster}");
    }
    assert!(!cluster.contains("SIMULATED"), "{cluster}");

    let xml = junit(&[passing_simulated(), failing_cluster()]).expect("junit");
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(property(suites[0], "cost.estimated_usd"), Some("0.0087"));
    assert_eq!(property(suites[0], "cost.node_hours"), Some("0.108"));
    assert_eq!(property(suites[0], "cost.simulated"), Some("true"));
    assert_eq!(
        property(suites[0], "nodes.Standard_D2als_v6"),
        Some("Standard_D2als_v6: 3 nodes, 0.108 node-h × $0.0804/h = $0.0087")
    );
    assert!(property(suites[0], "cost.prices")
        .is_some_and(|p| p.starts_with("prices: eastus snapshot of 2026-06-18")));
    assert_eq!(property(suites[1], "cost.simulated"), Some("false"));
    assert_eq!(
        property(suites[1], "cost.unpriced"),
        Some("Standard_E4s_v5")
    );
    assert_eq!(
        property(suites[1], "nodes.Standard_E4s_v5"),
        Some("Standard_E4s_v5: 1 node, 1.000 node-h, no price for Standard_E4s_v5 in the eastus snapshot")
    );

    let json: serde_json::Value =
        serde_json::from_str(&timeline_json(&failing_cluster())).expect("valid JSON");
    assert_eq!(json["cost"]["price_region"], "eastus");
    assert_eq!(json["cost"]["price_date"], "2026-06-18");
    assert_eq!(json["cost"]["unpriced"][0], "Standard_E4s_v5");
    assert_eq!(json["cost"]["sizes"][1]["usd"], serde_json::Value::Null);
}

// ---------------------------------------------------------------------------------------
// Warnings (issue 15): a passed step that warns

const COUNTS: &str = "sent 1000, processed once 988, duplicated 0, lost 0, stranded 12, poisoned 0";

/// The passing run, its verify step warned about a stranded tail of 12.
fn passing_with_a_stranded_tail() -> ScenarioReport {
    let mut report = passing_simulated();
    let mut verify = with_properties(
        with_details(
            step(edw_engine::steps::VERIFY_STEP, StepStatus::Passed, 172, 300),
            &[COUNTS, "peak desired replicas 10 (maxReplicaCount 15)"],
        ),
        &[("messages.stranded", "12"), ("messages.lost", "0")],
    );
    verify.warnings = vec![format!(
        "stranded tail: 12 of 1000 sent message(s) were not processed; they are still on the queue at 0 replicas (12 <= activationQueueLength 20 with minReplicaCount 0, the configuration's finding `stranded-tail`) and wait for the next traffic ({COUNTS})"
    )];
    report.steps.push(verify);
    report
}

#[test]
fn junit_with_a_warning_stays_passed_carries_it_in_system_err_and_validates() {
    let report = passing_with_a_stranded_tail();
    assert!(report.passed(), "a warning does not fail the run");
    let xml = junit(&[report]).expect("junit");
    assert_snapshot("junit_stranded_tail_warning.xml", &xml);
    assert!(
        xmllint_available(),
        "xmllint is needed for this test (libxml2-utils)"
    );
    validate_against_schema(&xml, "junit_stranded_tail_warning");

    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    assert_eq!(count(&doc, "testcase"), 9);
    assert_eq!(count(&doc, "failure"), 0);
    assert_eq!(count(&doc, "system-err"), 1, "only the warned case");
    let verify = edw_engine::steps::VERIFY_STEP;
    let err = crate::support::junit_case_text(&doc, verify, "system-err").expect("system-err");
    assert!(
        err.starts_with("WARNING: stranded tail: 12 of 1000") && err.contains(COUNTS),
        "{err}"
    );
    let out = crate::support::junit_case_text(&doc, verify, "system-out").expect("system-out");
    assert!(out.starts_with(COUNTS), "{out}");
}

#[test]
fn summary_shows_warnings_near_the_top_and_in_the_step_row() {
    let md = summary_markdown(&[passing_with_a_stranded_tail()]);
    let warnings = crate::support::summary_warnings(&md, 1);
    assert!(
        warnings[0].starts_with(&format!(
            "> - **{}**: stranded tail: 12 of 1000",
            edw_engine::steps::VERIFY_STEP
        )) && warnings[0].contains(COUNTS),
        "{md}"
    );
    let row = md
        .lines()
        .find(|l| l.starts_with(&format!("| {} |", edw_engine::steps::VERIFY_STEP)))
        .expect("verify row");
    assert!(
        row.contains("| ⚠️ passed with warning |") && row.contains(COUNTS),
        "{row}"
    );
    assert!(!md.contains("exactly once"));
    // Without warnings nothing of this appears.
    let plain = summary_markdown(&[passing_simulated()]);
    assert!(
        !plain.contains("warning(s)") && !plain.contains("⚠️ passed"),
        "{plain}"
    );
}

// ---------------------------------------------------------------------------------------
// Lifecycle and latencies (issue 21 items 1 and 2)

fn pod_life(name: &str, created: f64, scheduled: Option<f64>, running: Option<f64>) -> PodLife {
    PodLife {
        name: name.to_owned(),
        node: scheduled.map(|_| "aks-edw-burst-a".to_owned()),
        created: Some(created),
        scheduled,
        running,
        ready: running,
        ..PodLife::default()
    }
}

fn claim_life(name: &str, created: f64, node_ready: f64, deleted: f64) -> NodeClaimLife {
    NodeClaimLife {
        name: name.to_owned(),
        nodepool: Some("edw-burst".to_owned()),
        instance_type: Some("Standard_D2als_v6".to_owned()),
        node: Some(format!("aks-{name}")),
        created: Some(created),
        launched: Some(created + 2.0),
        registered: Some(node_ready - 5.0),
        initialized: Some(node_ready),
        node_ready: Some(node_ready),
        disrupted: Some(deleted - 10.0),
        deleted: Some(deleted),
    }
}

/// A lifecycle that fits [`passing_simulated`]'s timeline: pod startups of 6 and 18 s (a third
/// pod never scheduled), NodeClaims Ready 15 and 40 s after creation, replicas 0 → 4 → 10 → 5
/// → 0 as the timeline's desired replicas, the last claim deleted at 170 s.
fn planted_lifecycle() -> Lifecycle {
    let event = |t, from, to| ScaleEvent { t, from, to };
    Lifecycle {
        format: LIFECYCLE_FORMAT,
        unit: "simulated s".to_owned(),
        load_started_at: Some(0.0),
        ended_at: 190.0,
        pods: vec![
            pod_life("aqs-app-1", 20.0, Some(21.0), Some(26.0)),
            pod_life("aqs-app-2", 20.0, Some(30.0), Some(38.0)),
            pod_life("aqs-app-3", 25.0, None, None),
        ],
        nodeclaims: vec![
            claim_life("edw-burst-a", 20.0, 35.0, 150.0),
            claim_life("edw-burst-b", 30.0, 70.0, 170.0),
        ],
        scale_events: vec![
            event(20.0, 0, 4),
            event(30.0, 4, 10),
            event(110.0, 10, 5),
            event(120.0, 5, 0),
        ],
        drain: None,
    }
}

/// [`passing_simulated`] with [`planted_lifecycle`] and the verification's message count.
fn passing_with_a_lifecycle() -> ScenarioReport {
    let mut report = passing_simulated();
    report.lifecycle = Some(planted_lifecycle());
    report
        .steps
        .last_mut()
        .expect("steps")
        .properties
        .push(("messages.processed_once".to_owned(), "1000".to_owned()));
    report
}

#[test]
fn lifecycle_json_is_written_and_reads_back_as_the_lifecycle() {
    let report = passing_with_a_lifecycle();
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write_all(&report, dir.path()).expect("write_all");
    let path = written
        .lifecycle_json
        .clone()
        .expect("lifecycle.json written");
    assert!(path.ends_with("lifecycle.json"));
    assert!(written.paths().contains(&path.as_path()));
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("\n  \"pods\": ["), "pretty JSON:\n{text}");
    let back: Lifecycle = serde_json::from_str(&text).expect("a Lifecycle");
    // With the drain rate the reports measured (for `edw twin calibrate`): 1000 messages
    // processed once over 490 running-pod-seconds from the load start to the drain at 90 s.
    let drain = back.drain.clone().expect("the drain measurement");
    assert_eq!(
        (
            drain.messages,
            drain.counted.as_str(),
            drain.from,
            drain.until
        ),
        (1000, "processed once", 0.0, 90.0)
    );
    assert!((drain.pod_seconds - 490.0).abs() < 1e-9, "{drain:?}");
    assert_eq!(
        Lifecycle {
            drain: None,
            ..back
        },
        planted_lifecycle()
    );

    // No lifecycle, no file.
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write_all(&failing_cluster(), dir.path()).expect("write_all");
    assert_eq!(written.lifecycle_json, None);
    assert!(!dir.path().join("lifecycle.json").exists());
    assert_eq!(written.paths().len(), 4);
}

#[test]
fn summary_lists_every_latency_with_its_quantiles_the_drain_rate_and_the_scale_in_delay() {
    let md = summary_markdown(&[passing_with_a_lifecycle()]);
    let section = md
        .split("### Latencies")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .unwrap_or_else(|| panic!("no Latencies section:\n{md}"));
    for row in [
        "| Latency | Count | p50 (simulated s) | p90 (simulated s) | p99 (simulated s) | max (simulated s) |",
        "| pod created → scheduled (`pod_scheduling`) | 2 | 1.0 | 10.0 | 10.0 | 10.0 |",
        "| pod created → running (`pod_startup`) | 2 | 6.0 | 18.0 | 18.0 | 18.0 |",
        "| NodeClaim created → node Ready (`nodeclaim_ready`) | 2 | 15.0 | 40.0 | 40.0 | 40.0 |",
        "| NodeClaim disrupted → deleted (`node_removal`) | 2 | 10.0 | 10.0 | 10.0 | 10.0 |",
        "| first message → first replica (`activation`) | 1 | 20.0 | 20.0 | 20.0 | 20.0 |",
        // 1000 messages over 490 pod-seconds: running 3, 6 and 10 pods from 30 s to the drain at 90 s.
        "**Drain rate per running pod:** 2.041 messages per running-pod-second (simulated s): 1000 messages processed once ÷ 490.0 running-pod-seconds between the load start (0.0) and the queue first reading 0 (90.0).",
        "**Scale-in delay** (from the queue first reading 0 at 90.0 simulated s): KEDA deactivation +30.0 simulated s → last NodeClaim deleted +80.0 simulated s.",
    ] {
        assert!(section.contains(row), "missing {row:?} in:\n{section}");
    }
    let rows = section
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("(`"))
        .count();
    assert_eq!(rows, planted_lifecycle().latencies().len(), "{section}");
}

#[test]
fn what_was_not_measured_says_why_instead_of_a_zero() {
    let md = summary_markdown(&[failing_cluster()]);
    assert!(
        md.contains("_Not measured: no lifecycle was recorded"),
        "{md}"
    );
    assert!(
        md.contains("**Scale-in delay:** not measured: the queue did not read 0 while the run was recorded."),
        "{md}"
    );
    // A timeline without a queue reading, a NodeClaim still there at the end.
    let mut report = passing_with_a_lifecycle();
    for o in &mut report.timeline {
        o.queue = None;
    }
    let md = summary_markdown(std::slice::from_ref(&report));
    for line in [
        "**Drain rate per running pod:** not measured: the timeline has no queue reading.",
        "**Scale-in delay:** not measured: the timeline has no queue reading.",
    ] {
        assert!(md.contains(line), "missing {line:?}:\n{md}");
    }
    let mut report = passing_with_a_lifecycle();
    let lifecycle = report.lifecycle.as_mut().expect("lifecycle");
    lifecycle.nodeclaims[1].deleted = None;
    lifecycle.scale_events.pop();
    report.steps.iter_mut().for_each(|s| s.properties.clear());
    let md = summary_markdown(std::slice::from_ref(&report));
    for line in [
        "**Drain rate per running pod:** not measured: the report holds no message count",
        "KEDA deactivation not measured (no KEDA deactivation was seen after the queue read 0) → last NodeClaim deleted not measured (1 NodeClaim(s) still listed when the recording ended).",
    ] {
        assert!(md.contains(line), "missing {line:?}:\n{md}");
    }
}

#[test]
fn junit_carries_each_latencys_quantiles_and_stays_valid() {
    let report = passing_with_a_lifecycle();
    let xml = junit(std::slice::from_ref(&report)).expect("junit");
    validate_against_schema(&xml, "junit with latencies");
    let doc = roxmltree::Document::parse(&xml).expect("XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("testsuite");
    for (name, value) in [
        ("latency.unit", "simulated s"),
        ("latency.pod_startup.count", "2"),
        ("latency.pod_startup.p50", "6.000"),
        ("latency.pod_startup.p90", "18.000"),
        ("latency.pod_startup.p99", "18.000"),
        ("latency.pod_startup.max", "18.000"),
        ("latency.nodeclaim_ready.p50", "15.000"),
        ("latency.nodeclaim_ready.max", "40.000"),
        ("latency.activation.count", "1"),
        ("latency.activation.p50", "20.000"),
        // 1000 messages over 490 running-pod-seconds; KEDA deactivated 30 s after the
        // queue first read 0, the last NodeClaim went 80 s after.
        ("latency.drain_rate.per_pod_second", "2.041"),
        ("latency.drain_rate.messages", "1000"),
        ("latency.drain_rate.pod_seconds", "490.0"),
        ("latency.scale_in.deactivation_after_drain", "30.0"),
        (
            "latency.scale_in.last_nodeclaim_deleted_after_drain",
            "80.0",
        ),
    ] {
        assert_eq!(property(suite, name), Some(value), "{name}");
    }
    let latency_properties = suite
        .descendants()
        .filter(|n| n.has_tag_name("property"))
        .filter(|n| {
            n.attribute("name")
                .is_some_and(|a| a.starts_with("latency."))
        })
        .count();
    assert_eq!(
        latency_properties,
        1 + 5 * planted_lifecycle().latencies().len() + 3 + 2
    );
    // Without a lifecycle, no distribution; the drain rate and scale-in say why they were
    // not measured instead of a zero.
    let xml = junit(&[failing_cluster()]).expect("junit");
    assert!(
        !xml.contains("latency.unit") && !xml.contains(".p50"),
        "{xml}"
    );
    let doc = roxmltree::Document::parse(&xml).expect("XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("testsuite");
    for name in [
        "latency.drain_rate.not_measured",
        "latency.scale_in.not_measured",
    ] {
        assert_eq!(
            property(suite, name),
            Some("the queue did not read 0 while the run was recorded"),
            "{name}: {xml}"
        );
    }
}

#[test]
fn svg_marks_each_nodeclaims_node_ready_time() {
    let svg = svg_chart(&passing_with_a_lifecycle());
    let doc = parse_svg(&svg);
    let ticks: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("node-ready-marker"))
        .collect();
    assert_eq!(ticks.len(), 2, "{svg}");
    let titles: Vec<&str> = ticks
        .iter()
        .filter_map(|t| t.children().find(|c| c.has_tag_name("title"))?.text())
        .collect();
    assert_eq!(
        titles,
        [
            "NodeClaim edw-burst-a: node Ready at 35.0 simulated s",
            "NodeClaim edw-burst-b: node Ready at 70.0 simulated s",
        ]
    );
    // Later on the time axis, further right.
    let x = |n: &roxmltree::Node| n.attribute("x1").and_then(|v| v.parse::<f64>().ok());
    assert!(x(&ticks[0]).expect("x1") < x(&ticks[1]).expect("x1"));
    assert!(svg_chart(&passing_simulated()).contains(r#"<g id="node-ready">"#));
    assert!(!svg_chart(&passing_simulated()).contains("node-ready-marker"));
}
