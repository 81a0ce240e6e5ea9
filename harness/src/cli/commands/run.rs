//! `edw run`: the sample's flow on a target, with live progress, reports and an exit code.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cli::args::{GlobalArgs, RunArgs, StorageFirewallMode};
use crate::cli::{exit, session, Failure};

use super::azure_side::{self, AzureSideReady};
use crate::deploy_script::{DeployCommand, StateBefore};
use crate::scenario::{
    flow, report, run as run_scenario, run_state, storage_firewall, Context, DeployedGroup,
    FirewallOpening, FlowSettings, Footprint, RunOptions,
};
use crate::target::{Target, TargetKind};

pub async fn run(
    global: &GlobalArgs,
    args: &RunArgs,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    let kind = TargetKind::parse(&args.target).map_err(Failure::usage)?;
    if args.use_deployed && kind == TargetKind::Local {
        return Err(Failure::usage(anyhow::anyhow!(
            "--use-deployed exercises a consumer the team deployed on a cluster: it needs --target kube or aks (the local twin starts empty)"
        )));
    }
    // A burst the model says never activates tests nothing: refused before anything is deployed.
    flow::check_load_activates(&FlowSettings {
        messages: args.messages,
        ..flow::burst().settings
    })
    .map_err(Failure::usage)?;
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
    let live = !args.plain && std::io::stderr().is_terminal();
    eprintln!("opening the {} target…", kind.name());
    let target = match session::open_target(kind, &config).await {
        Ok(target) => target,
        Err(failure) => {
            let opening = azure.opening.as_ref().map(|o| (o, ledger.as_path()));
            return Err(abandon(failure, opening, deployed_group.as_ref()).await);
        }
    };
    let target = Arc::new(target);
    let info = target.info();
    eprintln!("target: {}", info.description);
    let mut scenario = flow::burst();
    if kind == TargetKind::Aks {
        scenario.steps.insert(0, storage_firewall::preflight_step());
    }
    // After the queue and table are deleted (that needs the opening), before the group goes.
    if azure.opening.is_some() {
        scenario.cleanup.push(storage_firewall::cleanup_step());
    }
    if deployed_group.is_some() {
        scenario.cleanup.push(flow::cleanup_resource_group_step());
    }
    let settings = FlowSettings {
        messages: args.messages,
        ..scenario.settings.clone()
    };
    let progress = Progress::new(live);
    let sink = progress.clone();
    let mut context = Context::new(target.clone(), config, settings)
        .with_progress(Arc::new(move |line: &str| sink.line(line)));
    if args.use_deployed {
        context = context.with_footprint(Footprint::UseDeployed);
    }
    eprintln!(
        "run {}: {} (only what carries the label {}={} is deleted by its cleanup)",
        context.names.run_id,
        context.footprint.describe(),
        crate::manifests::RUN_ID_LABEL,
        context.names.run_id
    );
    context.ledger = Some(ledger.clone());
    context.deployed_group = deployed_group.clone();
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
    let ticker = progress.watch_recorder_of(&context);
    let options = RunOptions {
        keep_on_failure: args.keep_on_failure,
        deadline: args.timeout,
    };
    let report = run_scenario(&scenario, &mut context, &options, cancel).await;
    let ledger_left = !crate::scenario::run_state::remove_when_cleaned(&ledger, &report, &options);
    ticker.cancel();
    progress.finish();
    drop(context);
    if let Target::Local(local) = target.as_ref() {
        // How faithful the simulated time was: the governed clock slows when the real
        // consumers lag (harness::twin_governor).
        // Not eprintln!: stderr may be closed by now (a caller that stopped reading after the
        // cleanup), and a failed write must not turn a finished run into a panic.
        let _ = writeln!(
            std::io::stderr(),
            "twin clock: {}",
            local.governor_summary()
        );
    }
    if let Ok(target) = Arc::try_unwrap(target) {
        target.shutdown().await;
    }
    let dir = args.report_dir.join(format!(
        "{}-{}",
        scenario.name.replace("::", "-"),
        info.name
    ));
    report::write_all(&report, &dir).map_err(Failure::environment)?;
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
    for line in summary_lines(&report) {
        println!("{line}");
    }
    println!(
        "reports: {} (junit.xml, timeline.json, timeline.svg, summary.md)",
        dir.display()
    );
    if ledger_left && ledger.exists() {
        println!(
            "ledger kept: {} (`edw cleanup --target {} --run-state {}` removes what this run left)",
            ledger.display(),
            info.name,
            ledger.display()
        );
    }
    // An interrupted run exits 130 (crate::cli::main), whatever its report says.
    Ok(if report.passed() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
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
        match flow::delete_group_announced(group, "this run deployed it").await {
            Ok(done) => eprintln!("{done}"),
            Err(e) => eprintln!("{e}"),
        }
    }
    failure
}

/// The run's summary for the terminal, every figure with its clock: the steps (real time),
/// the phases (the target's clock, after the load started) and, with Karpenter, the nodes by
/// VM size with node-hours and the estimated cost.
fn summary_lines(report: &crate::scenario::model::ScenarioReport) -> Vec<String> {
    let clock = report.target.clock;
    let mut lines = vec![format!("  steps ({}):", crate::scenario::model::STEP_CLOCK)];
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
    if let Some(cost) = &report.cost {
        lines.push(format!(
            "  Karpenter nodes by size, node-hours in {}, from when the run first saw each NodeClaim until it was gone:",
            clock.describe()
        ));
        if cost.sizes.is_empty() {
            lines.push("    none seen".to_owned());
        }
        lines.extend(cost.sizes.iter().map(|s| format!("    {}", s.describe())));
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
                match flow::delete_group_announced(group, "the deploy did not finish").await {
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
) -> Result<(), crate::arm::ArmError> {
    let client = crate::arm::ArmClient::from_env(&group.arm_url)?;
    crate::arm::ResourceGroups::new(&client, &group.subscription)
        .tag_for_expiry(
            &group.resource_group,
            &crate::arm::ExpiryTags::default(),
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
                let o = crate::observe::sample_once(&target.client(), &subject).await;
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
