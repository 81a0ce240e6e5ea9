//! A flow's phases (first scale-out, max replicas, first new node, drained, scaled to zero,
//! nodes consolidated) computed from a timeline by one set of rules, so that what a run
//! observed and what the twin predicts on its virtual clock are measured alike.

use crate::report::Phase;

/// The phase that marks the load start (always at 0 s).
pub const LOAD_START: &str = "load start";
/// The first instant the Deployment asks for more replicas than at the load start.
pub const FIRST_SCALE_OUT: &str = "first scale-out";
/// The first instant the Deployment asks for maxReplicaCount.
pub const MAX_REPLICAS: &str = "max replicas";
/// The first instant the run's NodePool has more nodes than when the load started.
pub const FIRST_NEW_NODE: &str = "first new node";
/// The first instant the queue is empty after it held messages.
pub const DRAINED: &str = "drained";
/// The first instant, after the scale-out, with no replica asked for and no pod running.
pub const SCALED_TO_ZERO: &str = "scaled to zero";
/// The first instant, after the scale to zero, the NodePool is back to its nodes before the load.
pub const NODES_CONSOLIDATED: &str = "nodes consolidated";

/// The phases after the load start, in the order they happen.
pub const AFTER_LOAD: [&str; 6] = [
    FIRST_SCALE_OUT,
    MAX_REPLICAS,
    FIRST_NEW_NODE,
    DRAINED,
    SCALED_TO_ZERO,
    NODES_CONSOLIDATED,
];

/// The phases a phase's stage may run from, in order of preference (the first that happened):
/// KEDA activates from the load, the HPA ramps and Karpenter provisions from the activation,
/// the drain runs from the first new node (else the activation), the scale to zero from the
/// drain, the consolidation from the scale to zero.
pub fn stage_start(phase: &str) -> &'static [&'static str] {
    match phase {
        MAX_REPLICAS | FIRST_NEW_NODE => &[FIRST_SCALE_OUT, LOAD_START],
        DRAINED => &[FIRST_NEW_NODE, FIRST_SCALE_OUT, LOAD_START],
        SCALED_TO_ZERO => &[DRAINED, MAX_REPLICAS, FIRST_SCALE_OUT, LOAD_START],
        NODES_CONSOLIDATED => &[SCALED_TO_ZERO, LOAD_START],
        _ => &[LOAD_START],
    }
}

/// One instant of a timeline, reduced to what the phases read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhasePoint {
    /// Seconds on the timeline's clock.
    pub t: f64,
    /// Replicas the Deployment asks for.
    pub desired: u64,
    /// Consumer pods Running.
    pub running: u64,
    /// Nodes of the run's NodePool.
    pub nodes: u64,
    /// Queue depth, when it could be read.
    pub queue: Option<u64>,
}

/// The phases of `points` (ascending `t`) for a load that started at `load` (same clock),
/// with `max_replicas` (maxReplicaCount) and `nodes_before` (the NodePool's nodes at the load
/// start). Each phase is seconds after the load start, rounded to 0.1 s; `None` when it did not
/// happen.
pub fn phases_of(
    points: &[PhasePoint],
    load: f64,
    max_replicas: u64,
    nodes_before: u64,
) -> Vec<Phase> {
    // The state at the load start is the last point before it (a timeline sampled on change
    // has none at the load start itself).
    let at_load = points
        .iter()
        .take_while(|o| o.t <= load)
        .last()
        .map(|o| PhasePoint { t: load, ..*o });
    let points: Vec<PhasePoint> = at_load
        .into_iter()
        .chain(points.iter().filter(|o| o.t > load).copied())
        .collect();
    let first = |from: Option<f64>, p: &dyn Fn(&PhasePoint) -> bool| {
        let from = from?;
        points.iter().find(|o| o.t >= from && p(o)).map(|o| o.t)
    };
    // The first rise of the replicas from where they stood at the load start (a Deployment
    // still at a validation replica, or at minReplicaCount, has not scaled out yet).
    let scale_out = points
        .windows(2)
        .find(|pair| pair[1].desired > pair[0].desired)
        .map(|pair| pair[1].t);
    let at_max = first(Some(load), &|o| o.desired >= max_replicas);
    let new_node = first(Some(load), &|o| o.nodes > nodes_before);
    let queued = first(Some(load), &|o| o.queue.is_some_and(|q| q > 0));
    let drained = first(queued, &|o| o.queue == Some(0));
    let to_zero = first(at_max.or(scale_out), &|o| o.desired == 0 && o.running == 0);
    let consolidated = first(to_zero.and(new_node).and(to_zero), &|o| {
        o.nodes <= nodes_before
    });
    let after = |t: Option<f64>| t.map(|t| ((t - load).max(0.0) * 10.0).round() / 10.0);
    [
        (LOAD_START, Some(load)),
        (FIRST_SCALE_OUT, scale_out),
        (MAX_REPLICAS, at_max),
        (FIRST_NEW_NODE, new_node),
        (DRAINED, drained),
        (SCALED_TO_ZERO, to_zero),
        (NODES_CONSOLIDATED, consolidated),
    ]
    .into_iter()
    .map(|(name, t)| Phase {
        name: name.to_owned(),
        after_load: after(t),
    })
    .collect()
}

/// The first instant a node of a NodeClaim of `nodepool` created at or after `load` was
/// Ready (timeline seconds): the first new node by identity, where [`phases_of`] can only
/// count (a node claimed before the load that becomes Ready during it, or one replaced during
/// it, is told apart by identity, not by number). `None` when the lifecycle saw no NodeClaim
/// of the pool at all (then only the counts can tell); `Some(None)` when none created after
/// the load became Ready.
pub fn first_new_node_ready(
    lifecycle: &crate::lifecycle::Lifecycle,
    nodepool: &str,
    load: f64,
) -> Option<Option<f64>> {
    let in_pool = |c: &&crate::lifecycle::NodeClaimLife| c.nodepool.as_deref() == Some(nodepool);
    if !lifecycle.nodeclaims.iter().any(|c| in_pool(&c)) {
        return None;
    }
    Some(first_ready_after(lifecycle, nodepool, load))
}

fn first_ready_after(
    lifecycle: &crate::lifecycle::Lifecycle,
    nodepool: &str,
    load: f64,
) -> Option<f64> {
    lifecycle
        .nodeclaims
        .iter()
        .filter(|c| c.nodepool.as_deref() == Some(nodepool))
        .filter(|c| c.created.is_some_and(|t| t >= load))
        .filter_map(|c| c.node_ready)
        .min_by(f64::total_cmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: f64, desired: u64, running: u64, nodes: u64, queue: u64) -> PhasePoint {
        PhasePoint {
            t,
            desired,
            running,
            nodes,
            queue: Some(queue),
        }
    }

    fn at(phases: &[Phase], name: &str) -> Option<f64> {
        phases.iter().find(|p| p.name == name).unwrap().after_load
    }

    #[test]
    fn a_burst_passes_every_phase_in_order() {
        let points = [
            point(10.0, 0, 0, 1, 0),
            point(20.0, 0, 0, 1, 100),
            point(35.0, 4, 0, 1, 100),
            point(50.0, 15, 4, 1, 90),
            point(140.0, 15, 15, 2, 40),
            point(200.0, 15, 15, 2, 0),
            point(230.0, 0, 0, 2, 0),
            point(290.0, 0, 0, 1, 0),
        ];
        let phases = phases_of(&points, 20.0, 15, 1);
        assert_eq!(at(&phases, LOAD_START), Some(0.0));
        assert_eq!(at(&phases, FIRST_SCALE_OUT), Some(15.0));
        assert_eq!(at(&phases, MAX_REPLICAS), Some(30.0));
        assert_eq!(at(&phases, FIRST_NEW_NODE), Some(120.0));
        assert_eq!(at(&phases, DRAINED), Some(180.0));
        assert_eq!(at(&phases, SCALED_TO_ZERO), Some(210.0));
        assert_eq!(at(&phases, NODES_CONSOLIDATED), Some(270.0));
    }

    #[test]
    fn the_first_new_node_is_told_by_identity_not_by_count() {
        use crate::lifecycle::{Lifecycle, NodeClaimLife};
        let claim = |name: &str, pool: &str, created: f64, ready: Option<f64>| NodeClaimLife {
            name: name.to_owned(),
            nodepool: Some(pool.to_owned()),
            created: Some(created),
            node_ready: ready,
            ..NodeClaimLife::default()
        };
        let lifecycle = Lifecycle {
            nodeclaims: vec![
                // There before the load (validation), Ready before it.
                claim("before", "run-pool", 2.0, Some(87.0)),
                // Another team's pool.
                claim("theirs", "other", 120.0, Some(150.0)),
                claim("second", "run-pool", 150.0, Some(240.0)),
                claim("first", "run-pool", 130.0, Some(216.7)),
                claim("never-ready", "run-pool", 131.0, None),
            ],
            ..Lifecycle::default()
        };
        assert_eq!(
            first_new_node_ready(&lifecycle, "run-pool", 101.0),
            Some(Some(216.7))
        );
        // Claims of the pool were seen, none created after 250 s: no new node.
        assert_eq!(
            first_new_node_ready(&lifecycle, "run-pool", 250.0),
            Some(None)
        );
        // No claim of the pool seen at all: the lifecycle cannot tell.
        assert_eq!(first_new_node_ready(&lifecycle, "elsewhere", 0.0), None);
    }

    #[test]
    fn a_timeline_sampled_on_change_is_read_from_its_state_at_the_load_start() {
        // At maxReplicaCount since 5 s, nothing sampled at the load start (20 s): at the
        // maximum from the load start, no scale-out after it, scaled to zero at 60 s.
        let points = [point(5.0, 15, 15, 1, 800), point(60.0, 0, 0, 1, 0)];
        let phases = phases_of(&points, 20.0, 15, 1);
        assert_eq!(at(&phases, MAX_REPLICAS), Some(0.0));
        assert_eq!(at(&phases, FIRST_SCALE_OUT), None);
        assert_eq!(at(&phases, SCALED_TO_ZERO), Some(40.0));
    }

    #[test]
    fn a_scale_out_is_a_rise_from_where_the_replicas_stood_at_the_load_start() {
        // A validation replica still there at the load start, scaled in, then activated.
        let points = [
            point(0.0, 1, 0, 0, 0),
            point(6.0, 1, 0, 0, 21),
            point(8.0, 0, 0, 0, 21),
            point(95.0, 1, 0, 1, 21),
            point(100.0, 4, 1, 1, 17),
            point(120.0, 0, 0, 1, 0),
        ];
        let phases = phases_of(&points, 6.0, 15, 0);
        assert_eq!(at(&phases, FIRST_SCALE_OUT), Some(89.0));
        assert_eq!(at(&phases, SCALED_TO_ZERO), Some(114.0));
        // minReplicaCount 3 held throughout: no scale-out, so no scale to zero after one.
        let held = [
            point(0.0, 3, 3, 1, 0),
            point(10.0, 3, 3, 1, 2),
            point(90.0, 0, 0, 1, 0),
        ];
        let phases = phases_of(&held, 5.0, 15, 1);
        assert_eq!(at(&phases, FIRST_SCALE_OUT), None);
        assert_eq!(at(&phases, SCALED_TO_ZERO), None);
    }

    #[test]
    fn what_did_not_happen_is_none_not_zero() {
        // A load below maxReplicaCount that needed no node and never drained.
        let points = [point(0.0, 0, 0, 0, 50), point(30.0, 2, 2, 0, 40)];
        let phases = phases_of(&points, 0.0, 15, 0);
        assert_eq!(at(&phases, FIRST_SCALE_OUT), Some(30.0));
        for name in [
            MAX_REPLICAS,
            FIRST_NEW_NODE,
            DRAINED,
            SCALED_TO_ZERO,
            NODES_CONSOLIDATED,
        ] {
            assert_eq!(at(&phases, name), None, "{name}");
        }
    }
}
