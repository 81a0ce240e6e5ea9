//! The chaos scenario: consumer pods killed at random three times, then every Karpenter
//! NodeClaim of the run's NodePool deleted, all mid-drain; every message is still processed
//! once.
//!
//! Each chaos event fires at a fixed fraction of the backlog, not after a wait of its own: the
//! whole burst is on the queue before KEDA scales the consumers (the ScaledObject comes after
//! the load), and event `k` of four fires once the queue depth has fallen to `(5 - k) / 5` of
//! what was sent (2,000 messages: kills at 1,600, 1,200 and 800, the node removal at 400). So
//! every event happens while a fifth of the backlog or more is still on the queue, however fast
//! or slow the machine is: a slower machine moves the events later in time, never past the end
//! of the drain.

use edw_engine::runner::{FlowSettings, Scenario, Step};
use edw_engine::steps::*;

/// Chaos mid-drain: 30 % of the consumer pods killed at random three times, then every
/// NodeClaim of the run's NodePool deleted while consumers run on its nodes (their pods are
/// drained, Karpenter provisions replacements); every message is still processed once. The
/// burst is sent before the ScaledObject exists, and each event fires at a fixed fraction of it
/// (see [`threshold`]).
pub fn chaos(messages: u64) -> Scenario {
    let settings = FlowSettings {
        messages,
        // The backlog goes on the queue before anything consumes it: 64 sends in flight put
        // 10,000 messages there in about half the time 16 take on a partitioned Azurite (a real
        // account takes thousands a second).
        producer_concurrency: 64,
        ..FlowSettings::default()
    };
    // deploy, the load, then the ScaledObject: the whole burst is on the queue before KEDA
    // scales anything. On the twin the producer's real seconds are twenty simulated ones, so a
    // burst sent while KEDA watches overlaps the drain on a busy machine (a run that failed
    // before this change peaked at 974 of 2,000 messages on the queue).
    backlog_first_scenario(
        "flow::chaos",
        settings,
        // The producer's pace is real time: with no consumer slowing the twin's clock, 600
        // simulated seconds are 30 real ones at x20, too few for `chaos_twin`'s 10,000
        // messages on a busy machine. A limit, not a speed goal; it holds in real time too.
        Step::new(
            "load: producer burst, before the ScaledObject",
            secs(3600),
            load,
        )
        .paced_in_real_time(),
        vec![
            kill_random_pods_step(),
            remove_nodes_step(),
            drained_step(),
            scaled_in_step(),
            verify_step(),
        ],
    )
}
