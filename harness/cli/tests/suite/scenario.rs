//! The scenario machinery against the twin (local target): the observation recorder and waits,
//! and cleanup after a failing step, a panic, a step timeout, and with --keep-on-failure.

use std::sync::Arc;
use std::time::Duration;

use crate::support::served::local_target;
use edw_engine::config::Config;
use edw_engine::manifests::{apply, render};
use edw_engine::observe::{consistently, eventually, Expect, Recorder};
use edw_engine::runner::{
    run, Context, FlowSettings, RunOptions, Scenario, Step, StepFuture, StepResult,
};
use edw_engine::target::Target;
use edw_model::report::StepStatus;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorder_sees_changes_and_waits_report_what_they_saw() {
    let (target, config) = local_target().await;
    let context = Context::new(target.clone(), config, FlowSettings::default());
    let client = target.client();
    for template in [
        "namespace.yaml",
        "serviceaccount.yaml",
        "consumer-deployment.yaml",
    ] {
        let mut objects = render(template, &context.template_vars()).unwrap();
        let owner = edw_engine::manifests::Ownership {
            run_id: context.names.run_id.clone(),
            nodepool: None,
        };
        edw_engine::manifests::stamp_ownership(&mut objects, &owner);
        apply(&client, &objects).await.unwrap();
    }
    let recorder = Recorder::start(
        client.clone(),
        context.subject(),
        Duration::from_millis(50),
        target.clock(),
    );
    // Waits are in target time: 200 s on the x20 twin is 10 s of real time.
    let one = Expect::new("desired replicas = 1", |o| o.desired == 1);
    eventually(&recorder, &one, Duration::from_secs(200))
        .await
        .expect("the Deployment is seen");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &context.names.namespace);
    let patch = serde_json::json!({"spec": {"replicas": 3}});
    deployments
        .patch(
            &context.names.deployment,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let three = Expect::new("desired replicas = 3", |o| o.desired == 3);
    let seen = eventually(&recorder, &three, Duration::from_secs(200))
        .await
        .expect("the scale is seen");
    assert_eq!(seen.desired, 3);
    let pods = Expect::new("3 consumer pods exist", |o| o.running + o.pending == 3);
    eventually(&recorder, &pods, Duration::from_secs(200))
        .await
        .expect("the ReplicaSet made pods");

    let never = Expect::new("desired replicas = 7", |o| o.desired == 7);
    let failure = eventually(&recorder, &never, Duration::from_millis(400))
        .await
        .unwrap_err();
    let text = failure.to_string();
    assert!(
        text.contains("expected desired replicas = 7 within 400ms"),
        "{text}"
    );
    assert!(
        text.contains("last observed: ") && text.contains("desired=3"),
        "{text}"
    );
    assert!(text.contains("history:"), "{text}");

    let ceiling = Expect::new("desired replicas <= 3", |o| o.desired <= 3);
    consistently(&recorder, &ceiling, Duration::from_millis(300))
        .await
        .expect("holds");
    let broken = consistently(
        &recorder,
        &ceiling.clone().not(),
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(broken.to_string().contains("but it broke"), "{broken}");
}

fn failing(_ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async { StepResult::failed("this step fails on purpose", ["detail line".to_owned()]) })
}

fn panicking(_ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async { panic!("a step panicked on purpose") })
}

fn hanging(_ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async {
        std::future::pending::<()>().await;
        StepResult::passed([])
    })
}

/// The sample's deploy, then `bad`, then the rest (which must be skipped), then cleanup.
fn scenario_with(bad: Step) -> Scenario {
    let burst = edw_scenarios::burst();
    let mut steps = vec![burst.steps[0].clone(), bad];
    steps.extend(burst.steps[1..3].iter().cloned());
    Scenario {
        name: "test::broken".to_owned(),
        settings: burst.settings.clone(),
        steps,
        cleanup: burst.cleanup,
    }
}

async fn run_broken(
    bad: Step,
    keep: bool,
) -> (edw_model::report::ScenarioReport, Arc<Target>, Context) {
    let (target, config) = local_target().await;
    let mut context = Context::new(target.clone(), config, FlowSettings::default());
    let options = RunOptions {
        keep_on_failure: keep,
        deadline: None,
    };
    let report = run(
        &scenario_with(bad),
        &mut context,
        &options,
        &CancellationToken::new(),
    )
    .await;
    (report, target, context)
}

async fn assert_cleaned(target: &Target, context: &Context) {
    let namespaces: Api<Namespace> = Api::all(target.client());
    assert!(
        namespaces
            .get_opt(&context.names.namespace)
            .await
            .unwrap()
            .is_none(),
        "namespace left behind"
    );
    let storage = target.storage();
    assert!(
        !storage.queue(&context.names.queue).exists().await.unwrap(),
        "queue left behind"
    );
    assert!(
        !storage.queue(&context.names.poison).exists().await.unwrap(),
        "poison queue left behind"
    );
    assert!(
        storage
            .table(&context.names.table)
            .count(None)
            .await
            .unwrap_err()
            .is_not_found(),
        "table left behind"
    );
}

fn check_failed_run(report: &edw_model::report::ScenarioReport, message: &str) {
    assert!(!report.passed());
    assert_eq!(report.steps[0].outcome, StepStatus::Passed, "deploy ran");
    match &report.steps[1].outcome {
        StepStatus::Failed { message: m } => assert!(m.contains(message), "{m}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(report.steps[2..].iter().all(
        |s| matches!(&s.outcome, StepStatus::Skipped { reason } if reason == "an earlier step failed")
    ));
    let diagnostics = report.diagnostics.as_deref().expect("diagnostics captured");
    assert!(
        diagnostics.contains("pods in aqs-demo") && diagnostics.contains("recent events"),
        "{diagnostics}"
    );
    assert!(
        report
            .cleanup
            .iter()
            .all(|s| s.outcome == StepStatus::Passed),
        "{:?}",
        report.cleanup
    );
    assert!(report.target.simulated && report.target.name == "local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_stops_the_flow_and_cleanup_still_runs() {
    let (report, target, context) =
        run_broken(Step::new("fails", Duration::from_secs(60), failing), false).await;
    check_failed_run(&report, "this step fails on purpose");
    assert_eq!(report.steps[1].details, ["detail line"]);
    assert_cleaned(&target, &context).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_step_is_a_failure_and_cleanup_still_runs() {
    let (report, target, context) = run_broken(
        Step::new("panics", Duration::from_secs(60), panicking),
        false,
    )
    .await;
    check_failed_run(&report, "the step panicked: a step panicked on purpose");
    assert_cleaned(&target, &context).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_times_out_is_a_failure_and_cleanup_still_runs() {
    // 20 target seconds: 1 s of real time on the twin's x20 clock.
    let (report, target, context) =
        run_broken(Step::new("hangs", Duration::from_secs(20), hanging), false).await;
    check_failed_run(&report, "did not finish within its timeout of 20s");
    assert_cleaned(&target, &context).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_on_failure_keeps_the_resources_and_says_how_to_remove_them() {
    let (report, target, context) =
        run_broken(Step::new("fails", Duration::from_secs(60), failing), true).await;
    assert!(!report.passed());
    for step in &report.cleanup {
        match &step.outcome {
            StepStatus::Skipped { reason } => assert!(
                reason.contains("--keep-on-failure")
                    && reason.contains(&format!(
                        "kubectl delete namespaces,nodepools.karpenter.sh -l edw-conformance/run-id={}",
                        context.names.run_id
                    )),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }
    let namespaces: Api<Namespace> = Api::all(target.client());
    assert!(
        namespaces
            .get_opt(&context.names.namespace)
            .await
            .unwrap()
            .is_some(),
        "kept"
    );
    assert!(
        target
            .storage()
            .queue(&context.names.queue)
            .exists()
            .await
            .unwrap(),
        "kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_that_cannot_meet_its_drain_target_fails_naming_the_setting() {
    let (target, config) = local_target().await;
    let mut scenario = edw_scenarios::burst();
    scenario.settings = FlowSettings {
        max_replicas: 2,
        messages: 1000,
        drain_target: Some(Duration::from_secs(120)),
        ..FlowSettings::default()
    };
    let report = run_on(target, config, &scenario).await;
    let failed = only_failure(&report);
    assert_eq!(failed.name, "scale: queue drains to 0");
    match &failed.outcome {
        StepStatus::Failed { message } => {
            assert!(
                message.contains(
                    "maxReplicaCount 2 cannot drain 1000 messages within the drain target of 120 s"
                ),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // The report's findings say the same, before anything ran.
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.id == "drain-target" && f.message.contains("maxReplicaCount 2")),
        "{:?}",
        report.findings
    );
    assert!(
        report.findings.iter().any(|f| f.id == "stranded-tail"),
        "{:?}",
        report.findings
    );
    assert!(report
        .cleanup
        .iter()
        .all(|s| s.outcome == StepStatus::Passed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_rate_the_baseline_cannot_carry_fails_naming_min_replica_count() {
    let (target, config) = local_target().await;
    let mut scenario = edw_scenarios::steady_rate();
    // The walkthrough's minReplicaCount 0 cannot hold anything under a steady 1.5 msg/s.
    scenario.settings.min_replicas = 0;
    let report = run_on(target, config, &scenario).await;
    let failed = only_failure(&report);
    match &failed.outcome {
        StepStatus::Failed { message } => assert!(
            message.contains("minReplicaCount 0 cannot keep up with 1.5 msg/s (2 needed)"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(report
        .cleanup
        .iter()
        .all(|s| s.outcome == StepStatus::Passed));
}

async fn run_on(
    target: Arc<Target>,
    config: Config,
    scenario: &edw_engine::runner::Scenario,
) -> edw_model::report::ScenarioReport {
    run_in(
        Context::new(target, config, scenario.settings.clone()),
        scenario,
    )
    .await
}

/// Runs `scenario` in `context` with the default options.
async fn run_in(
    mut context: Context,
    scenario: &edw_engine::runner::Scenario,
) -> edw_model::report::ScenarioReport {
    let options = RunOptions::default();
    run(scenario, &mut context, &options, &CancellationToken::new()).await
}

/// The report failed, at exactly one step: that step.
fn only_failure(report: &edw_model::report::ScenarioReport) -> &edw_model::report::StepReport {
    assert!(!report.passed());
    let failed: Vec<_> = report
        .steps
        .iter()
        .filter(|s| s.outcome.is_failed())
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", report.steps);
    failed[0]
}

/// Issue 15: `activationQueueLength` messages on an idle queue stay there at 0 replicas (the
/// walkthrough's stranded tail, deterministic here), and verify runs on them. It passes (none
/// is lost: all are on the queue) but as a WARNING with every count, everywhere: the step's
/// details and properties, the line `edw run` prints, the runner's progress, summary.md and
/// junit.xml; nothing says "exactly once".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranded_tail_passes_verify_only_as_a_warning_that_states_every_count() {
    use edw_engine::report::{write_all, JUNIT_FILE, SUMMARY_FILE};
    let (target, config) = local_target().await;
    // flow::activation's first half (deploy, ScaledObject, load activationQueueLength
    // messages, 0 replicas for two polls), then the verify step.
    let window = edw_scenarios::activation_window();
    let mut steps = window.steps[..4].to_vec();
    steps.push(window.steps.last().unwrap().clone());
    assert_eq!(steps[2].name, "load: activationQueueLength messages");
    assert_eq!(steps[4].name, edw_engine::steps::VERIFY_STEP);
    let scenario = Scenario {
        name: "test::stranded_tail".to_owned(),
        settings: window.settings.clone(),
        steps,
        cleanup: window.cleanup.clone(),
    };
    let progress = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = progress.clone();
    let context = Context::new(target, config, scenario.settings.clone()).with_progress(Arc::new(
        move |line: &str| sink.lock().unwrap().push(line.to_owned()),
    ));
    let report = run_in(context, &scenario).await;
    assert!(report.passed(), "{:#?}", report.steps);
    assert!(report
        .cleanup
        .iter()
        .all(|s| s.outcome == StepStatus::Passed));

    let counts = "sent 20, processed once 0, duplicated 0, lost 0, stranded 20, poisoned 0";
    let verify = report.steps.last().unwrap();
    assert_eq!(
        verify.outcome,
        StepStatus::Passed,
        "the check holds: none lost"
    );
    assert_eq!(verify.details[0], counts);
    let property = |key: &str| {
        verify
            .properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    for (key, value) in [
        ("messages.sent", "20"),
        ("messages.processed_once", "0"),
        ("messages.duplicated", "0"),
        ("messages.lost", "0"),
        ("messages.stranded", "20"),
        ("messages.poisoned", "0"),
    ] {
        assert_eq!(property(key), Some(value), "{key}: {:?}", verify.properties);
    }
    assert_eq!(verify.warnings.len(), 1, "{:?}", verify.warnings);
    let warning = &verify.warnings[0];
    for part in [
        "stranded tail: 20 of 20 sent message(s) were not processed",
        "still on the queue at 0 replicas",
        "activationQueueLength 20 with minReplicaCount 0",
        "`stranded-tail`",
        counts,
    ] {
        assert!(warning.contains(part), "{part:?} not in {warning}");
    }
    assert_eq!(
        report.warnings(),
        [(edw_engine::steps::VERIFY_STEP, warning.as_str())]
    );

    // The terminal: `edw run` (and `edw scale`) print the step with its status_line.
    let (mark, text) = verify.status_line();
    assert_eq!(mark, "WARN");
    assert!(text.contains(counts), "{text}");
    let progress = progress.lock().unwrap().join("\n");
    assert!(
        progress.contains(&format!(
            "step {}: passed with WARNING: stranded tail",
            edw_engine::steps::VERIFY_STEP
        )),
        "{progress}"
    );

    let dir = tempfile::tempdir().unwrap();
    write_all(&report, dir.path()).unwrap();
    let summary = std::fs::read_to_string(dir.path().join(SUMMARY_FILE)).unwrap();
    let warning_line = crate::support::summary_warnings(&summary, 1)[0];
    assert!(
        warning_line.contains("stranded tail: 20 of 20") && warning_line.contains(counts),
        "{warning_line}"
    );
    let row = summary
        .lines()
        .find(|l| l.starts_with(&format!("| {} |", edw_engine::steps::VERIFY_STEP)))
        .expect("the verify row");
    assert!(
        row.contains("⚠️ passed with warning") && row.contains(counts),
        "{row}"
    );

    let xml = std::fs::read_to_string(dir.path().join(JUNIT_FILE)).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(doc.root_element().attribute("failures"), Some("0"));
    let case_text =
        |tag| crate::support::junit_case_text(&doc, edw_engine::steps::VERIFY_STEP, tag);
    assert_eq!(case_text("failure"), None, "the case passed");
    let err = case_text("system-err").expect("the warning in system-err");
    assert!(
        err.starts_with("WARNING: stranded tail: 20 of 20") && err.contains(counts),
        "{err}"
    );
    let out = case_text("system-out").expect("the details in system-out");
    assert!(out.contains(counts), "{out}");
    let stranded = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("property")
                && n.attribute("name")
                    == Some(&format!(
                        "{}.messages.stranded",
                        edw_engine::steps::VERIFY_STEP
                    ))
        })
        .and_then(|n| n.attribute("value"));
    assert_eq!(stranded, Some("20"));

    for text in [&summary, &xml, &progress] {
        assert!(!text.contains("exactly once"), "{text}");
    }
}

/// A message a consumer took and never finished (its pod stopped at the scale-in: here taken
/// with a short visibility timeout and left) is invisible for a while: verify waits for it to
/// come back and counts it with the stranded tail, not as lost (a chaos run through the twin
/// once failed with "lost 1, stranded 3" on such a message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_taken_and_never_finished_is_stranded_not_lost() {
    let (target, config) = local_target().await;
    let window = edw_scenarios::activation_window();
    let mut steps = window.steps[..4].to_vec();
    steps.push(Step::new(
        "a consumer takes one message and stops",
        edw_engine::steps::secs(60),
        |ctx| {
            Box::pin(async move {
                let queue = ctx.target.storage().queue(&ctx.names.queue);
                // Invisible for 3 real seconds (a minute on the x20 twin's clock).
                match queue.receive(1, Duration::from_secs(3)).await {
                    Ok(taken) if taken.len() == 1 => {
                        StepResult::passed([format!("took {}", taken[0].text)])
                    }
                    Ok(taken) => StepResult::failed(format!("took {} messages", taken.len()), []),
                    Err(e) => StepResult::failed(e.to_string(), []),
                }
            })
        },
    ));
    steps.push(window.steps.last().unwrap().clone());
    assert_eq!(steps[5].name, edw_engine::steps::VERIFY_STEP);
    let scenario = Scenario {
        name: "test::taken_and_stopped".to_owned(),
        settings: window.settings.clone(),
        steps,
        cleanup: window.cleanup.clone(),
    };
    let context = Context::new(target, config, scenario.settings.clone());
    let report = run_in(context, &scenario).await;
    assert!(report.passed(), "{:#?}", report.steps);
    let verify = report.steps.last().unwrap();
    assert_eq!(
        verify.details[0],
        "sent 20, processed once 0, duplicated 0, lost 0, stranded 20, poisoned 0",
        "{verify:#?}"
    );
}
