//! One file per `edw` command; [`run`] dispatches.

mod azure;
mod azure_side;
mod azurite;
mod bench;
pub(crate) mod check_config;
mod config;
mod consume;
mod doctor;
mod gate;
mod history;
mod phase;
mod produce;
mod queue;
mod roundtrip;
mod run;
mod twin;

use tokio_util::sync::CancellationToken;

use super::args::{Cli, Command, QueueCommand, TwinCommand};
use super::Failure;

/// Runs the parsed command; `Ok` carries the exit code.
pub async fn run(cli: Cli, cancel: &CancellationToken) -> Result<u8, Failure> {
    match cli.command {
        Command::Produce(args) => produce::run(&cli.global, &args, cancel).await,
        Command::Consume(args) => consume::run(&cli.global, &args, cancel).await,
        Command::Queue {
            command: QueueCommand::Stats { json },
        } => queue::stats(&cli.global, json).await,
        Command::Azurite => azurite::run(&cli.global, cancel).await,
        Command::Roundtrip(args) => roundtrip::run(&cli.global, &args, cancel).await,
        Command::Config => config::run(&cli.global),
        Command::CheckConfig(args) => check_config::run(&cli.global, &args),
        Command::Run(args) => run::run(&cli.global, &args, cancel).await,
        Command::Bench(args) => bench::run(&cli.global, &args, cancel).await,
        Command::Gate(args) => gate::run(&cli.global, &args, cancel).await,
        Command::History { command } => history::run(&command),
        Command::Sweep(args) => azure::sweep(&args).await,
        Command::AzureCheck(args) => azure::check(&cli.global, &args).await,
        Command::Deploy(args) => phase::run("deploy", &cli.global, &args, cancel).await,
        Command::Validate(args) => phase::run("validate", &cli.global, &args, cancel).await,
        Command::Load(args) => phase::run_load(&cli.global, &args, cancel).await,
        Command::Scale(args) => phase::run("scale", &cli.global, &args, cancel).await,
        Command::Cleanup(args) => phase::run("cleanup", &cli.global, &args, cancel).await,
        Command::Twin {
            command: TwinCommand::Simulate(args),
        } => twin::simulate(&cli.global, &args),
        Command::Twin {
            command: TwinCommand::Serve(args),
        } => twin::serve(&cli.global, &args, cancel).await,
        Command::Twin {
            command: TwinCommand::Calibrate(args),
        } => twin::calibrate(&args),
        Command::Doctor(args) => doctor::run(&cli.global, &args).await,
    }
}

/// Tells the user that an embedded Azurite forgets everything when the command ends.
fn note_embedded(session: &super::session::Session) {
    if session.azurite.is_some() {
        eprintln!(
            "note: no storage account is configured, so this runs against an embedded Azurite \
             that stops (and forgets its messages) when the command ends; run `edw azurite` in \
             another terminal and export the variables it prints to share one between commands"
        );
    }
}
