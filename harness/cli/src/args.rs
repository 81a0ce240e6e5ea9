//! The `edw` arguments (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Conformance suite for the event-driven workflow (Azure Storage queue → KEDA-scaled
/// consumer on AKS → table). Without an account configured, every command runs against an
/// embedded, real Azurite.
#[derive(Debug, Parser)]
#[command(name = "edw", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Configuration flags: they override deploy.state and the environment.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The sample's deploy.state (default: $EDW_DEPLOY_STATE, else ./deployment/deploy.state if present).
    #[arg(long, global = true, value_name = "PATH")]
    pub state_file: Option<PathBuf>,
    /// Queue name (AZURE_QUEUE_NAME).
    #[arg(long, global = true, value_name = "NAME")]
    pub queue: Option<String>,
    /// Table name (AZURE_TABLE_NAME).
    #[arg(long, global = true, value_name = "NAME")]
    pub table: Option<String>,
    /// Storage account name (AZURE_STORAGE_ACCOUNT_NAME).
    #[arg(long, global = true, value_name = "NAME")]
    pub account: Option<String>,
    /// How to reach storage: azurite, connection-string, key or entra (EDW_STORAGE_AUTH).
    #[arg(long, global = true, value_name = "MODE")]
    pub storage_auth: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send the sample's messages (default: 1 per second until Ctrl-C, like aqs-producer.py).
    Produce(ProduceArgs),
    /// Process messages into the table (default: until Ctrl-C, like aqs-consumer.py).
    Consume(ConsumeArgs),
    /// Queue operations.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Run embedded Azurite in the foreground and print how to use it.
    Azurite,
    /// Produce a burst, drain it, and report what was sent, processed, duplicated and lost
    /// (in a fresh queue and table that are removed afterwards).
    Roundtrip(RoundtripArgs),
    /// Show the resolved configuration and where each value came from (secrets hidden).
    Config,
    /// Configuration findings: settings that look fine but lose work or money (exit 1 on a risk).
    CheckConfig(super::commands::check_config::CheckConfigArgs),
    /// Run the sample's flow (deploy, validate, load, scale, verify, cleanup) on a target and
    /// write the reports.
    Run(RunArgs),
    /// The release gate: run a conformance profile's scenarios and write one verdict
    /// (verdict.json, verdict.md); exit 0 only when every required check passed on a real target.
    Gate(GateArgs),
    /// Run history: append runs' outcomes and latencies, report trends and regressions.
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// Benchmarks: producer and consumer against Azurite's ceiling, observation latency, the
    /// full local flow, the twin; writes reports/bench.md.
    Bench(BenchArgs),
    /// List (and with --yes delete) resource groups tagged by the suite whose expiry has passed.
    Sweep(SweepArgs),
    /// Check the Azure side of a deployment (deploy.state) through Azure Resource Manager.
    AzureCheck(AzureArgs),
    /// Phase 1 of the flow alone: queue, table and manifests, then the walkthrough's checks.
    Deploy(PhaseArgs),
    /// Re-check what the walkthrough validates (KEDA pods, NodePool, ScaledObject and HPA).
    Validate(PhaseArgs),
    /// Send the load burst (from this machine, or with --in-cluster from a Job's pods).
    Load(LoadArgs),
    /// Watch the scale-out, the drain and the scale-in, then verify the table.
    Scale(PhaseArgs),
    /// Delete what the run created (checked).
    Cleanup(PhaseArgs),
    /// The twin: a simulated AKS control plane (Kubernetes API, KEDA, HPA, Karpenter).
    Twin {
        #[command(subcommand)]
        command: TwinCommand,
    },
    /// Check a target's prerequisites (tools, Azure sign-in, subscription, preview feature and
    /// extension, cluster, storage): each ok, FAIL with the fix, or skip with the reason.
    Doctor(DoctorArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Where to run: local (the twin and embedded Azurite), kube or aks (default: $EDW_TARGET, else local).
    #[arg(long, env = "EDW_TARGET", default_value = "local")]
    pub target: String,
    /// The catalogue scenarios to run, in order, comma-separated: `flow::burst` or `burst`
    /// (`edw run --list` lists them).
    #[arg(long, value_delimiter = ',', default_value = "flow::burst")]
    pub scenario: Vec<String>,
    /// List the catalogue's scenarios, one line each, and exit.
    #[arg(long)]
    pub list: bool,
    /// Messages in the load burst (default: the scenario's own, 1,000 for flow::burst).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: Option<u64>,
    /// Run up to N of the chosen scenarios side by side on one target (each in its own
    /// namespace, queue, table and NodePool; each writes its own reports and ledger, and a
    /// combined summary.md lists them). 1: one after another, each on a freshly opened target.
    #[arg(long, env = "EDW_PARALLEL", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// Send the burst from inside the cluster with this many pods (an Indexed Job running the
    /// producer from the consumer's image), for loads one machine cannot produce; scenarios
    /// that send their own load (activation, tail, steady rate) still send it from here.
    #[arg(long, env = "EDW_IN_CLUSTER_LOAD", value_parser = parse_parallelism)]
    pub in_cluster_load: Option<u64>,
    /// With --in-cluster-load: messages per second across the Job's pods.
    #[arg(long, requires = "in_cluster_load")]
    pub load_rate: Option<f64>,
    /// Where the reports go (a folder per scenario and target inside).
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
    /// Keep what a failed run created, and say how to remove it later.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Stop the whole run after this long (cleanup still runs).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Print the reports' JSON timeline path and the summary only (no live progress).
    #[arg(long)]
    pub plain: bool,
    /// aks: deploy first with the team's deploy command (its log goes to <report-dir>/install.log),
    /// tag the resource group it creates for `edw sweep`, and delete it at the end; without it,
    /// the run reuses the deployment deploy.state describes and deletes nothing of it.
    #[arg(long)]
    pub deploy: bool,
    /// The deploy command (`bash -c`, in the current directory).
    #[arg(
        long,
        env = "EDW_DEPLOY_COMMAND",
        default_value = edw_engine::deploy_script::DEFAULT_COMMAND
    )]
    pub deploy_command: String,
    /// How long the deployed resource group may live before `edw sweep` removes it (its
    /// `edw-expires` tag), in case this run dies before its cleanup.
    #[arg(long, value_parser = parse_duration, default_value = "6h")]
    pub expires_after: Duration,
    /// kube/aks: exercise the consumer the team already deployed (AQS_TARGET_NAMESPACE,
    /// AQS_TARGET_DEPLOYMENT, its ScaledObject, AZURE_QUEUE_NAME and AZURE_TABLE_NAME): load and
    /// observe only; no Kubernetes object, queue or table is created or deleted.
    #[arg(long, conflicts_with = "deploy")]
    pub use_deployed: bool,
    /// aks: when the storage account's firewall does not admit this machine: `check` stops the
    /// run before anything is deployed and prints the fix; `open-for-run` adds this machine's
    /// public address (EDW_RUNNER_IP, else EDW_PUBLIC_IP_URL's answer) as an IP rule, records it
    /// in the ledger first, and removes it however the run ends.
    #[arg(long, env = "EDW_STORAGE_FIREWALL", value_enum, default_value_t = StorageFirewallMode::Check)]
    pub storage_firewall: StorageFirewallMode,
}

/// What an aks run does about a storage firewall that does not admit this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageFirewallMode {
    /// Check it, and stop before anything is deployed when it refuses (the default).
    Check,
    /// Add this machine's address for the run's duration, and remove it afterwards.
    OpenForRun,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Messages per throughput measurement (one Azurite queue process slows down as its backlog
    /// grows: keep it to a few thousand).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3000))]
    pub messages: u64,
    /// How long to measure the harness's overhead while it waits (the goal is stated for 5 minutes).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub idle: Duration,
    /// Also run the 1,000-node / 100,000-pod twin scale-out (about 2 minutes).
    #[arg(long)]
    pub full: bool,
    /// Where to measure the idle overhead: `local` (this process also runs the twin: an upper
    /// bound) or `kube` (the kubeconfig's cluster, e.g. `edw twin serve` in another process; the
    /// local target is stopped first, so the figure is the harness alone).
    #[arg(long, default_value = "local", value_parser = ["local", "kube"])]
    pub idle_on: String,
    /// Where to write bench.md.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Delete the expired groups (default: only list them).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub azure: AzureArgs,
}

#[derive(Debug, Clone, Args)]
pub struct AzureArgs {
    /// The subscription (default: $AZURE_SUBSCRIPTION_ID).
    #[arg(long, env = "AZURE_SUBSCRIPTION_ID")]
    pub subscription: Option<String>,
    /// Azure Resource Manager's URL (tests point it at a mock).
    #[arg(
        long,
        env = "EDW_ARM_URL",
        default_value = "https://management.azure.com"
    )]
    pub arm_url: String,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Append each run's scenario, target, outcome, phase times and latency quantiles (from its
    /// report folder's timeline.json and lifecycle.json) as one line each; never rewrites a line.
    Add(HistoryAddArgs),
    /// Write history.md and history.svg: each metric's nights against the rolling median of the
    /// nights before, regressions flagged (exit 1 on one in the latest night when the profile's
    /// `regressions` is fail).
    Report(HistoryReportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct HistoryAddArgs {
    /// Run report folders (e.g. reports/flow-burst-aks).
    #[arg(value_name = "RUN_DIR", required = true)]
    pub run_dirs: Vec<PathBuf>,
    /// The history file (JSON lines; a workflow caches or commits it).
    #[arg(long, default_value = "reports/history/runs.jsonl")]
    pub store: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryReportArgs {
    /// The history file.
    #[arg(long, default_value = "reports/history/runs.jsonl")]
    pub store: PathBuf,
    /// Where history.md and history.svg go.
    #[arg(long, default_value = "reports/history")]
    pub out: PathBuf,
    /// Nights before each night that make its baseline.
    #[arg(long, default_value_t = 7, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(3..=365))]
    pub window: usize,
    /// The profile whose `regressions` (warn or fail) applies (default: the shipped edw-v1).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    /// The conformance profile (default: the shipped fixtures/profiles/edw-v1.yaml).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Where to run: local (the twin: SIMULATED, not a verdict), kube or aks.
    #[arg(long, env = "EDW_TARGET", default_value = "local")]
    pub target: String,
    /// Where the verdict and each scenario's reports go.
    #[arg(long, default_value = "reports/gate")]
    pub report_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct PhaseArgs {
    /// kube or aks (the local twin lives inside one `edw run`); default: $EDW_TARGET.
    #[arg(long, env = "EDW_TARGET", default_value = "local")]
    pub target: String,
    /// Where the phases keep the run's names and progress.
    #[arg(long, default_value = "reports/edw-run.state")]
    pub run_state: PathBuf,
    /// Messages in the load burst (`edw load`).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
}

/// How many pods send an in-cluster load (an Indexed Job), at least 1.
fn parse_parallelism(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("0 pods cannot send a load: use 1 or more".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a number of pods")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub phase: PhaseArgs,
    /// Send the load from inside the cluster: an Indexed Job whose pods run the producer from
    /// the consumer's image with the consumer's credentials, each sending its slice.
    #[arg(long)]
    pub in_cluster: bool,
    /// Messages to send (the same as --messages).
    #[arg(long, conflicts_with = "messages", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Pods of the in-cluster load Job.
    #[arg(long, requires = "in_cluster", default_value = "4", value_parser = parse_parallelism)]
    pub parallelism: u64,
    /// Messages per second across the Job's pods (default: as fast as they go).
    #[arg(long, requires = "in_cluster")]
    pub rate: Option<f64>,
}

#[derive(Debug, Subcommand)]
pub enum TwinCommand {
    /// What if: run the sample on the virtual clock and print the replica/pod/node/queue timeline.
    Simulate(SimulateArgs),
    /// Serve the twin's Kubernetes API on a loopback port (for kubectl), on the scaled clock,
    /// with consumer pods running the real consumer against Azurite, until Ctrl-C.
    Serve(ServeArgs),
    /// Fit the twin's delays to runs' lifecycle.json (medians, spread, observations) and write
    /// a params file for `twin simulate --params`, `twin serve --params` and EDW_TWIN_PARAMS.
    Calibrate(CalibrateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// Run report directories, each with its lifecycle.json (e.g. reports/<scenario>-aks).
    #[arg(value_name = "RUN_DIR", required = true)]
    pub run_dirs: Vec<PathBuf>,
    /// Where to write the fitted parameters.
    #[arg(long, value_name = "FILE", default_value = "reports/twin-params.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Loopback port (0: a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// How many times faster than real time the twin's clock runs.
    #[arg(long, default_value_t = 20.0)]
    pub scale: f64,
    /// Where to write the kubeconfig (default: reports/twin.kubeconfig).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Also deploy the sample (namespace, service account, NodePool, Deployment, ScaledObject)
    /// for the configured queue and table, and create them in storage.
    #[arg(long)]
    pub deploy_sample: bool,
    /// The deployed ScaledObject's activationQueueLength (default: the walkthrough's 20). With
    /// 0 the queue is read down to its last message; with 20 a tail of up to 20 messages can be
    /// left at 0 replicas (the finding `stranded-tail`).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 20,
        requires = "deploy_sample"
    )]
    pub activation_queue_length: u32,
    /// Twin parameters as JSON (e.g. what `edw twin calibrate` wrote); default: the
    /// specification's.
    #[arg(long, value_name = "FILE")]
    pub params: Option<PathBuf>,
    /// Override one twin parameter, e.g. `keda_namespace=keda` (KEDA where its Helm chart puts
    /// it) or `serve_nodepool_v1beta1=true` (an older NAP); see harness/twin/README.md.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// COUNT messages at SECONDS, e.g. `1000@30` (repeatable).
    #[arg(long, value_name = "COUNT@SECONDS")]
    pub burst: Vec<String>,
    /// PER_SECOND messages from FROM to UNTIL seconds, e.g. `5@0..600` (repeatable).
    #[arg(long, value_name = "PER_SECOND@FROM..UNTIL")]
    pub rate: Vec<String>,
    /// The ScaledObject to use (YAML or JSON); default: the walkthrough's.
    #[arg(long, value_name = "FILE")]
    pub scaled_object: Option<PathBuf>,
    /// Twin parameters as JSON (see harness/twin/README.md); default: the specification's.
    #[arg(long, value_name = "FILE")]
    pub params: Option<PathBuf>,
    /// Override one parameter, e.g. `daemonset_cpu_millis=300` or `initialize_delay=120s`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Simulated seconds to run.
    #[arg(long, default_value_t = 900.0)]
    pub duration: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Approximate (visible + in-flight) and visible message counts, and the poison queue's.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Messages per second (default 1 without --count; unlimited with --count).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop after this long (e.g. 30s, 5m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Messages in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub concurrency: usize,
    /// Number of the first message.
    #[arg(long, default_value_t = 1)]
    pub first: u64,
    /// Send one slice of --count split over this many pods (an in-cluster load Job's pod: the
    /// slice is picked by --slice-index, numbers stay unique across pods) and print a
    /// one-line report the harness reads from the pod's log; --rate is this pod's.
    #[arg(long, requires = "count", value_parser = clap::value_parser!(u64).range(1..))]
    pub slices: Option<u64>,
    /// Which slice (0-based): an Indexed Job gives each pod its JOB_COMPLETION_INDEX.
    #[arg(long, env = "JOB_COMPLETION_INDEX", requires = "slices")]
    pub slice_index: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct ConsumeArgs {
    /// Stop when the queue is empty (no visible or in-flight message).
    #[arg(long)]
    pub until_empty: bool,
    /// Workers receiving at once.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub workers: usize,
    /// Messages per receive (1-32; the sample takes 1).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub batch: u8,
    /// Pause per message and worker (the sample: about 1s).
    #[arg(long, value_parser = parse_duration)]
    pub pace: Option<Duration>,
    /// Visibility timeout of received messages.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub visibility_timeout: Duration,
    /// Receives after which a message goes to the poison queue.
    #[arg(long, default_value_t = 5)]
    pub max_dequeue: u64,
}

#[derive(Debug, Clone, Args)]
pub struct RoundtripArgs {
    /// Messages to send.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Producer concurrency.
    #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub concurrency: usize,
    /// Consumer workers.
    #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub workers: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `30s`, `5m`, `250ms`, `1h 30m`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    edw_twin::params::parse_duration(text)
}

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Whose prerequisites to check: local, kube or aks (default: $EDW_TARGET, else local).
    #[arg(long, env = "EDW_TARGET", default_value = "local")]
    pub target: String,
    /// As `edw run --storage-firewall`: with `open-for-run` a firewall that refuses this
    /// machine is fine, since the run adds its address.
    #[arg(long, env = "EDW_STORAGE_FIREWALL", value_enum, default_value_t = StorageFirewallMode::Check)]
    pub storage_firewall: StorageFirewallMode,
    #[command(flatten)]
    pub azure: AzureArgs,
}
