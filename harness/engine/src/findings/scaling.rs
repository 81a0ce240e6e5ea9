//! Findings about the ScaledObject's own numbers: the stranded tail (KS-6), a cooldown
//! shorter than the poll (KS-5), the legacy HPA ramp (HPA-7) and the activation wait (AQ-7).

use super::{ramp_text, secs, Checked, Finding, Severity};

/// `stranded-tail` (Risk): minReplicaCount 0 with activationQueueLength N > 0.
pub(super) fn stranded_tail(c: &Checked<'_>) -> Option<Finding> {
    let s = &c.model.scaling;
    let stranded = c.model.burst(s.activation).max_stranded;
    if s.min_replicas != 0 || stranded == 0 {
        return None;
    }
    let quiet = c.model.burst(stranded);
    let mut fixed = c.model.clone();
    fixed.scaling.activation = 0;
    Some(Finding {
        id: "stranded-tail".to_owned(),
        severity: Severity::Risk,
        subject: c.trigger_subject("activationQueueLength"),
        message: format!(
            "minReplicaCount is 0 and activationQueueLength is {}: KEDA activates only above {} \
             messages (AQ-7), so at 0 replicas a queue of {} or fewer is never read (KS-6)",
            s.activation, s.activation, s.activation
        ),
        consequence: format!(
            "up to {stranded} messages can stay on the queue at 0 replicas until new traffic \
             pushes the count above {}: a queue of {stranded} messages {} and gets {} replicas \
             (with activationQueueLength 0 the model strands {})",
            s.activation,
            if quiet.activates {
                "activates"
            } else {
                "does not activate"
            },
            quiet.peak_replicas,
            fixed.burst(stranded).max_stranded,
        ),
        fix: format!(
            "set spec.triggers[{}].metadata.activationQueueLength to '0' (any message \
             activates), or spec.minReplicaCount to 1 (one consumer always runs)",
            c.trigger
        ),
    })
}

/// `cooldown-shorter-than-polling` (Warning): the effective cooldown is one poll (KS-5).
pub(super) fn cooldown_shorter_than_polling(c: &Checked<'_>) -> Option<Finding> {
    let s = &c.model.scaling;
    if s.cooldown >= s.polling {
        return None;
    }
    let e = c.model.burst(c.burst_or_full());
    Some(Finding {
        id: "cooldown-shorter-than-polling".to_owned(),
        severity: Severity::Warning,
        subject: c.so_subject("spec.cooldownPeriod"),
        message: format!(
            "cooldownPeriod {} s is shorter than pollingInterval {} s: KEDA checks for scale to \
             zero only when it polls, so the effective cooldown is one poll ({} s), not {} s (KS-5)",
            s.cooldown.as_secs(),
            s.polling.as_secs(),
            s.polling.as_secs(),
            s.cooldown.as_secs()
        ),
        consequence: format!(
            "after a burst of {} messages drains, the replicas reach 0 within {} (the model), whatever \
             cooldownPeriod says; a lull shorter than that still scales to zero and the next \
             message waits for activation again",
            e.messages,
            secs(e.scale_to_zero_within)
        ),
        fix: format!(
            "set spec.cooldownPeriod to at least pollingInterval ({} s), e.g. KEDA's default 300, \
             or lower spec.pollingInterval",
            s.polling.as_secs()
        ),
    })
}

/// `legacy-hpa-ramp` (Info): behavior unset, the HPA ramps max(2x, 4) per sync (HPA-7).
pub(super) fn legacy_hpa_ramp(c: &Checked<'_>) -> Option<Finding> {
    let s = &c.model.scaling;
    if s.behavior_set {
        return None;
    }
    let start = s.min_replicas.max(1);
    let ramp = c.model.ramp(start, s.max_replicas.max(1));
    let syncs = ramp.last().map_or(0, |r| r.tick);
    let mut with_behavior = c.model.clone();
    with_behavior.scaling.behavior_set = true;
    let faster = with_behavior.ramp(start, s.max_replicas.max(1));
    let sync = c.model.timing.hpa_sync;
    Some(Finding {
        id: "legacy-hpa-ramp".to_owned(),
        severity: Severity::Info,
        subject: c.so_subject("spec.advanced.horizontalPodAutoscalerConfig.behavior"),
        message: format!(
            "no HPA behavior is set: the HPA scales up by at most max(2 x current, 4) replicas per \
             {} sync (HPA-7)",
            secs(sync)
        ),
        consequence: format!(
            "from {start} to maxReplicaCount {} the replicas go {} in {syncs} syncs ({}); with a \
             behavior set (HPA-8) they would go {} in {} syncs",
            s.max_replicas,
            ramp_text(&ramp),
            secs(sync * syncs),
            ramp_text(&faster),
            faster.last().map_or(0, |r| r.tick),
        ),
        fix: "to ramp faster or slower, set spec.advanced.horizontalPodAutoscalerConfig.behavior.\
              scaleUp (policies and stabilizationWindowSeconds)"
            .to_owned(),
    })
}

/// `slow-activation` (Info; Warning above 60 s): from 0 replicas, activation waits up to
/// pollingInterval (AQ-7, KS-2). Only when minReplicaCount is 0 and the poll is slower than
/// the HPA's sync.
pub(super) fn slow_activation(c: &Checked<'_>) -> Option<Finding> {
    let s = &c.model.scaling;
    if s.min_replicas > 0 || s.polling <= c.model.timing.hpa_sync {
        return None;
    }
    let e = c.model.burst(c.burst_or_full());
    let severity = if s.polling.as_secs() > 60 {
        Severity::Warning
    } else {
        Severity::Info
    };
    Some(Finding {
        id: "slow-activation".to_owned(),
        severity,
        subject: c.so_subject("spec.pollingInterval"),
        message: format!(
            "pollingInterval is {} s with minReplicaCount 0: KEDA notices the first messages only \
             when it polls, so activation waits up to {} s (longer than the HPA's {} sync)",
            s.polling.as_secs(),
            s.polling.as_secs(),
            secs(c.model.timing.hpa_sync)
        ),
        consequence: format!(
            "for a burst of {} messages the HPA asks for its peak of {} replicas after up to {} \
             and the first consumer runs after up to {} (the model: poll + Karpenter batch + node \
             ready + pod start)",
            e.messages,
            e.peak_replicas,
            secs(e.peak_after),
            secs(e.first_capacity_after)
        ),
        fix: "lower spec.pollingInterval (e.g. 15), or set spec.minReplicaCount to 1 so a \
              consumer is always running"
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{find, walkthrough};
    use super::super::{CheckInputs, Severity};

    #[test]
    fn stranded_tail_says_how_many_messages() {
        let f = find(&CheckInputs::new(walkthrough()), "stranded-tail").expect("finding");
        assert_eq!(f.severity, Severity::Risk);
        assert_eq!(
            f.subject,
            "ScaledObject aws2az-queue-scaleobj: spec.triggers[0].metadata.activationQueueLength"
        );
        assert!(
            f.consequence.contains("up to 20 messages"),
            "{}",
            f.consequence
        );
        assert!(
            f.consequence.contains("does not activate"),
            "{}",
            f.consequence
        );
        assert!(f.fix.contains("activationQueueLength") && f.fix.contains("minReplicaCount"));
    }

    #[test]
    fn stranded_tail_is_gone_with_either_fix() {
        let mut so = walkthrough();
        so["spec"]["triggers"][0]["metadata"]["activationQueueLength"] = "0".into();
        assert!(find(&CheckInputs::new(so), "stranded-tail").is_none());
        let mut so = walkthrough();
        so["spec"]["minReplicaCount"] = 1.into();
        assert!(find(&CheckInputs::new(so), "stranded-tail").is_none());
    }

    #[test]
    fn cooldown_shorter_than_polling_gives_the_effective_cooldown() {
        let f = find(
            &CheckInputs::new(walkthrough()),
            "cooldown-shorter-than-polling",
        )
        .expect("finding");
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(
            f.subject,
            "ScaledObject aws2az-queue-scaleobj: spec.cooldownPeriod"
        );
        assert!(
            f.message.contains("one poll (30 s), not 10 s"),
            "{}",
            f.message
        );
        assert!(f.consequence.contains("within 30 s"), "{}", f.consequence);
        let mut so = walkthrough();
        so["spec"]["cooldownPeriod"] = 30.into();
        assert!(find(&CheckInputs::new(so), "cooldown-shorter-than-polling").is_none());
    }

    #[test]
    fn legacy_ramp_shows_the_models_ramp() {
        let f = find(&CheckInputs::new(walkthrough()), "legacy-hpa-ramp").expect("finding");
        assert_eq!(f.severity, Severity::Info);
        assert!(
            f.consequence.contains("1 → 4 → 8 → 15 in 3 syncs (45 s)"),
            "{}",
            f.consequence
        );
        assert!(
            f.consequence.contains("1 → 5 → 10 → 15"),
            "{}",
            f.consequence
        );
        let mut so = walkthrough();
        so["spec"]["advanced"] = serde_json::json!({"horizontalPodAutoscalerConfig": {
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0}}
        }});
        assert!(find(&CheckInputs::new(so), "legacy-hpa-ramp").is_none());
    }

    #[test]
    fn slow_activation_is_a_warning_above_a_minute() {
        let f = find(&CheckInputs::new(walkthrough()), "slow-activation").expect("finding");
        assert_eq!(f.severity, Severity::Info);
        assert!(f.message.contains("up to 30 s"), "{}", f.message);
        let mut so = walkthrough();
        so["spec"]["pollingInterval"] = 90.into();
        let f = find(&CheckInputs::new(so), "slow-activation").expect("finding");
        assert_eq!(f.severity, Severity::Warning);
        let mut so = walkthrough();
        so["spec"]["pollingInterval"] = 15.into();
        assert!(find(&CheckInputs::new(so), "slow-activation").is_none());
        let mut so = walkthrough();
        so["spec"]["minReplicaCount"] = 1.into();
        assert!(find(&CheckInputs::new(so), "slow-activation").is_none());
    }
}
