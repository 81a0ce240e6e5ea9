//! `drain-target`: the model's drain estimate for a burst against a target, and the
//! maxReplicaCount that would meet it (searched upward with the model).

use super::{secs, Checked, Finding, Severity};

/// The most replicas the search tries.
const SEARCH_LIMIT: u64 = 10_000;

/// `drain-target` (Risk, only with a burst and a drain target).
pub(super) fn drain_target(c: &Checked<'_>) -> Option<Finding> {
    let (burst, target) = (c.inputs.burst?, c.inputs.drain_target?);
    let e = c.model.burst(burst);
    if e.drain_estimate <= target {
        return None;
    }
    let s = &c.model.scaling;
    let rate = c.model.timing.per_pod_rate;
    // More replicas than ceil(burst / queueLength) are never asked for (HPA-4).
    let useful = burst.div_ceil(s.queue_length).clamp(1, SEARCH_LIMIT);
    let mut best = (s.max_replicas, e.clone());
    let mut meets = None;
    for max in s.max_replicas.saturating_add(1)..=useful {
        let mut trial = c.model.clone();
        trial.scaling.max_replicas = max;
        let t = trial.burst(burst);
        if t.drain_estimate < best.1.drain_estimate {
            best = (max, t.clone());
        }
        if t.drain_estimate <= target {
            meets = Some((max, t));
            break;
        }
    }
    let message = format!(
        "maxReplicaCount {} drains a burst of {burst} messages in about {} (the model), longer \
         than the drain target of {}",
        s.max_replicas,
        secs(e.drain_estimate),
        secs(target)
    );
    let base = format!(
        "the burst peaks at {} replicas after {} ({} msg/s each; first consumer running after \
         {}), so the drain misses the target by {}",
        e.peak_replicas,
        secs(e.peak_after),
        rate,
        secs(e.first_capacity_after),
        secs(e.drain_estimate.saturating_sub(target))
    );
    let (consequence, fix) = match meets {
        Some((max, t)) => (
            format!(
                "{base}; maxReplicaCount {max} would meet it: estimate {}, peak {} replicas on \
                 {}..{} nodes{}",
                secs(t.drain_estimate),
                t.peak_replicas,
                t.nodes_min,
                t.nodes_max,
                if t.limit_blocks {
                    " (the NodePool's spec.limits.cpu would not hold them)"
                } else {
                    ""
                }
            ),
            format!(
                "set spec.maxReplicaCount to {max} (from {}) and make sure the NodePool's limits \
                 hold {} consumer pods",
                s.max_replicas, t.peak_replicas
            ),
        ),
        None => (
            format!(
                "{base}; no maxReplicaCount meets it under the model: the best, maxReplicaCount \
                 {}, still takes {} (peak {} replicas; activation, node start and the ramp alone \
                 take {})",
                best.0,
                secs(best.1.drain_estimate),
                best.1.peak_replicas,
                secs(best.1.first_capacity_after)
            ),
            format!(
                "raise spec.maxReplicaCount to {} and lower queueLength ({}) or pollingInterval \
                 ({} s), make the consumer faster than {rate} msg/s per pod, or relax the target \
                 to at least {}",
                best.0,
                s.queue_length,
                s.polling.as_secs(),
                secs(best.1.drain_estimate)
            ),
        ),
    };
    Some(Finding {
        id: "drain-target".to_owned(),
        severity: Severity::Risk,
        subject: c.so_subject("spec.maxReplicaCount"),
        message,
        consequence,
        fix,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{find, walkthrough};
    use super::super::CheckInputs;
    use edw_model::{Model, NodePoolSettings, ScalingSettings, TargetTiming};

    fn inputs(max: u64, burst: u64, target: Duration) -> CheckInputs {
        let mut so = walkthrough();
        so["spec"]["maxReplicaCount"] = max.into();
        let mut inputs = CheckInputs::new(so);
        inputs.burst = Some(burst);
        inputs.drain_target = Some(target);
        inputs
    }

    #[test]
    fn a_missed_target_names_max_replica_count_and_the_one_that_meets_it() {
        let mut model = Model::new(
            ScalingSettings::default(),
            NodePoolSettings::default(),
            TargetTiming::default(),
        );
        model.scaling.max_replicas = 2;
        let estimate = model.burst(1000).drain_estimate;
        // A target between what 2 and 15 replicas need: the search finds a count in between.
        model.scaling.max_replicas = 15;
        let walkthrough_estimate = model.burst(1000).drain_estimate;
        assert!(walkthrough_estimate < estimate);
        let target = walkthrough_estimate + Duration::from_secs(1);
        let f = find(&inputs(2, 1000, target), "drain-target").expect("finding");
        assert!(
            f.message
                .contains("maxReplicaCount 2 drains a burst of 1000"),
            "{}",
            f.message
        );
        assert!(f.message.contains(&super::secs(estimate)), "{}", f.message);
        assert!(
            f.consequence.contains("peaks at 2 replicas"),
            "{}",
            f.consequence
        );
        let m: u64 = f
            .fix
            .strip_prefix("set spec.maxReplicaCount to ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}", f.fix));
        assert!((3..=15).contains(&m), "{}", f.fix);
        model.scaling.max_replicas = m;
        assert!(model.burst(1000).drain_estimate <= target);
        model.scaling.max_replicas = m - 1;
        assert!(
            model.burst(1000).drain_estimate > target,
            "the smallest that meets it"
        );
    }

    #[test]
    fn an_unreachable_target_says_so() {
        let f = find(&inputs(2, 1000, Duration::from_secs(120)), "drain-target").expect("finding");
        assert!(f.message.contains("maxReplicaCount 2"), "{}", f.message);
        assert!(
            f.consequence.contains("no maxReplicaCount meets it"),
            "{}",
            f.consequence
        );
    }

    #[test]
    fn a_met_target_or_no_target_gives_nothing() {
        assert!(find(&inputs(15, 1000, Duration::from_secs(3600)), "drain-target").is_none());
        let mut no_target = inputs(2, 1000, Duration::from_secs(1));
        no_target.drain_target = None;
        assert!(find(&no_target, "drain-target").is_none());
    }
}
