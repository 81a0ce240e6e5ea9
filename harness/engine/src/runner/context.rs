//! What a scenario's steps share: the target, the configuration, the run's resource names and
//! settings, the observation recorder, what was produced, what was created (for cleanup), and
//! the current step's report properties.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::manifests::Applied;
use crate::observe::{capture_diagnostics, Recorder, Subject};
use crate::target::Target;
use crate::workload::ProduceReport;

use edw_model::report::{Observation, Phase, TargetInfo};
pub use edw_model::run::{DeployedGroup, FlowSettings, Footprint, RunNames};

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
    /// The autoscalers' events that existed when the load started (uid -> count): the HPA's
    /// `SuccessfulRescale` and the NodeClaims' `Registered`. A look-back after the drain
    /// counts only events new since (or repeated since): with `--use-deployed` the HPA and the
    /// NodePool are the team's, and their earlier events are not this run's. `None` when they
    /// could not be read.
    pub events_before_load: Option<std::collections::BTreeMap<String, i32>>,
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
    pub findings: Vec<edw_model::finding::Finding>,
    /// Where the run records what it creates, before creating it (a crashed run is then
    /// cleaned by `edw cleanup --run-state <ledger>`).
    pub ledger: Option<std::path::PathBuf>,
    /// The resource group this run deployed (aks with the team's deploy script): its cleanup
    /// deletes it and waits until it is gone. `None` when the run reused a deployment.
    pub deployed_group: Option<DeployedGroup>,
    /// The IP rule this run added to the storage account's firewall (`--storage-firewall
    /// open-for-run`), which its cleanup removes. `None` when it added none.
    pub storage_firewall_opening: Option<edw_model::run::FirewallOpening>,
    /// What the Azure-side checks found before the run started (aks), for its first step.
    pub azure_preflight: Vec<String>,
    /// Each load the run sent, on the timeline's clock: the twin's prediction replays them.
    pub sent_loads: Vec<crate::predict::SentLoad>,
    /// Objects the run created and already deleted itself (an in-cluster load's Job, once its
    /// load ended): the cleanup names them rather than claim the run created nothing.
    pub deleted_during_run: Vec<Applied>,
    /// When the run applied its ScaledObject, on the timeline's clock (KEDA polls from then).
    pub scaled_object_applied_at: Option<f64>,
    /// Why this run is expected to differ from the twin's prediction (the faults it injects):
    /// its deviations are then information, not warnings.
    pub prediction_caveat: Option<String>,
    progress: Option<ProgressSink>,
    timeline: Vec<Observation>,
    nodeclaim_spans: Vec<edw_twin::cost::NodeSpan>,
    lifecycle: Option<edw_model::lifecycle::Lifecycle>,
}

impl Context {
    /// A run on `target` with the target's default footprint (see [`Footprint`]).
    pub fn new(target: Arc<Target>, config: Config, settings: FlowSettings) -> Self {
        let footprint = default_footprint(&target);
        let names = RunNames::for_run(&config.sample_names(), footprint);
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
            events_before_load: None,
            applied: Vec::new(),
            created_storage: false,
            annotated_client_id: None,
            current_properties: Vec::new(),
            findings: Vec::new(),
            ledger: None,
            deployed_group: None,
            storage_firewall_opening: None,
            azure_preflight: Vec::new(),
            sent_loads: Vec::new(),
            deleted_during_run: Vec::new(),
            scaled_object_applied_at: None,
            prediction_caveat: None,
            progress: None,
            timeline: Vec::new(),
            nodeclaim_spans: Vec::new(),
            lifecycle: None,
        }
    }

    /// The run with another footprint (and the names that go with it).
    pub fn with_footprint(mut self, footprint: Footprint) -> Self {
        self.set_footprint(footprint);
        self
    }

    /// [`Context::with_footprint`] on a context in place (new run names for `footprint`).
    pub fn set_footprint(&mut self, footprint: Footprint) {
        self.footprint = footprint;
        self.names = RunNames::for_run(&self.config.sample_names(), footprint);
    }

    /// Sends progress lines to `sink`.
    pub fn with_progress(mut self, sink: ProgressSink) -> Self {
        self.set_progress(sink);
        self
    }

    /// [`Context::with_progress`] on a context in place.
    pub fn set_progress(&mut self, sink: ProgressSink) {
        self.progress = Some(sink);
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
        let pods_connection = self.target.connection_for_pods();
        crate::manifests::template_vars(
            &self.config,
            &self.names,
            &self.settings,
            self.workload_client_id(),
            pods_connection.as_ref().map(|c| c.expose()),
        )
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
    pub fn model(&self) -> edw_model::Model {
        let s = &self.settings;
        edw_model::Model::new(
            edw_model::ScalingSettings {
                min_replicas: s.min_replicas.max(0) as u64,
                max_replicas: s.max_replicas.max(0) as u64,
                polling: Duration::from_secs(s.polling_interval),
                cooldown: Duration::from_secs(s.cooldown_period),
                queue_length: s.queue_length.max(1),
                activation: s.activation_queue_length,
                behavior_set: false,
            },
            edw_model::NodePoolSettings::default(),
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
            self.nodeclaim_spans = recorder.nodeclaim_spans_of_pool(&self.names.nodepool);
            self.lifecycle = Some(recorder.lifecycle());
        }
    }

    /// When each consumer pod and NodeClaim of the run's NodePool passed each stage and every
    /// replica change, with the load start (`None` when no recorder ran).
    pub fn lifecycle(&self) -> Option<edw_model::lifecycle::Lifecycle> {
        let mut lifecycle = match &self.recorder {
            Some(recorder) => recorder.lifecycle(),
            None => self.lifecycle.clone()?,
        };
        lifecycle.load_started_at = self.load_started_at;
        // Only the run's NodePool's claims: another pool's nodes (a scenario side by side, a
        // team's workload) are not this run's to time.
        lifecycle
            .nodeclaims
            .retain(|c| c.nodepool.as_deref() == Some(self.names.nodepool.as_str()));
        Some(lifecycle)
    }

    /// The Karpenter NodeClaims of the run's NodePool the recorder saw, by size, with
    /// node-hours on the target's clock and their cost at the snapshot's prices (`None`
    /// without Karpenter or a recorder). Other pools' claims are not this run's (scenarios
    /// side by side each count their own).
    pub fn cost(&self) -> Option<edw_twin::cost::CostEstimate> {
        if !self.target.capabilities().karpenter {
            return None;
        }
        let spans = match &self.recorder {
            Some(recorder) => recorder.nodeclaim_spans_of_pool(&self.names.nodepool),
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

    /// The flow's phase markers, in target seconds after the load started (the rules of
    /// [`edw_model::phases::phases_of`], which the twin's prediction is measured by too).
    /// With a lifecycle that saw the pool's NodeClaims, the first new node is the first Ready
    /// node of a NodeClaim created after the load started ([`edw_model::phases::first_new_node_ready`]; the counts cannot
    /// tell a node that was there before and is replaced from a new one).
    pub fn phases(&self) -> Vec<Phase> {
        let Some(load) = self.load_started_at else {
            return Vec::new();
        };
        let mut phases = edw_model::phases::phases_of(
            &self.phase_points(),
            load,
            self.settings.max_replicas.max(0) as u64,
            self.nodes_before_load,
        );
        let by_identity = self.lifecycle().and_then(|lifecycle| {
            edw_model::phases::first_new_node_ready(&lifecycle, &self.names.nodepool, load)
        });
        if let Some(ready) = by_identity {
            for phase in &mut phases {
                if phase.name == edw_model::phases::FIRST_NEW_NODE {
                    phase.after_load = ready.map(|t| ((t - load).max(0.0) * 10.0).round() / 10.0);
                }
            }
        }
        phases
    }

    /// Notes `count` messages sent from `started` (timeline seconds) until now, for the
    /// prediction; nothing without a recorder.
    pub fn note_sent(&mut self, started: Option<f64>, count: u64) {
        let (Some(started), Some(recorder)) = (started, self.recorder.as_ref()) else {
            return;
        };
        self.sent_loads.push(crate::predict::SentLoad {
            started,
            finished: recorder.elapsed(),
            count,
        });
    }

    /// The observed timeline reduced to what the phases read (nodes: the run's NodePool's).
    pub fn phase_points(&self) -> Vec<edw_model::phases::PhasePoint> {
        let pool = &self.names.nodepool;
        // Only samples that read everything: a failed read's zeros are not a scale-in.
        self.timeline()
            .iter()
            .filter(|o| o.unread.is_empty())
            .map(|o| edw_model::phases::PhasePoint {
                t: o.t,
                desired: o.desired,
                running: o.running,
                nodes: o.nodes.get(pool).copied().unwrap_or(0),
                queue: o.queue,
            })
            .collect()
    }
}
