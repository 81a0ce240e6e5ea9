//! The steps a scenario is written with, each a [`Step`] with the walkthrough's name and
//! timeout, working on every target (what a target cannot do, e.g. no Karpenter CRDs, is
//! skipped with the reason):
//!
//! - [`deploy`]: the run's namespace, service account, consumer and NodePool, its queue and
//!   table, then the ScaledObject and TriggerAuthentication (with the findings they raise);
//! - [`validate`]: KEDA runs, the consumer pod, the NodePool, the ScaledObject with its HPA;
//! - [`load`]: the producer's burst;
//! - [`scale`]: replicas reach the model's peak, nodes grow, the queue drains, replicas and
//!   nodes go back, each waited for as long as the model of the run's settings says;
//! - [`verify`]: sent = processed once + stranded + poisoned, none lost or duplicated;
//! - [`cleanup`]: delete only what the run created;
//! - [`chaos`]: consumer pods killed and NodeClaims deleted mid-drain;
//! - [`storage_firewall`]: the run's own opening in the storage account's firewall (aks).
//!
//! A scenario is [`setup`] + its own steps + [`cleanup`] ([`scenario`] builds it); the named
//! [`Phase`]s are what `edw deploy|validate|load|scale|cleanup` run one at a time (the
//! burst flow's steps, `edw_scenarios::burst`). The README's
//! "Writing a scenario" shows a team's own scenario built from these.

pub mod chaos;
pub mod cleanup;
pub mod deploy;
pub mod k8s;
pub mod load;
pub mod load_job;

/// The name of the producer burst's step (the load `--in-cluster-load` sends from a Job).
pub const BURST_LOAD_STEP: &str = "load: producer burst";
pub mod scale;
pub mod storage_firewall;
pub mod validate;
pub mod verify;

use std::time::Duration;

pub use chaos::{kill_random_pods_step, remove_nodes_step};
pub use cleanup::{
    cleanup_objects, cleanup_resource_group_step, cleanup_storage, delete_group,
    delete_group_announced,
};
pub use deploy::{deploy, install_scaled_object, scaled_object_json};
pub use k8s::{dynamic, poll_until, running_consumers};
pub use load::{check_load_activates, load, messages, LoadCannotActivate};
pub use scale::wait_modelled;
pub use storage_firewall::FirewallOpening;
pub use validate::{observe, validate_consumer, validate_keda, validate_nodepool};
pub use verify::{reconcile_run, record_counts, stranded_on_queue, StrandedTail};

use crate::runner::{FlowSettings, Scenario, Step};

/// `n` seconds: step timeouts read `secs(300)`.
pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `deploy`: the run's objects and storage (see [`deploy::deploy`]).
pub fn deploy_step() -> Step {
    Step::new("deploy", secs(120), deploy)
}

/// `deploy: ScaledObject and TriggerAuthentication` (see [`deploy::install_scaled_object`]).
pub fn install_scaled_object_step() -> Step {
    Step::new(
        "deploy: ScaledObject and TriggerAuthentication",
        secs(300),
        install_scaled_object,
    )
}

/// `validate: KEDA operator running (kube-system or keda)`.
pub fn validate_keda_step() -> Step {
    Step::new(
        "validate: KEDA operator running (kube-system or keda)",
        secs(300),
        validate_keda,
    )
}

/// `validate: consumer Deployment has one workload-identity pod`.
pub fn validate_consumer_step() -> Step {
    Step::new(
        "validate: consumer Deployment has one workload-identity pod",
        secs(300),
        validate_consumer,
    )
}

/// `validate: NodePool served by karpenter.sh`.
pub fn validate_nodepool_step() -> Step {
    Step::new(
        "validate: NodePool served by karpenter.sh",
        secs(60),
        validate_nodepool,
    )
}

/// `validate: ScaledObject Ready with its HPA`.
pub fn validate_scaled_object_step() -> Step {
    Step::new(
        "validate: ScaledObject Ready with its HPA",
        secs(300),
        validate::validate_scaled_object,
    )
}

/// `load: producer burst`: the settings' `messages`, refused before a message is sent when the
/// model says they never activate KEDA ([`LoadCannotActivate`]). Its 600 s limit holds on the
/// target's clock and in real time: the producer's pace is real time.
pub fn load_step() -> Step {
    Step::new(BURST_LOAD_STEP, secs(600), load::burst_load).paced_in_real_time()
}

/// `scale: replicas reach the modelled peak`.
pub fn scale_out_step() -> Step {
    Step::new(
        "scale: replicas reach the modelled peak",
        secs(7200),
        scale::scale_out,
    )
}

/// `scale: the run's NodePool grows`.
pub fn nodes_grow_step() -> Step {
    Step::new(
        "scale: the run's NodePool grows",
        secs(7200),
        scale::nodes_grow,
    )
}

/// `scale: queue drains to 0`.
pub fn drained_step() -> Step {
    Step::new("scale: queue drains to 0", secs(7200), scale::drained)
}

/// `scale: replicas return to minReplicaCount`.
pub fn scaled_in_step() -> Step {
    Step::new(
        "scale: replicas return to minReplicaCount",
        secs(7200),
        scale::scaled_in,
    )
}

/// `scale: new nodes are removed`.
pub fn nodes_removed_step() -> Step {
    Step::new(
        "scale: new nodes are removed",
        secs(7200),
        scale::nodes_removed,
    )
}

/// The verify step's name: what it checks. It passes with a stranded tail the configuration
/// allows (as a warning), so it never claims "exactly once".
pub const VERIFY_STEP: &str =
    "verify: sent = processed once + stranded + poisoned, none lost or duplicated";

/// The verify step ([`VERIFY_STEP`]).
pub fn verify_step() -> Step {
    Step::new(VERIFY_STEP, secs(120), verify::verify)
}

/// The always-run cleanup: the run's Kubernetes objects, then its queue, poison queue and table.
pub fn cleanup() -> Vec<Step> {
    vec![
        Step::new("delete Kubernetes objects", secs(600), cleanup_objects),
        Step::new(
            "delete queue, poison queue and table",
            secs(120),
            cleanup_storage,
        ),
    ]
}

/// The short setup most scenarios start with: deploy, then the ScaledObject.
pub fn setup() -> Vec<Step> {
    vec![deploy_step(), install_scaled_object_step()]
}

/// The walkthrough's setup with its checks: deploy, KEDA, the consumer pod, the NodePool, then
/// the ScaledObject.
pub fn walkthrough_setup() -> Vec<Step> {
    vec![
        deploy_step(),
        validate_keda_step(),
        validate_consumer_step(),
        validate_nodepool_step(),
        install_scaled_object_step(),
    ]
}

/// The walkthrough's scale checks after the load: scale-out, node growth, the drain, scale-in,
/// node removal.
pub fn scale_checks() -> Vec<Step> {
    vec![
        scale_out_step(),
        nodes_grow_step(),
        drained_step(),
        scaled_in_step(),
        nodes_removed_step(),
    ]
}

/// A scenario named `name`: [`setup`], then `middle`, with [`cleanup`].
pub fn scenario(name: &str, settings: FlowSettings, middle: Vec<Step>) -> Scenario {
    let mut steps = setup();
    steps.extend(middle);
    Scenario {
        name: name.to_owned(),
        settings,
        steps,
        cleanup: cleanup(),
    }
}

/// A scenario whose backlog is on the queue before KEDA scales anything: [`deploy_step`],
/// `load`, then the ScaledObject, then `middle`, with [`cleanup`]. Steps that act mid-drain
/// (kills, node removal) then find one however slow the producer was: with the ScaledObject
/// first, a busy machine's consumers kept up with the producer and the drain was over before
/// such a step began.
pub fn backlog_first_scenario(
    name: &str,
    settings: FlowSettings,
    load: Step,
    middle: Vec<Step>,
) -> Scenario {
    let mut backlog_first = scenario(name, settings, middle);
    // [`setup`] is deploy, then the ScaledObject: the load goes between them.
    backlog_first.steps.insert(1, load);
    backlog_first
}

/// The walkthrough's phases, which `edw deploy|validate|load|scale|cleanup` run one at a time
/// (the burst flow's steps, grouped as the walkthrough does them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Deploy with the walkthrough's checks, then the ScaledObject.
    Deploy,
    /// KEDA, the NodePool, the ScaledObject with its HPA.
    Validate,
    /// The producer's burst.
    Load,
    /// Observe, then the scale checks and verify.
    Scale,
    /// The cleanup steps only.
    Cleanup,
}

impl Phase {
    /// Every phase, in the walkthrough's order.
    pub const ALL: [Phase; 5] = [
        Phase::Deploy,
        Phase::Validate,
        Phase::Load,
        Phase::Scale,
        Phase::Cleanup,
    ];

    /// `deploy`, `validate`, `load`, `scale` or `cleanup`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Deploy => "deploy",
            Phase::Validate => "validate",
            Phase::Load => "load",
            Phase::Scale => "scale",
            Phase::Cleanup => "cleanup",
        }
    }

    /// The phase called `name`, if any.
    pub fn parse(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The phase as a scenario `flow::burst::<phase>`.
    pub fn scenario(self) -> Scenario {
        let (steps, cleanup) = match self {
            Phase::Deploy => (walkthrough_setup(), Vec::new()),
            Phase::Validate => (
                vec![
                    validate_keda_step(),
                    validate_nodepool_step(),
                    validate_scaled_object_step(),
                ],
                Vec::new(),
            ),
            Phase::Load => (vec![load_step()], Vec::new()),
            Phase::Scale => {
                let mut steps = vec![Step::new("observe", secs(10), observe)];
                steps.extend(scale_checks());
                steps.push(verify_step());
                (steps, Vec::new())
            }
            Phase::Cleanup => (Vec::new(), cleanup()),
        };
        Scenario {
            name: format!("flow::burst::{}", self.name()),
            settings: FlowSettings::default(),
            steps,
            cleanup,
        }
    }
}

/// The phase `name` as a scenario (see [`Phase`]).
pub fn phase(name: &str) -> Option<Scenario> {
    Phase::parse(name).map(Phase::scenario)
}

#[cfg(test)]
mod phase_tests {
    use super::*;

    fn names(steps: &[Step]) -> Vec<&'static str> {
        steps.iter().map(|s| s.name).collect()
    }

    #[test]
    fn each_named_phase_runs_its_part_of_the_walkthrough() {
        for phase in Phase::ALL {
            assert_eq!(Phase::parse(phase.name()), Some(phase));
            assert_eq!(
                phase.scenario().name,
                format!("flow::burst::{}", phase.name())
            );
        }
        assert_eq!(Phase::parse("verify"), None);
        assert_eq!(
            names(&Phase::Deploy.scenario().steps),
            names(&walkthrough_setup())
        );
        assert_eq!(
            names(&Phase::Validate.scenario().steps),
            [
                "validate: KEDA operator running (kube-system or keda)",
                "validate: NodePool served by karpenter.sh",
                "validate: ScaledObject Ready with its HPA",
            ]
        );
        assert_eq!(
            names(&Phase::Load.scenario().steps),
            ["load: producer burst"]
        );
        let scale = Phase::Scale.scenario();
        assert_eq!(scale.steps[0].name, "observe");
        assert_eq!(names(&scale.steps[1..6]), names(&scale_checks()));
        assert_eq!(scale.steps[6].name, VERIFY_STEP);
        let cleanup_phase = Phase::Cleanup.scenario();
        assert!(cleanup_phase.steps.is_empty());
        assert_eq!(names(&cleanup_phase.cleanup), names(&cleanup()));
        for phase in [Phase::Deploy, Phase::Validate, Phase::Load, Phase::Scale] {
            assert!(phase.scenario().cleanup.is_empty(), "{}", phase.name());
        }
    }
}
