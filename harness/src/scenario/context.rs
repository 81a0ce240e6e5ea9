//! What a scenario's steps share: the target, the configuration, the run's resource names and
//! settings, the observation recorder, what was produced, what was created (for cleanup), and
//! the current step's report properties.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::manifests::Applied;
use crate::naming::{run_queue_name_for, run_table_name_for};
use crate::observe::{capture_diagnostics, Recorder, Subject};
use crate::target::Target;
use crate::workload::{poison_queue_name, ProduceReport};

use super::model::{Observation, Phase, TargetInfo};

/// How a run treats the cluster it runs on: which objects it creates (and may delete) and which
/// it only uses. Whatever the footprint, a run never deletes or changes an object it did not
/// create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Footprint {
    /// Everything in names of its own: a namespace `<AQS_TARGET_NAMESPACE>-<run id>` with its
    /// service account, Deployment, ScaledObject, TriggerAuthentication, a NodePool
    /// `edw-<run id>`, and run-scoped queue and table. The default on the local and kube
    /// targets (storage by connection string).
    OwnNamespace,
    /// The walkthrough's namespace and service account, which must exist (workload identity binds
    /// the consumer to them through a federated credential) and are used without being changed;
    /// the run's own objects get run-unique names. The default where pods reach storage through
    /// workload identity (aks).
    SharedNamespace,
    /// The team's deployed consumer (`--use-deployed`): load and observe only. No Kubernetes
    /// object is created or deleted; the configured queue and table are used, not created or
    /// deleted; verify counts only this run's messages.
    UseDeployed,
}

impl Footprint {
    pub fn describe(self) -> &'static str {
        match self {
            Footprint::OwnNamespace => "a namespace of its own",
            Footprint::SharedNamespace => {
                "the existing namespace and service account, objects of its own"
            }
            Footprint::UseDeployed => "the deployed consumer (load and observe only)",
        }
    }
}

/// The names of what a run creates (or, with [`Footprint::UseDeployed`], uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunNames {
    /// Six letters and digits, different for every run: the value of the
    /// [`crate::manifests::RUN_ID_LABEL`] label and annotation on everything the run creates,
    /// and the suffix of its names.
    pub run_id: String,
    pub namespace: String,
    pub deployment: String,
    pub service_account: String,
    pub queue: String,
    pub poison: String,
    pub table: String,
    pub scaled_object: String,
    pub trigger_authentication: String,
    pub storage_secret: String,
    pub hpa: String,
    pub nodepool: String,
}

/// The walkthrough's ScaledObject name.
pub const SAMPLE_SCALED_OBJECT: &str = "aws2az-queue-scaleobj";
/// The walkthrough's TriggerAuthentication name.
pub const SAMPLE_TRIGGER_AUTHENTICATION: &str = "keda-az-credentials";
/// The NodePool AKS Node Autoprovisioning creates, which the walkthrough uses.
pub const SAMPLE_NODEPOOL: &str = "default";

impl RunNames {
    /// The names a run with `footprint` works in: the sample's, made run-unique for whatever
    /// the run creates.
    pub fn for_run(config: &Config, footprint: Footprint) -> Self {
        let run_id = crate::naming::unique_suffix();
        let namespace = config.get("AQS_TARGET_NAMESPACE").unwrap_or("aqs-demo");
        let deployment = config.get("AQS_TARGET_DEPLOYMENT").unwrap_or("aqs-app");
        let service_account = config
            .get("SERVICE_ACCOUNT")
            .unwrap_or("aqs-app-service-account");
        let own = |base: &str| crate::naming::with_run_id(base, &run_id);
        let names = match footprint {
            Footprint::UseDeployed => RunNames {
                namespace: namespace.to_owned(),
                deployment: deployment.to_owned(),
                service_account: service_account.to_owned(),
                queue: config.queue_name().to_owned(),
                poison: poison_queue_name(config.queue_name()),
                table: config.table_name().to_owned(),
                scaled_object: SAMPLE_SCALED_OBJECT.to_owned(),
                trigger_authentication: SAMPLE_TRIGGER_AUTHENTICATION.to_owned(),
                storage_secret: String::new(),
                hpa: format!("keda-hpa-{SAMPLE_SCALED_OBJECT}"),
                nodepool: SAMPLE_NODEPOOL.to_owned(),
                run_id,
            },
            Footprint::OwnNamespace | Footprint::SharedNamespace => {
                let queue = run_queue_name_for(config.queue_name(), &run_id);
                let scaled_object = own(SAMPLE_SCALED_OBJECT);
                RunNames {
                    namespace: if footprint == Footprint::OwnNamespace {
                        own(namespace)
                    } else {
                        namespace.to_owned()
                    },
                    deployment: own(deployment),
                    service_account: service_account.to_owned(),
                    poison: poison_queue_name(&queue),
                    table: run_table_name_for(config.table_name(), &run_id),
                    queue,
                    hpa: format!("keda-hpa-{scaled_object}"),
                    scaled_object,
                    trigger_authentication: own(SAMPLE_TRIGGER_AUTHENTICATION),
                    storage_secret: own("edw-storage-connection"),
                    nodepool: own("edw"),
                    run_id,
                }
            }
        };
        names
    }

    /// The label selector of the run's consumer pods (for [`Footprint::UseDeployed`], the
    /// deployed consumer's: `app=aqs-reader`).
    pub fn pod_selector(&self, footprint: Footprint) -> String {
        match footprint {
            Footprint::UseDeployed => CONSUMER_SELECTOR.to_owned(),
            _ => format!(
                "{CONSUMER_SELECTOR},{}={}",
                crate::manifests::RUN_ID_LABEL,
                self.run_id
            ),
        }
    }
}

/// The walkthrough's consumer pods' label.
pub const CONSUMER_SELECTOR: &str = "app=aqs-reader";

/// A resource group a run deployed, and where its Azure Resource Manager is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedGroup {
    pub subscription: String,
    pub resource_group: String,
    /// `https://management.azure.com` (a mock in tests).
    pub arm_url: String,
}

/// The flow's knobs; the defaults are the walkthrough's.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSettings {
    /// Messages in the load burst.
    pub messages: u64,
    pub producer_concurrency: usize,
    pub min_replicas: i64,
    pub max_replicas: i64,
    pub polling_interval: u64,
    pub cooldown_period: u64,
    pub queue_length: u64,
    pub activation_queue_length: u64,
    /// The drain time the team expects for the burst (a conformance target), if any.
    pub drain_target: Option<Duration>,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            messages: 1000,
            producer_concurrency: 16,
            min_replicas: 0,
            max_replicas: 15,
            polling_interval: 30,
            cooldown_period: 10,
            queue_length: 5,
            activation_queue_length: 20,
            drain_target: None,
        }
    }
}

/// `IfNotPresent` for an image given with `EDW_CONSUMER_IMAGE` (kind loads it onto the
/// nodes; `Always` would look for it in a registry), else the walkthrough's `Always`.
fn image_pull_policy() -> &'static str {
    if std::env::var("EDW_CONSUMER_IMAGE").is_ok_and(|v| !v.is_empty()) {
        "IfNotPresent"
    } else {
        "Always"
    }
}

/// Where pods reach storage through workload identity (no connection string for pods: aks,
/// or a kube cluster with an account), the walkthrough's namespace and service account are
/// federated and must be shared; everywhere else a run takes a namespace of its own.
fn default_footprint(target: &Target) -> Footprint {
    match target {
        Target::Cluster(cluster) if cluster.connection_for_pods().is_none() => {
            Footprint::SharedNamespace
        }
        _ => Footprint::OwnNamespace,
    }
}

/// Progress lines for people (the CLI shows them live).
pub type ProgressSink = Arc<dyn Fn(&str) + Send + Sync>;

/// The state a run's steps share.
pub struct Context {
    pub target: Arc<Target>,
    pub target_info: TargetInfo,
    pub config: Config,
    /// What the run creates and what it only uses (see [`Footprint`]).
    pub footprint: Footprint,
    pub names: RunNames,
    pub settings: FlowSettings,
    pub recorder: Option<Recorder>,
    pub produced: Option<ProduceReport>,
    /// When the load started, on the recorder's clock.
    pub load_started_at: Option<f64>,
    /// When the load started, as the sample stamps messages (`srcStamp`): with
    /// [`Footprint::UseDeployed`], verify counts only the table's rows stamped since.
    pub load_started_stamp: Option<String>,
    /// Karpenter nodes of the run's NodePool when the load started.
    pub nodes_before_load: u64,
    /// Kubernetes objects the run applied, in order (cleanup deletes them in reverse).
    pub applied: Vec<Applied>,
    /// The run created its queue, poison queue and table.
    pub created_storage: bool,
    /// The client id the existing service account is annotated with
    /// (`azure.workload.identity/client-id`), read in a shared namespace.
    pub annotated_client_id: Option<String>,
    /// Properties the current step adds to its report.
    pub current_properties: Vec<(String, String)>,
    /// Configuration findings for the report (see [`crate::findings`]).
    pub findings: Vec<crate::findings::Finding>,
    /// Where the run records what it creates, before creating it (a crashed run is then
    /// cleaned by `edw cleanup --run-state <ledger>`).
    pub ledger: Option<std::path::PathBuf>,
    /// The resource group this run deployed (aks with the team's deploy script): its cleanup
    /// deletes it and waits until it is gone. `None` when the run reused a deployment.
    pub deployed_group: Option<DeployedGroup>,
    /// The IP rule this run added to the storage account's firewall (`--storage-firewall
    /// open-for-run`), which its cleanup removes. `None` when it added none.
    pub storage_firewall_opening: Option<super::storage_firewall::FirewallOpening>,
    /// What the Azure-side checks found before the run started (aks), for its first step.
    pub azure_preflight: Vec<String>,
    progress: Option<ProgressSink>,
    timeline: Vec<Observation>,
    nodeclaim_spans: Vec<edw_twin::cost::NodeSpan>,
}

impl Context {
    /// A run on `target` with the target's default footprint (see [`Footprint`]).
    pub fn new(target: Arc<Target>, config: Config, settings: FlowSettings) -> Self {
        let footprint = default_footprint(&target);
        let names = RunNames::for_run(&config, footprint);
        Context {
            footprint,
            target_info: target.info(),
            target,
            config,
            names,
            settings,
            recorder: None,
            produced: None,
            load_started_at: None,
            load_started_stamp: None,
            nodes_before_load: 0,
            applied: Vec::new(),
            created_storage: false,
            annotated_client_id: None,
            current_properties: Vec::new(),
            findings: Vec::new(),
            ledger: None,
            deployed_group: None,
            storage_firewall_opening: None,
            azure_preflight: Vec::new(),
            progress: None,
            timeline: Vec::new(),
            nodeclaim_spans: Vec::new(),
        }
    }

    /// The run with another footprint (and the names that go with it).
    pub fn with_footprint(mut self, footprint: Footprint) -> Self {
        self.footprint = footprint;
        self.names = RunNames::for_run(&self.config, footprint);
        self
    }

    /// Sends progress lines to `sink`.
    pub fn with_progress(mut self, sink: ProgressSink) -> Self {
        self.progress = Some(sink);
        self
    }

    pub fn progress(&self, line: &str) {
        if let Some(sink) = &self.progress {
            sink(line);
        }
    }

    /// The target's clock: every step timeout and wait is target time.
    pub fn clock(&self) -> crate::target::TargetClock {
        self.target.clock()
    }

    /// Adds a property to the current step's report.
    pub fn property(&mut self, key: &str, value: impl ToString) {
        self.current_properties
            .push((key.to_owned(), value.to_string()));
    }

    /// The label selector of the run's consumer pods.
    pub fn pod_selector(&self) -> String {
        self.names.pod_selector(self.footprint)
    }

    /// What the recorder watches.
    pub fn subject(&self) -> Subject {
        Subject {
            namespace: self.names.namespace.clone(),
            deployment: self.names.deployment.clone(),
            pod_selector: self.pod_selector(),
            hpa: self.names.hpa.clone(),
            queue: Some(self.target.storage().queue(&self.names.queue)),
            karpenter: self.target.capabilities().karpenter,
        }
    }

    /// The variables the manifests are rendered with: the sample's script variables.
    pub fn template_vars(&self) -> BTreeMap<String, String> {
        let c = &self.config;
        let s = &self.settings;
        let account = c
            .get("AZURE_STORAGE_ACCOUNT_NAME")
            .unwrap_or("devstoreaccount1");
        let client_id = self
            .workload_client_id()
            .unwrap_or("00000000-0000-0000-0000-000000000000");
        [
            ("AQS_TARGET_NAMESPACE", self.names.namespace.clone()),
            ("AQS_TARGET_DEPLOYMENT", self.names.deployment.clone()),
            ("SERVICE_ACCOUNT", self.names.service_account.clone()),
            ("SCALED_OBJECT_NAME", self.names.scaled_object.clone()),
            (
                "TRIGGER_AUTHENTICATION_NAME",
                self.names.trigger_authentication.clone(),
            ),
            ("STORAGE_SECRET_NAME", self.names.storage_secret.clone()),
            ("NODEPOOL_NAME", self.names.nodepool.clone()),
            ("AZURE_QUEUE_NAME", self.names.queue.clone()),
            ("AZURE_TABLE_NAME", self.names.table.clone()),
            ("AZURE_STORAGE_ACCOUNT_NAME", account.to_owned()),
            (
                "AZURE_CONTAINER_REGISTRY_NAME",
                c.get("AZURE_CONTAINER_REGISTRY_NAME")
                    .unwrap_or("acraksdemo")
                    .to_owned(),
            ),
            ("CONSUMER_IMAGE", self.target.consumer_image(c)),
            ("workloadManagedIdentityClientId", client_id.to_owned()),
            ("MIN_REPLICA_COUNT", s.min_replicas.to_string()),
            ("MAX_REPLICA_COUNT", s.max_replicas.to_string()),
            ("POLLING_INTERVAL", s.polling_interval.to_string()),
            ("COOLDOWN_PERIOD", s.cooldown_period.to_string()),
            ("QUEUE_LENGTH", s.queue_length.to_string()),
            (
                "ACTIVATION_QUEUE_LENGTH",
                s.activation_queue_length.to_string(),
            ),
            (
                "STORAGE_CONNECTION_STRING",
                self.target
                    .connection_for_pods()
                    .map(|c| c.expose().to_owned())
                    .unwrap_or_default(),
            ),
            ("IMAGE_PULL_POLICY", image_pull_policy().to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The workload identity's client id for the TriggerAuthentication: the configured
    /// `WORKLOAD_MANAGED_IDENTITY_CLIENT_ID`, else the one the team's service account is
    /// annotated with (read by the deploy step in a shared namespace).
    pub fn workload_client_id(&self) -> Option<&str> {
        self.config
            .get("WORKLOAD_MANAGED_IDENTITY_CLIENT_ID")
            .or(self.annotated_client_id.as_deref())
    }

    /// The model of this run's configuration (twin-spec rules; AKS NAP latencies).
    pub fn model(&self) -> crate::model::Model {
        let s = &self.settings;
        crate::model::Model::new(
            crate::model::ScalingSettings {
                min_replicas: s.min_replicas.max(0) as u64,
                max_replicas: s.max_replicas.max(0) as u64,
                polling: Duration::from_secs(s.polling_interval),
                cooldown: Duration::from_secs(s.cooldown_period),
                queue_length: s.queue_length.max(1),
                activation: s.activation_queue_length,
                behavior_set: false,
            },
            crate::model::NodePoolSettings::default(),
            self.target.timing(),
        )
    }

    /// Records the run's names and what it created (or is about to) in the ledger.
    pub fn write_ledger(&self) {
        if let Some(path) = &self.ledger {
            if let Err(e) = super::run_state::save(self, path) {
                self.progress(&format!("warning: {e}"));
            }
        }
    }

    /// The diagnostic bundle.
    pub async fn diagnostics(&self) -> String {
        capture_diagnostics(&self.target.client(), &self.subject()).await
    }

    /// How to remove what a kept run left behind.
    pub fn cleanup_hint(&self) -> String {
        match &self.deployed_group {
            // The group holds the cluster and the storage account: deleting it removes all.
            Some(group) => format!(
                "az group delete --name {} --subscription {} --yes (or `edw sweep --yes` after its edw-expires tag)",
                group.resource_group, group.subscription
            ),
            None => {
                let label = format!("{}={}", crate::manifests::RUN_ID_LABEL, self.names.run_id);
                let kubectl = match self.footprint {
                    // Everything of the run is in its namespace, but its NodePool.
                    Footprint::OwnNamespace => {
                        format!("kubectl delete namespaces,nodepools.karpenter.sh -l {label}")
                    }
                    _ => format!(
                        "kubectl delete -n {} deployments,scaledobjects.keda.sh,triggerauthentications.keda.sh,secrets -l {label} && kubectl delete nodepools.karpenter.sh -l {label}",
                        self.names.namespace
                    ),
                };
                format!(
                    "{kubectl} (only what carries this run's label) && edw queue delete --queue {} (and table {})",
                    self.names.queue, self.names.table
                )
            }
        }
    }

    /// Stops the recorder and keeps its timeline.
    pub fn finish(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            recorder.stop();
            self.timeline = recorder.history();
            self.nodeclaim_spans = recorder.nodeclaim_spans();
        }
    }

    /// The Karpenter NodeClaims the recorder saw, by size, with node-hours on the target's
    /// clock and their cost at the snapshot's prices (`None` without Karpenter or a recorder).
    pub fn cost(&self) -> Option<edw_twin::cost::CostEstimate> {
        if !self.target.capabilities().karpenter {
            return None;
        }
        let spans = match &self.recorder {
            Some(recorder) => recorder.nodeclaim_spans(),
            None if self.timeline.is_empty() => return None,
            None => self.nodeclaim_spans.clone(),
        };
        Some(edw_twin::cost::estimate(&spans))
    }

    /// The observed timeline.
    pub fn timeline(&self) -> Vec<Observation> {
        match &self.recorder {
            Some(recorder) => recorder.history(),
            None => self.timeline.clone(),
        }
    }

    /// The flow's phase markers, in target seconds after the load started.
    pub fn phases(&self) -> Vec<Phase> {
        let timeline = self.timeline();
        let Some(load) = self.load_started_at else {
            return Vec::new();
        };
        let after = |t: Option<f64>| t.map(|t| ((t - load).max(0.0) * 10.0).round() / 10.0);
        let first = |from: Option<f64>, p: &dyn Fn(&Observation) -> bool| {
            let from = from?;
            timeline.iter().find(|o| o.t >= from && p(o)).map(|o| o.t)
        };
        let max = self.settings.max_replicas as u64;
        let before = self.nodes_before_load;
        let pool = self.names.nodepool.clone();
        let nodes = move |o: &Observation| o.nodes.get(&pool).copied().unwrap_or(0);
        let scale_out = first(Some(load), &|o| o.desired > 0);
        let at_max = first(Some(load), &|o| o.desired >= max);
        let new_node = first(Some(load), &|o| nodes(o) > before);
        let queued = first(Some(load), &|o| o.queue.is_some_and(|q| q > 0));
        let drained = first(queued, &|o| o.queue == Some(0));
        let to_zero = first(at_max.or(scale_out), &|o| o.desired == 0 && o.running == 0);
        let consolidated = first(to_zero.and(new_node).and(to_zero), &|o| nodes(o) <= before);
        [
            ("load start", Some(load)),
            ("first scale-out", scale_out),
            ("max replicas", at_max),
            ("first new node", new_node),
            ("drained", drained),
            ("scaled to zero", to_zero),
            ("nodes consolidated", consolidated),
        ]
        .into_iter()
        .map(|(name, t)| Phase {
            name: name.to_owned(),
            after_load: after(t),
        })
        .collect()
    }
}
