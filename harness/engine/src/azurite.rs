//! Embedded Azurite: starts real Azurite (queue and table services on free loopback ports) as
//! child processes and stops them on drop. The queue service keeps its data in a temporary
//! directory (removed on drop), the table service in memory: Azurite's in-memory queue store
//! blocks the whole service while it sweeps deleted messages (51 s after 6,000 deletes, see
//! the README's notes), its disk store does not. When no `azurite-queue` /
//! `azurite-table` is on the PATH it installs the pinned npm package once into a per-user
//! cache, under a file lock so that parallel test processes do not race. Readiness is probed
//! over HTTP, not slept for. Services of the pinned install start with a preload that spares
//! them loading the telemetry library they are told not to use (the `preload` module).
//! `EDW_AZURITE_QUEUE_ENDPOINT` and `EDW_AZURITE_TABLE_ENDPOINT` select an Azurite that is
//! already running instead.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::storage::{StorageTarget, DEVELOPMENT_ACCOUNT};

mod preload;
mod queue_data;

/// The Azurite release the suite pins.
pub const AZURITE_VERSION: &str = "3.37.0";

/// Azurite's published development account key (not a secret: it is in Microsoft's docs).
pub const DEVELOPMENT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How long one Azurite service may take to accept requests (measured: about 1.2 s).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Why Azurite could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AzuriteError {
    #[error(
        "Azurite needs Node.js and npm, and `{program}` was not found: install Node.js 18 or \
         newer with npm (Debian/Ubuntu: `apt-get install nodejs npm`), or run Azurite yourself \
         and set EDW_AZURITE_QUEUE_ENDPOINT and EDW_AZURITE_TABLE_ENDPOINT"
    )]
    NodeMissing { program: &'static str },
    #[error("installing azurite@{AZURITE_VERSION} with `{command}` failed ({status}): {output}")]
    Install {
        command: String,
        status: String,
        output: String,
    },
    #[error("cannot use the Azurite cache directory {path}: {reason}")]
    Cache { path: PathBuf, reason: String },
    #[error("cannot start {program}: {reason}")]
    Spawn { program: PathBuf, reason: String },
    #[error(
        "Azurite's {service} service exited during start-up ({status}); its output:\n{output}"
    )]
    Exited {
        service: &'static str,
        status: String,
        output: String,
    },
    #[error("EDW_AZURITE_RUNTIME is {0:?}: use npm (the default) or docker")]
    UnknownRuntime(String),
    #[error(
        "EDW_AZURITE_RUNTIME=docker needs a build with the docker-azurite feature \
         (`cargo nextest run --features edw-cli/docker-azurite`), and a Docker engine"
    )]
    DockerNotBuilt,
    #[error("cannot run the Azurite container (is a Docker engine running?): {reason}")]
    Docker { reason: String },
    #[error("Azurite's {service} service did not answer on {endpoint} within {waited:?}; its output:\n{output}")]
    NotReady {
        service: &'static str,
        endpoint: String,
        waited: Duration,
        output: String,
    },
}

/// Where to find or put Azurite.
#[derive(Debug, Clone, Default)]
pub struct AzuriteOptions {
    /// Use this running Azurite: (queue endpoint, table endpoint), each with the account path.
    pub existing: Option<(String, String)>,
    /// Where the npm package is installed; default: the per-user cache
    /// (`$EDW_CACHE_DIR`, else `$XDG_CACHE_HOME/edw-conformance`, else `~/.cache/edw-conformance`).
    pub cache_dir: Option<PathBuf>,
    /// How an embedded Azurite runs: `npm` (default: the npm package, as Node.js processes) or
    /// `docker` (the Azurite image through testcontainers; needs the `docker-azurite` feature
    /// and a Docker engine). When `None`, `EDW_AZURITE_RUNTIME` decides.
    pub runtime: Option<String>,
    /// Queue services to start (npm runtime; 0 counts as 1). With more than one, every queue
    /// is partitioned over them (see [`crate::storage::Queue`]): one Azurite queue process
    /// slows down as its backlog grows, so backlogs of many thousands need several.
    pub queue_partitions: usize,
}

impl AzuriteOptions {
    /// Options from the process environment (`EDW_AZURITE_*_ENDPOINT`, `EDW_CACHE_DIR`,
    /// `EDW_AZURITE_RUNTIME`).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        AzuriteOptions {
            existing: var("EDW_AZURITE_QUEUE_ENDPOINT").zip(var("EDW_AZURITE_TABLE_ENDPOINT")),
            cache_dir: None,
            runtime: var("EDW_AZURITE_RUNTIME"),
            queue_partitions: 1,
        }
    }
}

/// A running Azurite (queue and table services). Embedded processes stop when it is dropped.
#[derive(Debug)]
pub struct Azurite {
    /// One queue service's endpoint, or several when the queues are partitioned.
    queue_endpoints: Vec<String>,
    table_endpoint: String,
    services: Vec<Service>,
    #[cfg(feature = "docker-azurite")]
    container: Option<docker::Container>,
}

#[derive(Debug)]
struct Service {
    child: Child,
    /// The queue service's data directory (removed when the service is dropped).
    _data: Option<tempfile::TempDir>,
    /// The last lines it printed (its output is read for as long as it runs; checked for the
    /// preload's stand-in when it stops).
    output: OutputTail,
}

impl Azurite {
    /// Starts Azurite as [`AzuriteOptions::from_env`] says.
    pub async fn start() -> Result<Azurite, AzuriteError> {
        Self::start_with(&AzuriteOptions::from_env()).await
    }

    /// Uses the running Azurite of `options.existing`, or starts an embedded one.
    pub async fn start_with(options: &AzuriteOptions) -> Result<Azurite, AzuriteError> {
        if let Some((queue, table)) = &options.existing {
            return Ok(Azurite {
                queue_endpoints: vec![queue.trim_end_matches('/').to_owned()],
                table_endpoint: table.trim_end_matches('/').to_owned(),
                services: Vec::new(),
                #[cfg(feature = "docker-azurite")]
                container: None,
            });
        }
        // The option, else the environment (so every embedded Azurite follows it).
        let runtime = options
            .runtime
            .clone()
            .or_else(|| std::env::var("EDW_AZURITE_RUNTIME").ok())
            .filter(|r| !r.trim().is_empty());
        match runtime.as_deref().map(str::trim) {
            None | Some("npm") => {}
            Some("docker") => return Self::start_container().await,
            Some(other) => return Err(AzuriteError::UnknownRuntime(other.to_owned())),
        }
        let (bin, preload) = locate_or_install(options.cache_dir.as_deref()).await?;
        let preload = preload.as_deref();
        // Side by side: each Node.js process takes about a second of CPU to start, and eight
        // queue partitions one after the other left a core idle for seconds. One that fails
        // stops the others (they are killed when dropped).
        let (queues, (table, table_endpoint)) = futures::future::try_join(
            futures::future::try_join_all(
                (0..options.queue_partitions.max(1)).map(|_| start_service(&bin, "queue", preload)),
            ),
            start_service(&bin, "table", preload),
        )
        .await?;
        let (mut services, queue_endpoints): (Vec<Service>, Vec<String>) =
            queues.into_iter().unzip();
        services.push(table);
        Ok(Azurite {
            queue_endpoints,
            table_endpoint,
            services,
            #[cfg(feature = "docker-azurite")]
            container: None,
        })
    }

    #[cfg(feature = "docker-azurite")]
    async fn start_container() -> Result<Azurite, AzuriteError> {
        let (container, queue_endpoint, table_endpoint) = docker::start().await?;
        Ok(Azurite {
            queue_endpoints: vec![queue_endpoint],
            table_endpoint,
            services: Vec::new(),
            container: Some(container),
        })
    }

    #[cfg(not(feature = "docker-azurite"))]
    async fn start_container() -> Result<Azurite, AzuriteError> {
        Err(AzuriteError::DockerNotBuilt)
    }

    /// The queue service base URL, with the account path.
    pub fn queue_endpoint(&self) -> &str {
        self.queue_endpoints.first().map_or("", String::as_str)
    }

    /// Every queue service's base URL (more than one when the queues are partitioned).
    pub fn queue_endpoints(&self) -> &[String] {
        &self.queue_endpoints
    }

    /// The table service base URL, with the account path.
    pub fn table_endpoint(&self) -> &str {
        &self.table_endpoint
    }

    /// True when this process started it (and stops it on drop).
    pub fn is_embedded(&self) -> bool {
        #[cfg(feature = "docker-azurite")]
        if self.container.is_some() {
            return true;
        }
        !self.services.is_empty()
    }

    /// The development account on this Azurite.
    pub fn storage_target(&self) -> StorageTarget {
        StorageTarget::development_partitioned(&self.queue_endpoints, &self.table_endpoint)
    }

    /// A connection string for this Azurite with the published development key (its first
    /// queue service: a connection string names one).
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={DEVELOPMENT_ACCOUNT};AccountKey={DEVELOPMENT_KEY};QueueEndpoint={};TableEndpoint={};",
            self.queue_endpoint(),
            self.table_endpoint
        )
    }

    /// The process ids of the embedded services.
    #[cfg(test)]
    fn service_pids(&self) -> Vec<u32> {
        self.services.iter().filter_map(|s| s.child.id()).collect()
    }

    /// The last lines each embedded service printed.
    #[cfg(test)]
    fn service_output(&self) -> Vec<String> {
        self.services.iter().map(|s| tail_text(&s.output)).collect()
    }

    /// Stops the embedded services and waits until they are gone.
    pub async fn stop(mut self) {
        for service in &mut self.services {
            let _ = service.child.kill().await;
        }
        self.services.clear();
        #[cfg(feature = "docker-azurite")]
        if let Some(container) = self.container.take() {
            container.remove().await;
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        for service in &mut self.services {
            let _ = service.child.start_kill();
            // The preload's stand-in says on the error output when Azurite used it after all.
            let output = tail_text(&service.output);
            if let Some(line) = output.lines().find(|l| l.starts_with("edw-conformance:")) {
                tracing::warn!("an Azurite service used the telemetry stand-in: {line}");
            }
        }
    }
}

/// The directory holding `azurite-queue` and `azurite-table`, and for the pinned npm install
/// the preload its services start with (the `preload` module; none for an Azurite found on
/// the PATH, whose version the harness does not know).
async fn locate_or_install(
    cache_dir: Option<&Path>,
) -> Result<(PathBuf, Option<PathBuf>), AzuriteError> {
    if let Some(dir) = on_path("azurite-queue").filter(|d| d.join("azurite-table").is_file()) {
        return Ok((dir, None));
    }
    let root = match cache_dir {
        Some(dir) => install_dir_in(dir),
        None => install_dir(|name| std::env::var_os(name)),
    };
    let bin = root.join("node_modules").join(".bin");
    let marker = root.join(".installed");
    if marker.is_file() {
        ensure_program("node").await?;
        return Ok((bin, install_preload(&root)));
    }
    ensure_program("node").await?;
    ensure_program("npm").await?;
    let cache_error = |reason: String| AzuriteError::Cache {
        path: root.clone(),
        reason,
    };
    std::fs::create_dir_all(&root).map_err(|e| cache_error(e.to_string()))?;
    let lock_path = root.join(".install.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| cache_error(e.to_string()))?;
    // Blocks while another process installs; released when `lock` is dropped.
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .map_err(|e| cache_error(e.to_string()))?
        .map_err(|e| cache_error(format!("cannot lock {}: {e}", lock_path.display())))?;
    if !marker.is_file() {
        npm_install(&root).await?;
        std::fs::write(&marker, AZURITE_VERSION).map_err(|e| cache_error(e.to_string()))?;
    }
    drop(lock);
    Ok((bin, install_preload(&root)))
}

/// The preload in `root`, or `None` (said in the log) when it cannot be written: the services
/// then start as they would without it, only slower.
fn install_preload(root: &Path) -> Option<PathBuf> {
    preload::install(root)
        .inspect_err(|e| {
            tracing::debug!(
                "Azurite starts without the telemetry preload: cannot write it into {}: {e}",
                root.display()
            )
        })
        .ok()
}

/// Where the harness installs the pinned Azurite, given the environment (`var` looks a
/// variable up): `$EDW_CACHE_DIR`, else `$XDG_CACHE_HOME/edw-conformance`, else
/// `$HOME/.cache/edw-conformance`, else the temporary directory's `edw-conformance-cache`, each
/// with `azurite-<version>` below it. `ci/install-azurite.sh` (run by `.ci/run` beside the build)
/// installs into the same directory; a test compares the two.
pub fn install_dir(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    let cache = if let Some(dir) = var("EDW_CACHE_DIR") {
        PathBuf::from(dir)
    } else if let Some(dir) = var("XDG_CACHE_HOME") {
        PathBuf::from(dir).join("edw-conformance")
    } else if let Some(home) = var("HOME") {
        PathBuf::from(home).join(".cache").join("edw-conformance")
    } else {
        var("TMPDIR")
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
            .join("edw-conformance-cache")
    };
    install_dir_in(&cache)
}

fn install_dir_in(cache: &Path) -> PathBuf {
    cache.join(format!("azurite-{AZURITE_VERSION}"))
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| dir.join(program).is_file())
}

async fn ensure_program(program: &'static str) -> Result<(), AzuriteError> {
    let found = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    match found {
        Ok(status) if status.success() => Ok(()),
        _ => Err(AzuriteError::NodeMissing { program }),
    }
}

/// The arguments of the `npm` command that installs the pinned Azurite into `root`
/// (`ci/install-azurite.sh` runs the same; a test compares them).
pub fn npm_install_args(root: &Path) -> Vec<String> {
    [
        "install",
        "--no-audit",
        "--no-fund",
        // What npm's cache already holds is used without asking the registry whether it
        // changed (a warm cache: 18.6 → 10.7 s here); anything missing is still fetched. Azurite
        // itself is pinned; its dependencies resolve within their ranges from the cached
        // package lists, so they may be older than the registry's newest.
        "--prefer-offline",
        "--loglevel=error",
        "--prefix",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([
        root.to_string_lossy().into_owned(),
        format!("azurite@{AZURITE_VERSION}"),
    ])
    .collect()
}

async fn npm_install(root: &Path) -> Result<(), AzuriteError> {
    let args = npm_install_args(root);
    let command = format!("npm {}", args.join(" "));
    tracing::info!(
        %command,
        "installing Azurite {AZURITE_VERSION} from npm into {} (once per machine; about 30 s)",
        root.display()
    );
    let install = tokio::time::timeout(
        Duration::from_secs(600),
        Command::new("npm")
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    );
    tokio::pin!(install);
    // A first install is otherwise silent for half a minute: say it is still going.
    let started = tokio::time::Instant::now();
    let mut progress =
        tokio::time::interval_at(started + Duration::from_secs(10), Duration::from_secs(10));
    let output = loop {
        tokio::select! {
            output = &mut install => break output,
            _ = progress.tick() => tracing::info!(
                "still installing Azurite from npm ({} s)",
                started.elapsed().as_secs()
            ),
        }
    };
    if output
        .as_ref()
        .is_ok_and(|o| o.as_ref().is_ok_and(|o| o.status.success()))
    {
        tracing::info!(
            "Azurite {AZURITE_VERSION} installed in {} s",
            started.elapsed().as_secs()
        );
    }
    let failed = |status: String, output: String| AzuriteError::Install {
        command: command.clone(),
        status,
        output,
    };
    match output {
        Err(_) => Err(failed("timed out after 600 s".into(), String::new())),
        Ok(Err(e)) => Err(failed(e.to_string(), String::new())),
        Ok(Ok(out)) if !out.status.success() => {
            let text = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            Err(failed(
                out.status.to_string(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            ))
        }
        Ok(Ok(_)) => Ok(()),
    }
}

/// The last lines a child printed.
type OutputTail = Arc<Mutex<VecDeque<String>>>;

/// A child's output as it is read: its last lines, and the tasks reading them.
struct ChildOutput {
    tail: OutputTail,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl ChildOutput {
    /// Reads the child's stdout and stderr (those it was given as pipes) into one tail.
    fn collect(child: &mut Child) -> ChildOutput {
        let tail: OutputTail = Arc::default();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(collect_output(out, tail.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(collect_output(err, tail.clone()));
        }
        ChildOutput { tail, readers }
    }

    /// The whole tail of a child that exited: waits (at most `within`) until its readers
    /// reached the end of its output, so its last lines are in.
    async fn final_text(&mut self, within: Duration) -> String {
        let readers = futures::future::join_all(self.readers.drain(..));
        let _ = tokio::time::timeout(within, readers).await;
        tail_text(&self.tail)
    }
}

fn collect_output(
    stream: impl AsyncRead + Unpin + Send + 'static,
    tail: OutputTail,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
            if tail.len() == 40 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    })
}

fn tail_text(tail: &OutputTail) -> String {
    let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
    tail.iter().cloned().collect::<Vec<_>>().join("\n")
}

/// Starts one service on a free port; a port taken between choosing and binding is retried.
async fn start_service(
    bin: &Path,
    service: &'static str,
    preload: Option<&Path>,
) -> Result<(Service, String), AzuriteError> {
    let program = bin.join(format!("azurite-{service}"));
    let mut last_error = None;
    for _attempt in 0..3 {
        let port = free_port().map_err(|e| AzuriteError::Spawn {
            program: program.clone(),
            reason: format!("no free loopback port: {e}"),
        })?;
        let (persistence, data) = persistence_for(service).map_err(|e| AzuriteError::Spawn {
            program: program.clone(),
            reason: format!("no temporary directory for its data: {e}"),
        })?;
        let mut command = Command::new(&program);
        command
            .args(&persistence)
            .args([
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
                "--disableTelemetry",
                &format!("--{service}Host"),
                "127.0.0.1",
                &format!("--{service}Port"),
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(options) = preload
            .and_then(|p| preload::node_options(std::env::var_os("NODE_OPTIONS").as_deref(), p))
        {
            command.env("NODE_OPTIONS", options);
        }
        stop_with_parent(&mut command);
        let mut child = command.spawn().map_err(|e| AzuriteError::Spawn {
            program: program.clone(),
            reason: e.to_string(),
        })?;
        let mut output = ChildOutput::collect(&mut child);
        let endpoint = format!("http://127.0.0.1:{port}/{DEVELOPMENT_ACCOUNT}");
        match wait_ready(&mut child, service, port, &endpoint, &mut output).await {
            Ok(()) => {
                let service = Service {
                    child,
                    _data: data,
                    output: output.tail,
                };
                return Ok((service, endpoint));
            }
            Err(AzuriteError::Exited { output, .. }) if output.contains("EADDRINUSE") => {
                last_error = Some(output);
            }
            Err(other) => return Err(other),
        }
    }
    Err(AzuriteError::Exited {
        service,
        status: "port in use three times".into(),
        output: last_error.unwrap_or_default(),
    })
}

/// A service stops (SIGTERM) when the thread that started it ends: in practice when the
/// process that started it dies, even by SIGKILL, which runs no `Drop` (`kill_on_drop` covers
/// every other end). Without it a killed `edw` left its Node.js processes serving. The threads
/// of a tokio runtime live as long as the runtime, and a service lives no longer than its
/// `Azurite`, so the thread is always there while the service is needed.
#[cfg(target_os = "linux")]
fn stop_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions
    // (prctl, getppid, kill, getpid) and touches no memory shared with the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl: then no signal would come.
            if libc::getppid() as u32 != parent {
                libc::kill(libc::getpid(), libc::SIGTERM);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_parent(_command: &mut Command) {}

/// Where a service keeps its data: the queue service on disk in a fresh temporary directory
/// (its in-memory store stalls on every sweep of deleted messages; [`queue_data`] also removes
/// the directories of owners killed before they could), the table service in memory.
fn persistence_for(
    service: &str,
) -> std::io::Result<(Vec<std::ffi::OsString>, Option<tempfile::TempDir>)> {
    if service != "queue" {
        return Ok((vec!["--inMemoryPersistence".into()], None));
    }
    let dir = queue_data::create()?;
    let args = vec!["--location".into(), dir.path().as_os_str().to_owned()];
    Ok((args, Some(dir)))
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// True when `output` has the line an Azurite service prints once it holds `port` (3.37, with
/// `--silent`: the queue service "… successfully listens on http://127.0.0.1:PORT", the table
/// service "… successfully started on 127.0.0.1:PORT").
fn says_it_listens(output: &str, port: u16) -> bool {
    let address = format!("127.0.0.1:{port}");
    output.lines().any(|line| {
        line.contains("successfully")
            && line.match_indices(&address).any(|(at, _)| {
                !line[at + address.len()..].starts_with(|c: char| c.is_ascii_digit())
            })
    })
}

/// Polls until the service says it listens on `port` and answers HTTP there, failing early
/// if the process exits. An answer alone is not enough: the port is chosen free, then handed
/// to Azurite, and another process can take it in between; Azurite then exits with EADDRINUSE,
/// but until it does the other process answers, and a run would talk to it and fail when it
/// goes (a suite run saw a round trip's queue refuse connections mid-send).
async fn wait_ready(
    child: &mut Child,
    service: &'static str,
    port: u16,
    endpoint: &str,
    output: &mut ChildOutput,
) -> Result<(), AzuriteError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            // Its last lines (EADDRINUSE among them) may still be in the pipes.
            return Err(AzuriteError::Exited {
                service,
                status: status.to_string(),
                output: output.final_text(Duration::from_secs(2)).await,
            });
        }
        if says_it_listens(&tail_text(&output.tail), port) && answers_http(port).await {
            return Ok(());
        }
        if started.elapsed() > READY_WITHIN {
            return Err(AzuriteError::NotReady {
                service,
                endpoint: endpoint.to_owned(),
                waited: READY_WITHIN,
                output: tail_text(&output.tail),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// True when something on `port` answers an HTTP request.
pub(crate) async fn answers_http(port: u16) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(
                format!("GET /{DEVELOPMENT_ACCOUNT}?comp=list HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(&head == b"HTTP/1.1 ")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(true))
    )
}

/// Azurite as a container (the `docker-azurite` feature): the image of the version the npm
/// path pins, queue and table services on ports Docker maps, removed when dropped.
#[cfg(feature = "docker-azurite")]
mod docker {
    use testcontainers_modules::azurite::Azurite as AzuriteImage;
    use testcontainers_modules::testcontainers::core::ContainerPort;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};

    use super::{AzuriteError, AZURITE_VERSION, DEVELOPMENT_ACCOUNT};

    /// The running container (removed on drop by testcontainers).
    #[derive(Debug)]
    pub(super) struct Container(ContainerAsync<AzuriteImage>);

    impl Container {
        pub(super) async fn remove(self) {
            let _ = self.0.rm().await;
        }
    }

    fn failed(e: impl std::fmt::Display) -> AzuriteError {
        AzuriteError::Docker {
            reason: e.to_string(),
        }
    }

    /// Starts the container; returns it with the queue and table endpoints.
    pub(super) async fn start() -> Result<(Container, String, String), AzuriteError> {
        let container = AzuriteImage::default()
            .with_skip_api_version_check()
            .with_loose()
            .with_disable_telemetry()
            .with_tag(AZURITE_VERSION)
            .start()
            .await
            .map_err(failed)?;
        let host = container.get_host().await.map_err(failed)?.to_string();
        let queue = container
            .get_host_port_ipv4(ContainerPort::Tcp(10001))
            .await
            .map_err(failed)?;
        let table = container
            .get_host_port_ipv4(ContainerPort::Tcp(10002))
            .await
            .map_err(failed)?;
        Ok((
            Container(container),
            format!("http://{host}:{queue}/{DEVELOPMENT_ACCOUNT}"),
            format!("http://{host}:{table}/{DEVELOPMENT_ACCOUNT}"),
        ))
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::*;

    #[tokio::test]
    async fn an_unknown_runtime_is_refused_naming_the_variable() {
        let options = AzuriteOptions {
            runtime: Some("podman".into()),
            ..AzuriteOptions::default()
        };
        let error = Azurite::start_with(&options).await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains("EDW_AZURITE_RUNTIME is \"podman\""),
            "{error}"
        );
    }

    #[cfg(not(feature = "docker-azurite"))]
    #[tokio::test]
    async fn docker_without_the_feature_says_how_to_build_it() {
        let options = AzuriteOptions {
            runtime: Some("docker".into()),
            ..AzuriteOptions::default()
        };
        let error = Azurite::start_with(&options).await.unwrap_err();
        assert!(error.to_string().contains("docker-azurite"), "{error}");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod preload_tests {
    use super::*;

    /// The NUL-separated entries of `/proc/<pid>/<file>`.
    fn proc_entries(pid: u32, file: &str) -> Vec<String> {
        let bytes = std::fs::read(format!("/proc/{pid}/{file}")).unwrap();
        bytes
            .split(|b| *b == 0)
            .map(|entry| String::from_utf8_lossy(entry).into_owned())
            .collect()
    }

    /// The pinned install's root and preload, as the harness finds them (installing them if
    /// needed); `None`, said, when an Azurite on the PATH is used instead.
    async fn pinned_install() -> Option<(PathBuf, PathBuf)> {
        let (bin, preload) = locate_or_install(None).await.unwrap();
        let Some(preload) = preload else {
            println!(
                "skipped: the Azurite on the PATH ({}) is used as it is, without the preload; \
                 this checks the pinned npm install",
                bin.display()
            );
            return None;
        };
        let root = install_dir(|name| std::env::var_os(name));
        assert_eq!(preload, root.join("edw-skip-disabled-telemetry.cjs"));
        Some((root, preload))
    }

    #[tokio::test]
    async fn the_pinned_azurites_services_start_with_the_preload_and_telemetry_off() {
        let Some((_, preload)) = pinned_install().await else {
            return;
        };
        assert_eq!(std::fs::read_to_string(&preload).unwrap(), preload::SCRIPT);
        let azurite = Azurite::start_with(&AzuriteOptions {
            runtime: Some("npm".into()),
            queue_partitions: 2,
            ..AzuriteOptions::default()
        })
        .await
        .unwrap();
        let pids = azurite.service_pids();
        assert_eq!(pids.len(), 3, "two queue services and a table service");
        for pid in pids {
            let environment = proc_entries(pid, "environ");
            let node_options = environment
                .iter()
                .find_map(|entry| entry.strip_prefix("NODE_OPTIONS="))
                .unwrap_or_else(|| panic!("service {pid} has no NODE_OPTIONS"));
            assert!(
                node_options.ends_with(&format!("--require \"{}\"", preload.display())),
                "{node_options}"
            );
            let command_line = proc_entries(pid, "cmdline");
            assert!(
                command_line.iter().any(|a| a == "--disableTelemetry"),
                "{command_line:?}"
            );
        }
        // They serve (both queue partitions and the table service), and the stand-in was never
        // touched: it says so on the service's error output when it is.
        let storage = crate::storage::Storage::connect(&azurite.storage_target()).unwrap();
        let queue = storage.queue("preloaded");
        queue.create().await.unwrap();
        for body in ["one", "two"] {
            queue.send(body).await.unwrap();
        }
        assert_eq!(queue.approximate_count().await.unwrap(), 2);
        let table = storage.table("preloaded");
        table.create().await.unwrap();
        assert_eq!(table.count(None).await.unwrap(), 0);
        for output in azurite.service_output() {
            assert!(!output.contains("edw-conformance:"), "{output}");
        }
    }

    /// The preload still has a purpose (the pinned Azurite loads the library at start) and
    /// does what it says: answers that one request with a stand-in that refuses any use, and
    /// says so on the error output.
    #[tokio::test]
    async fn the_preload_answers_the_telemetry_library_with_a_stand_in_that_refuses_use() {
        let Some((root, preload)) = pinned_install().await else {
            return;
        };
        let azurite = root.join("node_modules").join("azurite");
        let telemetry =
            std::fs::read_to_string(azurite.join("dist/src/common/Telemetry.js")).unwrap();
        assert!(
            telemetry.contains("require(\"applicationinsights\")"),
            "Azurite {AZURITE_VERSION} no longer loads applicationinsights: drop the preload"
        );
        let script = "const ai = require('applicationinsights'); \
                      try { ai.setup('x'); console.log('used'); } \
                      catch (e) { console.log('refused: ' + e.message); } \
                      console.log(typeof require('tslib').__importDefault);";
        let run = |preloaded: bool| {
            let mut node = std::process::Command::new("node");
            if preloaded {
                node.arg("--require").arg(&preload);
            }
            let out = node
                .args(["-e", script])
                .current_dir(&azurite)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            (
                String::from_utf8(out.stdout).unwrap(),
                String::from_utf8(out.stderr).unwrap(),
            )
        };
        let (stdout, stderr) = run(true);
        assert!(
            stdout.starts_with("refused: applicationinsights.setup used, but edw-conformance"),
            "{stdout}"
        );
        assert!(
            stdout.ends_with("function\n"),
            "other modules load: {stdout}"
        );
        assert!(
            stderr.starts_with("edw-conformance: applicationinsights.setup used"),
            "{stderr}"
        );
        let (stdout, _) = run(false);
        assert!(
            stdout.starts_with("used"),
            "without the preload the real library: {stdout}"
        );
    }
}

#[cfg(test)]
mod readiness_tests {
    use super::*;

    /// Something else answering HTTP on the chosen port: accepts and answers every connection.
    async fn other_server() -> (u16, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
        (port, task)
    }

    /// A child running `script` (sh), its output collected as a service's is.
    fn child(script: &str) -> (Child, ChildOutput) {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let output = ChildOutput::collect(&mut child);
        (child, output)
    }

    #[tokio::test]
    async fn a_port_another_process_answers_on_is_not_ready_and_eaddrinuse_is_reported() {
        let (port, _server) = other_server().await;
        let (mut child, mut output) = child(&format!(
            "echo 'Azurite Queue service is starting on 127.0.0.1:{port}'; sleep 0.5; \
             echo 'Exiting due to an unhandled error: listen EADDRINUSE: address already in use' >&2; exit 1"
        ));
        let result = wait_ready(&mut child, "queue", port, "endpoint", &mut output).await;
        match result {
            Err(AzuriteError::Exited { output, .. }) => {
                assert!(output.contains("EADDRINUSE"), "{output}")
            }
            other => panic!("ready on another process's port: {other:?}"),
        }
    }

    #[test]
    fn both_services_lines_say_they_listen_on_their_port_only() {
        let queue = "Azurite Queue service successfully listens on http://127.0.0.1:41999";
        let table = "Azurite Table service is starting on 127.0.0.1:40081\nAzurite Table service successfully started on 127.0.0.1:40081";
        assert!(says_it_listens(queue, 41999));
        assert!(says_it_listens(table, 40081));
        assert!(!says_it_listens(queue, 4199));
        assert!(!says_it_listens(
            "Azurite Table service is starting on 127.0.0.1:40081",
            40081
        ));
    }

    #[tokio::test]
    async fn the_service_that_says_it_listens_and_answers_is_ready() {
        let (port, _server) = other_server().await;
        let (mut child, mut output) = child(&format!(
            "echo 'Azurite Queue service successfully listens on http://127.0.0.1:{port}'; sleep 30"
        ));
        wait_ready(&mut child, "queue", port, "endpoint", &mut output)
            .await
            .unwrap();
    }
}
