//! Runs the team's deploy command for the `aks` target (default `./deployment/infra/deploy.sh`):
//! its output goes to the console and, redacted, to `reports/install.log`; Ctrl-C stops its whole
//! process group; afterwards the deploy.state it wrote is read back, a partial one too, so that
//! whatever a failed deploy created can be cleaned up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::config::{load_deploy_state, DeployState, DeployStateError};
use crate::secrets::redact;

/// The sample's deploy script, relative to the working directory.
pub const DEFAULT_COMMAND: &str = "./deployment/infra/deploy.sh";

/// How long a stopped deploy command gets between SIGTERM and SIGKILL (and a finished one's
/// process to exit after its output closed).
const GRACE: Duration = Duration::from_secs(10);

/// Lines of the log an error quotes.
const TAIL: usize = 15;

/// Why the deploy command did not deploy.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cannot start the deploy command `{command}`: {reason}")]
    Start { command: String, reason: String },
    #[error("cannot write the install log {path}: {reason}")]
    Log { path: String, reason: String },
    #[error("the deploy command `{command}` failed ({status}); the last lines of {log}:\n{tail}")]
    Failed {
        command: String,
        status: String,
        log: String,
        tail: String,
    },
    #[error("the deploy command `{command}` was interrupted and stopped (its log: {log})")]
    Interrupted { command: String, log: String },
    #[error("after the deploy command")]
    State(#[from] DeployStateError),
}

/// What to run, where, and where its log and state go.
#[derive(Debug, Clone)]
pub struct DeployCommand {
    /// A shell command line (`bash -c`).
    pub command: String,
    pub working_dir: PathBuf,
    /// `reports/install.log`.
    pub log: PathBuf,
    /// The deploy.state the command writes (`deployment/deploy.state` in the sample).
    pub state_file: PathBuf,
}

/// What running the deploy command came to.
#[derive(Debug)]
pub struct Deployed {
    /// The deploy.state read back on success.
    pub result: Result<DeployState, DeployError>,
    /// On failure: the (partial) deploy.state, if the command wrote one: what to clean up.
    pub partial: Option<DeployState>,
}

impl DeployCommand {
    /// The sample's layout under `working_dir`, logging to `report_dir/install.log`.
    pub fn sample(working_dir: &Path, report_dir: &Path) -> Self {
        DeployCommand {
            command: DEFAULT_COMMAND.to_owned(),
            working_dir: working_dir.to_owned(),
            log: report_dir.join("install.log"),
            state_file: working_dir.join("deployment/deploy.state"),
        }
    }

    /// Runs the command to its end (or until `cancel`), each output line to `progress` and to
    /// the install log.
    pub async fn run(
        &self,
        progress: &(dyn Fn(&str) + Sync),
        cancel: &CancellationToken,
    ) -> Deployed {
        let before = StateBefore::read(&self.state_file);
        let outcome = self.run_command(progress, cancel).await;
        match outcome {
            Ok(()) => Deployed {
                result: load_deploy_state(&self.state_file).map_err(DeployError::from),
                partial: None,
            },
            Err(error) => Deployed {
                result: Err(error),
                // Only what this command wrote: an earlier deployment's lines name resources
                // this run did not create, which its cleanup must not delete.
                partial: before.written_since(),
            },
        }
    }

    async fn run_command(
        &self,
        progress: &(dyn Fn(&str) + Sync),
        cancel: &CancellationToken,
    ) -> Result<(), DeployError> {
        let log_error = |e: std::io::Error| DeployError::Log {
            path: self.log.display().to_string(),
            reason: e.to_string(),
        };
        if let Some(dir) = self.log.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(log_error)?;
        }
        let mut log = std::fs::File::create(&self.log).map_err(log_error)?;
        let mut child = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(&self.command)
            .current_dir(&self.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| DeployError::Start {
                command: self.command.clone(),
                reason: e.to_string(),
            })?;
        let pid = child.id();
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(DeployError::Start {
                command: self.command.clone(),
                reason: "no output pipes".to_owned(),
            });
        };
        let mut out = BufReader::new(stdout).lines();
        let mut err = BufReader::new(stderr).lines();
        let mut sink = LogSink {
            file: &mut log,
            tail: Vec::new(),
            progress,
        };
        let (mut out_open, mut err_open) = (true, true);
        let (mut interrupted, mut killed) = (false, false);
        // Once interrupted: SIGTERM now, SIGKILL if the group still holds its output open.
        let kill_at = tokio::time::sleep(Duration::MAX);
        tokio::pin!(kill_at);
        while out_open || err_open {
            tokio::select! {
                line = out.next_line(), if out_open => match line {
                    Ok(Some(line)) => sink.line(&line).map_err(log_error)?,
                    Ok(None) | Err(_) => out_open = false,
                },
                line = err.next_line(), if err_open => match line {
                    Ok(Some(line)) => sink.line(&line).map_err(log_error)?,
                    Ok(None) | Err(_) => err_open = false,
                },
                _ = cancel.cancelled(), if !interrupted => {
                    interrupted = true;
                    signal_group(pid, "TERM").await;
                    kill_at.as_mut().reset(tokio::time::Instant::now() + GRACE);
                }
                _ = &mut kill_at, if interrupted && !killed => {
                    killed = true;
                    signal_group(pid, "KILL").await;
                }
            }
        }
        let tail = sink.tail;
        let status = match tokio::time::timeout(GRACE, child.wait()).await {
            Ok(status) => status,
            // Its output is closed but it lives on: it goes now.
            Err(_) => {
                signal_group(pid, "KILL").await;
                child.wait().await
            }
        }
        .map_err(|e| DeployError::Start {
            command: self.command.clone(),
            reason: e.to_string(),
        })?;
        log.flush().map_err(log_error)?;
        if interrupted || cancel.is_cancelled() {
            return Err(DeployError::Interrupted {
                command: self.command.clone(),
                log: self.log.display().to_string(),
            });
        }
        if !status.success() {
            return Err(DeployError::Failed {
                command: self.command.clone(),
                status: status.to_string(),
                log: self.log.display().to_string(),
                tail: tail.join("\n"),
            });
        }
        Ok(())
    }
}

/// A deploy.state as it was before the deploy command ran, to tell what the command wrote: the
/// sample's deploy.sh appends to the file, so a directory that was deployed before holds the
/// earlier deployment's lines too.
#[derive(Debug, Clone)]
pub struct StateBefore {
    file: PathBuf,
    bytes: Vec<u8>,
}

impl StateBefore {
    /// The file's contents now (none when it does not exist).
    pub fn read(file: &Path) -> Self {
        StateBefore {
            file: file.to_owned(),
            bytes: std::fs::read(file).unwrap_or_default(),
        }
    }

    /// What the command has written since, in complete lines (a line still being written is
    /// left for the next look): the lines appended to the earlier contents, or the whole file
    /// when the command rewrote it. `None` when it wrote nothing that parses.
    pub fn written_since(&self) -> Option<DeployState> {
        let now = std::fs::read(&self.file).ok()?;
        let fresh = now.strip_prefix(self.bytes.as_slice()).unwrap_or(&now);
        let complete = fresh
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(&fresh[..0], |end| &fresh[..=end]);
        crate::config::parse_bytes(&self.file, complete)
            .ok()
            .filter(|state| !state.entries.is_empty())
    }
}

/// Where each output line goes: redacted, to the log and to the progress callback; the last
/// [`TAIL`] are kept for an error message.
struct LogSink<'a> {
    file: &'a mut std::fs::File,
    tail: Vec<String>,
    progress: &'a (dyn Fn(&str) + Sync),
}

impl LogSink<'_> {
    fn line(&mut self, line: &str) -> std::io::Result<()> {
        let line = redact(line);
        writeln!(self.file, "{line}")?;
        (self.progress)(&line);
        self.tail.push(line);
        if self.tail.len() > TAIL {
            self.tail.remove(0);
        }
        Ok(())
    }
}

/// Sends `signal` (TERM, KILL) to the command's process group.
async fn signal_group(pid: Option<u32>, signal: &str) {
    let Some(pid) = pid else { return };
    let _ = tokio::process::Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status()
        .await;
}
