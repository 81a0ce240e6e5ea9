//! `edw run`: the sample's flow on a target, with live progress, reports and an exit code.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cli::args::{GlobalArgs, RunArgs};
use crate::cli::{exit, session, Failure};
use crate::scenario::model::Outcome;
use crate::scenario::{flow, report, run as run_scenario, Context, FlowSettings, RunOptions};
use crate::target::{Target, TargetKind};

pub async fn run(
    global: &GlobalArgs,
    args: &RunArgs,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    let kind = TargetKind::parse(&args.target).map_err(Failure::usage)?;
    let config = session::load_config(global)?;
    let live = !args.plain && std::io::stderr().is_terminal();
    eprintln!("opening the {} target…", kind.name());
    let target = Target::open(kind, &config)
        .await
        .map_err(Failure::environment)?;
    let target = Arc::new(target);
    let info = target.info();
    eprintln!("target: {}", info.description);
    let scenario = flow::burst();
    let settings = FlowSettings {
        messages: args.messages,
        ..scenario.settings.clone()
    };
    let progress = Progress::new(live);
    let sink = progress.clone();
    let ledger = args.report_dir.join("edw-run.state");
    let mut context = Context::new(target.clone(), config, settings)
        .with_progress(Arc::new(move |line: &str| sink.line(line)));
    context.ledger = Some(ledger.clone());
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
    ticker.cancel();
    progress.finish();
    drop(context);
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
    for step in report.steps.iter().chain(&report.cleanup) {
        let (mark, text) = match &step.outcome {
            Outcome::Passed => ("ok  ", String::new()),
            Outcome::Failed { message } => ("FAIL", format!(": {message}")),
            Outcome::Skipped { reason } => ("skip", format!(": {reason}")),
        };
        println!(
            "  {mark} {} ({:.1} s){text}",
            step.name,
            step.duration.as_secs_f64()
        );
    }
    let unit = if info.simulated { "simulated s" } else { "s" };
    for phase in &report.phases {
        if let Some(after) = phase.after_load {
            println!(
                "  phase {:<20} {after:>8.1} {unit} after the load started",
                phase.name
            );
        }
    }
    println!(
        "reports: {} (junit.xml, timeline.json, timeline.svg, summary.md)",
        dir.display()
    );
    Ok(if cancel.is_cancelled() {
        exit::INTERRUPTED
    } else if report.passed() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
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
            None => eprintln!("{line}"),
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
