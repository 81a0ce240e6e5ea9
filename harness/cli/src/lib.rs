//! The `edw` command line: argument definitions, logging set-up, signal handling and the
//! mapping of outcomes to exit codes. Each command lives in its own file.

mod args;
mod commands;
mod session;

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

pub use args::{Cli, Command};

/// Exit codes, as documented in the README.
pub mod exit {
    /// Everything worked and every check passed.
    pub const OK: u8 = 0;
    /// The command ran, and a check failed (messages lost or duplicated, …).
    pub const CHECK_FAILED: u8 = 1;
    /// Bad arguments or configuration (clap also uses 2 for usage errors).
    pub const USAGE: u8 = 2;
    /// Storage or Azurite unavailable, or credentials refused.
    pub const ENVIRONMENT: u8 = 3;
    /// Stopped by Ctrl-C or SIGTERM.
    pub const INTERRUPTED: u8 = 130;
}

/// A command's failure, with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: exit::USAGE,
            error: error.into(),
        }
    }

    pub fn environment(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: exit::ENVIRONMENT,
            error: error.into(),
        }
    }

    /// A target that does not open: its configuration (2) or its environment (3).
    pub fn target(error: edw_engine::target::TargetError) -> Self {
        if error.is_configuration() {
            Failure::usage(error)
        } else {
            Failure::environment(error)
        }
    }

    /// A storage failure: its configuration (2) or the service (3: unreachable, refused).
    pub fn storage(error: edw_engine::storage::StorageError) -> Self {
        if error.is_configuration() {
            Failure::usage(error)
        } else {
            Failure::environment(error)
        }
    }

    /// The same failure, with `context` in front of its message.
    pub fn context(self, context: impl std::fmt::Display + Send + Sync + 'static) -> Self {
        Failure {
            code: self.code,
            error: self.error.context(context),
        }
    }
}

/// Runs the CLI with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ENVIRONMENT);
        }
    };
    let code = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let interrupted = edw_engine::interrupt::cancel_on_interrupt(cancel.clone());
        let result = commands::run(cli, &cancel).await;
        let code = match result {
            Ok(code) => code,
            Err(failure) => {
                let text = edw_engine::error_chain::text(failure.error.as_ref());
                eprintln!("error: {text}");
                failure.code
            }
        };
        // A command stopped by Ctrl-C or SIGTERM exits 130 whatever it then reported: also
        // one that runs until Ctrl-C (produce, consume, azurite, twin serve), and one whose
        // failure the interruption caused.
        if interrupted.is_cancelled() {
            exit::INTERRUPTED
        } else {
            code
        }
    });
    // Child processes (Azurite) were killed on drop; do not wait for stray tasks.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    ExitCode::from(code)
}

/// Logs to stderr through the secret redactor. `RUST_LOG` overrides the verbosity flags.
fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        // Warnings, and the progress of a first Azurite install (half a minute otherwise
        // silent).
        (false, 0) => "warn,edw_engine::azurite=info",
        (false, 1) => "info,azure_core=warn",
        (false, 2) => "debug,azure_core=info,hyper=info,reqwest=info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colour only for a person at a terminal: piped or captured stderr gets plain WARN lines.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(|| RedactingStderr)
        .with_target(false)
        .try_init();
}

/// Writes to stderr with secrets removed.
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = edw_engine::secrets::redact(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
