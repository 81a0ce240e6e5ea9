//! `edw run`: the sample's flow on a target, with live progress, reports and an exit code.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::args::{GlobalArgs, RunArgs, StorageFirewallMode};
use crate::{exit, session, Failure};

use super::azure_side::{self, AzureSideReady};
use edw_engine::deploy_script::{DeployCommand, StateBefore};
use edw_engine::runner::{run_state, DeployedGroup, Execution, Footprint, RunOptions};
use edw_engine::runner::{Context, Scenario};
use edw_engine::steps::{self, storage_firewall, FirewallOpening};
use edw_engine::target::TargetKind;
use edw_model::run::InClusterLoad;

/// The scenarios `--scenario` names, in order, each with `--messages` if given.
fn chosen_scenarios(args: &RunArgs) -> Result<Vec<Scenario>, Failure> {
    let mut chosen = Vec::new();
    for name in &args.scenario {
        let mut scenario = edw_scenarios::find(name.trim()).ok_or_else(|| {
            let known: Vec<String> = edw_scenarios::all().into_iter().map(|s| s.name).collect();
            Failure::usage(anyhow::anyhow!(
                "no scenario {name:?} in the catalogue; known: {} (`edw run --list` says what each checks)",
                known.join(", ")
            ))
        })?;
        if let Some(messages) = args.messages {
            scenario.settings.messages = messages;
        }
        if let Some(parallelism) = args.in_cluster_load {
            edw_model::slices::check_split(scenario.settings.messages, parallelism)
                .map_err(|e| Failure::usage(anyhow::anyhow!("{}: {e}", scenario.name)))?;
            if let Some(rate) = args.load_rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
                return Err(Failure::usage(anyhow::anyhow!(
                    "--load-rate {rate} is not a positive number of messages per second"
                )));
            }
            if scenario
                .steps
                .iter()
                .any(|s| s.name == steps::BURST_LOAD_STEP)
            {
                scenario.settings.in_cluster_load = Some(InClusterLoad {
                    parallelism,
                    rate: args.load_rate,
                });
            } else {
                eprintln!(
                    "note: {} sends its own load from this machine; --in-cluster-load applies to the scenarios with the producer burst step",
                    scenario.name
                );
            }
        }
        chosen.push(scenario);
    }
    Ok(chosen)
}

/// `edw run --list`: the catalogue, one line each.
fn list() -> u8 {
    for scenario in edw_scenarios::all() {
        println!(
            "{:<22} {}",
            scenario.name,
            edw_scenarios::describe(&scenario)
        );
    }
    exit::OK
}

pub async fn run(
    global: &GlobalArgs,
    args: &RunArgs,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    if args.list {
        return Ok(list());
    }
    let kind = TargetKind::parse(&args.target).map_err(Failure::usage)?;
    if args.use_deployed && kind == TargetKind::Local {
        return Err(Failure::usage(anyhow::anyhow!(
            "--use-deployed exercises a consumer the team deployed on a cluster: it needs --target kube or aks (the local twin starts empty)"
        )));
    }
    let scenarios = chosen_scenarios(args)?;
    if scenarios.len() > 1
        && (args.deploy || args.storage_firewall == StorageFirewallMode::OpenForRun)
    {
        return Err(Failure::usage(anyhow::anyhow!(
            "--deploy and --storage-firewall open-for-run belong to one run (its ledger records the group and the rule until its cleanup removes them): run one scenario with them, not {}",
            scenarios.len()
        )));
    }
    // A burst the model says never activates tests nothing: refused before anything is deployed
    // (the scenarios that test the activation window send such loads on purpose).
    if let Some(burst) = scenarios.iter().find(|s| s.name == "flow::burst") {
        steps::check_load_activates(&burst.settings).map_err(Failure::usage)?;
    }
    let deployed_group = if args.deploy {
        if kind != TargetKind::Aks {
            return Err(Failure::usage(anyhow::anyhow!(
                "--deploy runs the team's deploy command for a live subscription: it needs --target aks, not {}",
                kind.name()
            )));
        }
        deploy(global, args, cancel).await?
    } else {
        None
    };
    // From here on, a failure deletes what the deploy created.
    let config = match session::load_config(global) {
        Ok(config) => config,
        Err(failure) => return Err(abandon(failure, None, deployed_group.as_ref()).await),
    };
    let ledger = args.report_dir.join("edw-run.state");
    // What only the team can fix, before anything is deployed; then, if asked, this machine's
    // address in the storage firewall (a failure after it removes it again).
    let azure = if kind == TargetKind::Aks {
        match azure_side::prepare(
            &config,
            args.storage_firewall,
            &ledger,
            deployed_group.as_ref(),
            cancel,
        )
        .await
        {
            Ok(ready) => ready,
            Err(failure) => return Err(abandon(failure, None, deployed_group.as_ref()).await),
        }
    } else {
        if args.storage_firewall == StorageFirewallMode::OpenForRun {
            eprintln!(
                "note: --storage-firewall open-for-run (EDW_STORAGE_FIREWALL) applies to the aks target only; ignored on {}",
                kind.name()
            );
        }
        AzureSideReady::default()
    };
    if args.parallel > 1 && scenarios.len() > 1 {
        return side_by_side(scenarios, kind, &config, args, &azure, cancel).await;
    }
    let mut code = exit::OK;
    for scenario in scenarios {
        if cancel.is_cancelled() {
            break;
        }
        let outcome = run_one(
            scenario,
            kind,
            &config,
            args,
            &ledger,
            &azure,
            deployed_group.as_ref(),
            cancel,
        )
        .await?;
        code = code.max(outcome);
    }
    // An interrupted run exits 130 (crate::main), whatever its report says.
    Ok(code)
}

/// Several scenarios side by side on one target, at most `--parallel` at a time: each its own
/// run (names, NodePool, ledger `edw-run-<scenario>.state`, reports), progress lines prefixed
/// with its scenario, its summary when all are done, then the combined summary.md and the wall
/// time against the sum of the runs' durations (what one after another would have taken).
async fn side_by_side(
    scenarios: Vec<Scenario>,
    kind: TargetKind,
    config: &edw_engine::config::Config,
    args: &RunArgs,
    azure: &AzureSideReady,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    use futures::StreamExt;
    eprintln!(
        "opening the {} target for {} scenarios, {} at a time…",
        kind.name(),
        scenarios.len(),
        args.parallel
    );
    let target = Arc::new(session::open_target(kind, config).await?);
    let info = target.info();
    eprintln!("target: {}", info.description);
    let mut executions = Vec::new();
    for mut scenario in scenarios {
        if kind == TargetKind::Aks {
            scenario.steps.insert(0, storage_firewall::preflight_step());
        }
        let slug = scenario.name.replace("::", "-");
        let ledger = args.report_dir.join(format!("edw-run-{slug}.state"));
        let prefix = scenario.name.clone();
        let mut execution = execution_of(
            scenario,
            target.clone(),
            config,
            args,
            &ledger,
            Arc::new(move |line: &str| {
                let _ = writeln!(std::io::stderr(), "[{prefix}] {line}");
            }),
        );
        let context = &mut execution.context;
        context.azure_preflight = azure.checks.clone();
        eprintln!(
            "run {} ({}): {}; ledger {}",
            context.names.run_id,
            execution.scenario.name,
            context.footprint.describe(),
            ledger.display()
        );
        executions.push(execution);
    }
    // The last run to finish shuts the target down: no clone may outlive them.
    drop(target);
    let started = std::time::Instant::now();
    let results: Vec<_> = futures::stream::iter(executions)
        .map(|execution| execution.run(cancel))
        .buffer_unordered(usize::from(args.parallel))
        .collect()
        .await;
    let wall = started.elapsed();
    let mut reports = Vec::new();
    let mut code = exit::OK;
    for executed in results {
        let executed = match executed {
            Ok(executed) => executed,
            Err(e) => {
                eprintln!("{}", edw_engine::error_chain::text(&e));
                code = code.max(exit::ENVIRONMENT);
                continue;
            }
        };
        code = code.max(print_outcome(&executed, &info));
        reports.push(executed.report);
    }
    reports.sort_by(|a, b| a.scenario.cmp(&b.scenario));
    let sequential: Duration = reports.iter().map(|r| r.duration).sum();
    let passed = reports.iter().filter(|r| r.passed()).count();
    let line = format!(
        "side by side on {}: {} scenario(s), {} at a time, {passed} passed, in {:.1} s (real time); one after another they would have taken about {:.1} s (the sum of their durations)",
        info.name,
        reports.len(),
        args.parallel,
        wall.as_secs_f64(),
        sequential.as_secs_f64()
    );
    println!();
    println!("{line}");
    let combined = args.report_dir.join("summary.md");
    let markdown = format!(
        "# {} scenarios side by side\n\n{}\n\n{}",
        reports.len(),
        edw_engine::secrets::redact(&line),
        edw_engine::report::summary_markdown(&reports)
    );
    match std::fs::create_dir_all(&args.report_dir)
        .and_then(|()| std::fs::write(&combined, markdown))
    {
        Ok(()) => println!("combined summary: {}", combined.display()),
        Err(e) => {
            eprintln!("could not write {}: {e}", combined.display());
            code = code.max(exit::ENVIRONMENT);
        }
    }
    Ok(code)
}

/// One scenario on a freshly opened target: live progress, the run, its summary and reports.
#[allow(clippy::too_many_arguments)]
async fn run_one(
    mut scenario: Scenario,
    kind: TargetKind,
    config: &edw_engine::config::Config,
    args: &RunArgs,
    ledger: &std::path::Path,
    azure: &AzureSideReady,
    deployed_group: Option<&DeployedGroup>,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    let live = !args.plain && std::io::stderr().is_terminal();
    eprintln!("opening the {} target…", kind.name());
    let target = match session::open_target(kind, config).await {
        Ok(target) => target,
        Err(failure) => {
            let opening = azure.opening.as_ref().map(|o| (o, ledger));
            return Err(abandon(failure, opening, deployed_group).await);
        }
    };
    let info = target.info();
    eprintln!("target: {}", info.description);
    if kind == TargetKind::Aks {
        scenario.steps.insert(0, storage_firewall::preflight_step());
    }
    // After the queue and table are deleted (that needs the opening), before the group goes.
    if azure.opening.is_some() {
        scenario.cleanup.push(storage_firewall::cleanup_step());
    }
    if deployed_group.is_some() {
        scenario.cleanup.push(steps::cleanup_resource_group_step());
    }
    let progress = Progress::new(live);
    let sink = progress.clone();
    let mut execution = execution_of(
        scenario,
        Arc::new(target),
        config,
        args,
        ledger,
        Arc::new(move |line: &str| sink.line(line)),
    );
    let context = &mut execution.context;
    eprintln!(
        "run {}: {} (only what carries the label {}={} is deleted by its cleanup)",
        context.names.run_id,
        context.footprint.describe(),
        edw_engine::manifests::RUN_ID_LABEL,
        context.names.run_id
    );
    context.deployed_group = deployed_group.cloned();
    context.storage_firewall_opening = azure.opening.clone();
    context.azure_preflight = azure.checks.clone();
    if kind == TargetKind::Local {
        eprintln!(
            "ledger: {} (the local twin and an embedded Azurite end with this process)",
            ledger.display()
        );
    } else {
        eprintln!(
            "ledger: {} (`edw cleanup --target {} --run-state {}` cleans a crashed run)",
            ledger.display(),
            kind.name(),
            ledger.display()
        );
    }
    let ticker = progress.watch_recorder_of(&execution.context);
    let executed = execution.run(cancel).await;
    ticker.cancel();
    progress.finish();
    let executed = executed.map_err(Failure::environment)?;
    if let Some(clock) = &executed.twin_clock {
        // How faithful the simulated time was: the governed clock slows when the real
        // consumers lag (edw_engine::twin_governor).
        // Not eprintln!: stderr may be closed by now (a caller that stopped reading after the
        // cleanup), and a failed write must not turn a finished run into a panic.
        let _ = writeln!(std::io::stderr(), "twin clock: {clock}");
    }
    Ok(print_outcome(&executed, &info))
}

/// `scenario` ready to run on `target` with the run's options (keep on failure, deadline), its
/// ledger, progress to `sink` and, with `--use-deployed`, the team's deployment.
fn execution_of(
    scenario: Scenario,
    target: Arc<edw_engine::target::Target>,
    config: &edw_engine::config::Config,
    args: &RunArgs,
    ledger: &std::path::Path,
    sink: edw_engine::runner::ProgressSink,
) -> Execution {
    let mut execution = Execution::on_shared(
        scenario,
        target,
        config.clone(),
        &args.report_dir,
        ledger.to_path_buf(),
    );
    execution.options = RunOptions {
        keep_on_failure: args.keep_on_failure,
        deadline: args.timeout,
    };
    execution.context.set_progress(sink);
    if args.use_deployed {
        execution.context.set_footprint(Footprint::UseDeployed);
    }
    execution
}

/// A finished run for the terminal: its target (SIMULATED when it is), its summary, where its
/// reports are and, when its cleanup did not finish, its ledger; its exit code.
fn print_outcome(
    executed: &edw_engine::runner::Executed,
    info: &edw_model::report::TargetInfo,
) -> u8 {
    let report = &executed.report;
    println!();
    println!(
        "{} on {}{}",
        report.scenario,
        info.description,
        if info.simulated {
            "  [SIMULATED: not a cluster result]"
        } else {
            ""
        }
    );
    for line in summary_lines(report) {
        println!("{line}");
    }
    println!(
        "reports: {} (junit.xml, timeline.json, timeline.svg, summary.md{})",
        executed.report_dir.display(),
        if report.lifecycle.is_some() {
            ", lifecycle.json"
        } else {
            ""
        }
    );
    if executed.ledger_kept && executed.ledger.exists() {
        println!(
            "ledger kept: {} (`edw cleanup --target {} --run-state {}` removes what this run left)",
            executed.ledger.display(),
            info.name,
            executed.ledger.display()
        );
    }
    if report.passed() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    }
}

/// A run that stops before its scenario: removes the IP rule it added to the storage firewall
/// (recorded in the ledger) and deletes the resource group it deployed, then gives the failure
/// back.
async fn abandon(
    failure: Failure,
    opening: Option<(&FirewallOpening, &std::path::Path)>,
    group: Option<&DeployedGroup>,
) -> Failure {
    if let Some((opening, ledger)) = opening {
        match storage_firewall::close(opening).await {
            Ok(done) => {
                eprintln!("{done}");
                // Gone: the ledger no longer names it (a rule added later for the same
                // address is not this run's to remove).
                if let Err(e) = run_state::forget_storage_firewall_opening(ledger) {
                    eprintln!("warning: {e}");
                }
            }
            Err(e) => eprintln!("{e}"),
        }
    }
    if let Some(group) = group {
        match steps::delete_group_announced(group, "this run deployed it").await {
            Ok(done) => eprintln!("{done}"),
            Err(e) => eprintln!("{e}"),
        }
    }
    failure
}

/// The run's summary for the terminal, every figure with its clock: the steps (real time),
/// the phases (the target's clock, after the load started) and, with Karpenter, the nodes by
/// VM size with node-hours and the estimated cost.
fn summary_lines(report: &edw_model::report::ScenarioReport) -> Vec<String> {
    let clock = report.target.clock;
    let mut lines = vec![format!("  steps ({}):", edw_model::report::STEP_CLOCK)];
    for step in report.steps.iter().chain(&report.cleanup) {
        let (mark, text) = step.status_line();
        lines.push(format!(
            "  {mark} {} ({:.1} real s){text}",
            step.name,
            step.duration.as_secs_f64()
        ));
    }
    if report.phases.iter().any(|p| p.after_load.is_some()) {
        lines.push(format!(
            "  phases, in {}, after the load started:",
            clock.describe()
        ));
    }
    for phase in &report.phases {
        if let Some(after) = phase.after_load {
            lines.push(format!(
                "  phase {:<20} {after:>8.1} {} after the load started",
                phase.name,
                clock.unit()
            ));
        }
    }
    if let Some(p) = &report.prediction {
        lines.push(format!(
            "  predicted vs observed (the twin on its virtual clock with {}; tolerance {}):",
            p.params,
            p.tolerance.describe()
        ));
        let seconds = |t: Option<f64>| t.map_or("—".to_owned(), |t| format!("{t:.1}"));
        for row in p
            .phases
            .iter()
            .filter(|r| r.predicted.or(r.observed).is_some())
        {
            let stage = match (row.predicted_stage, row.observed_stage) {
                (Some(p), Some(o)) => format!("  (from {}: {p:.1} → {o:.1})", row.since),
                _ => String::new(),
            };
            lines.push(format!(
                "    {:<20} predicted {:>8}  observed {:>8}  {}{stage}",
                row.phase,
                seconds(row.predicted),
                seconds(row.observed),
                row.verdict.as_str()
            ));
        }
    }
    if let Some(cost) = &report.cost {
        lines.push(format!(
            "  Karpenter nodes by size, node-hours in {}, from when the run first saw each NodeClaim until it was gone:",
            clock.describe()
        ));
        if cost.sizes.is_empty() {
            lines.push("    none seen".to_owned());
        }
        lines.extend(
            cost.sizes
                .iter()
                .map(|s| format!("    {}", s.describe(cost.price_region))),
        );
        lines.push(format!(
            "  estimated cost{}: {}; {}",
            if report.target.simulated {
                " (SIMULATED)"
            } else {
                ""
            },
            cost.describe_total(),
            cost.describe_prices()
        ));
    }
    lines
}

/// Runs the team's deploy command, then tags the resource group it created (or began to
/// create) for `edw sweep`. A deploy that fails or is interrupted deletes that group before the
/// error is returned.
async fn deploy(
    global: &GlobalArgs,
    args: &RunArgs,
    cancel: &CancellationToken,
) -> Result<Option<DeployedGroup>, Failure> {
    let cwd = std::env::current_dir().map_err(Failure::environment)?;
    let mut command = DeployCommand::sample(&cwd, &args.report_dir);
    command.command = args.deploy_command.clone();
    if let Some(state) = &global.state_file {
        command.state_file = state.clone();
    }
    // Without the subscription the run could neither tag nor delete the group it creates:
    // refused before the deploy command runs.
    let subscription = std::env::var("AZURE_SUBSCRIPTION_ID")
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Failure::usage(anyhow::anyhow!(
                "--deploy needs AZURE_SUBSCRIPTION_ID (the subscription the deploy command creates its resource group in): without it this run could neither tag that group for `edw sweep` nor delete it afterwards; export it (`export AZURE_SUBSCRIPTION_ID=$(az account show --query id -o tsv)`)"
            ))
        })?;
    eprintln!(
        "deploying: `{}` (log: {})",
        command.command,
        command.log.display()
    );

    let arm_url = azure_side::arm_url();
    let deployed = {
        let running = command.run(&|line: &str| eprintln!("  | {line}"), cancel);
        let ledger = args.report_dir.join("edw-run.state");
        let recording = record_group_while_deploying(
            StateBefore::read(&command.state_file),
            &ledger,
            &subscription,
            &arm_url,
        );
        tokio::pin!(running, recording);
        tokio::select! {
            deployed = &mut running => deployed,
            never = &mut recording => match never {},
        }
    };
    let state = deployed.result.as_ref().ok().or(deployed.partial.as_ref());
    let group = state
        .and_then(|s| s.get("RESOURCE_GROUP"))
        .map(|e| e.value.clone());
    let group = group.map(|resource_group| DeployedGroup {
        subscription,
        resource_group,
        arm_url,
    });
    if let Some(group) = &group {
        let run_id = format!(
            "edw-{}-{}",
            state
                .and_then(|s| s.get("SUFFIX"))
                .map_or("run", |e| e.value.as_str()),
            time::OffsetDateTime::now_utc().unix_timestamp()
        );
        let expires = time::OffsetDateTime::now_utc() + args.expires_after;
        match tag_group(group, &run_id, expires).await {
            Ok(()) => eprintln!(
                "tagged resource group {} with edw-run-id {run_id} and edw-expires {} (for `edw sweep`)",
                group.resource_group,
                expires.replace_nanosecond(0).unwrap_or(expires)
            ),
            Err(e) => eprintln!(
                "warning: could not tag resource group {}: {e}",
                group.resource_group
            ),
        }
    }
    match deployed.result {
        Ok(_) => Ok(group),
        Err(error) => {
            if let Some(group) = &group {
                match steps::delete_group_announced(group, "the deploy did not finish").await {
                    Ok(done) => eprintln!("{done}"),
                    Err(e) => eprintln!("{e}"),
                }
            }
            Err(Failure::environment(error))
        }
    }
}

/// While the deploy command runs: as soon as its deploy.state names the resource group (the
/// sample writes RESOURCE_GROUP before it creates the group), the ledger records it, so that a
/// run killed mid-deploy is cleaned by `edw cleanup --target aks --run-state <ledger>`. Runs
/// until dropped.
async fn record_group_while_deploying(
    state: StateBefore,
    ledger: &std::path::Path,
    subscription: &str,
    arm_url: &str,
) -> std::convert::Infallible {
    let mut recorded = false;
    loop {
        if !recorded {
            let group = state
                .written_since()
                .and_then(|state| state.get("RESOURCE_GROUP").map(|e| e.value.clone()));
            if let Some(resource_group) = group {
                let group = DeployedGroup {
                    subscription: subscription.to_owned(),
                    resource_group,
                    arm_url: arm_url.to_owned(),
                };
                match run_state::save_deploying(ledger, TargetKind::Aks.name(), &group) {
                    Ok(()) => eprintln!(
                        "ledger: {} records resource group {} (`edw cleanup --target aks --run-state {}` deletes it if this run dies)",
                        ledger.display(),
                        group.resource_group,
                        ledger.display()
                    ),
                    Err(e) => eprintln!("warning: {e}"),
                }
                recorded = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn tag_group(
    group: &DeployedGroup,
    run_id: &str,
    expires: time::OffsetDateTime,
) -> Result<(), edw_engine::arm::ArmError> {
    let client = edw_engine::arm::ArmClient::from_env(&group.arm_url)?;
    edw_engine::arm::ResourceGroups::new(&client, &group.subscription)
        .tag_for_expiry(
            &group.resource_group,
            &edw_engine::arm::ExpiryTags::default(),
            run_id,
            expires,
        )
        .await
        .map(|_| ())
}

/// Live progress on a terminal (indicatif), plain lines otherwise.
#[derive(Clone)]
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(live: bool) -> Self {
        let bar = live.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar }
    }

    fn line(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            // A closed stderr (a reader that went away) must not panic the run.
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    /// Shows queue depth, replicas and nodes as they change, until the token is cancelled.
    fn watch_recorder_of(&self, context: &Context) -> CancellationToken {
        let stop = CancellationToken::new();
        let Some(bar) = self.bar.clone() else {
            return stop;
        };
        let target = context.target.clone();
        let subject = context.subject();
        let token = stop.clone();
        tokio::spawn(async move {
            while !token.is_cancelled() {
                let o = edw_engine::observe::sample_once(&target.client(), &subject).await;
                bar.set_message(format!(
                    "queue {} | replicas {} desired, {} running, {} pending | nodes {} | nodeclaims {}",
                    o.queue.map_or("?".to_owned(), |q| q.to_string()),
                    o.desired,
                    o.running,
                    o.pending,
                    o.total_nodes(),
                    o.nodeclaims
                ));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = token.cancelled() => {}
                }
            }
        });
        stop
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
