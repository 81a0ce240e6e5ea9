//! The model's expectations for a burst of messages: activation, the replica ramp, pods per
//! node and node count, when capacity arrives, the drain time, the scale to zero and the
//! messages that can be stranded, and the step timeouts derived from them.

use std::time::Duration;

use super::settings::{NodePoolSettings, ScalingSettings, TargetTiming};

/// One HPA sync of the ramp: after `tick` syncs the replicas are `replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RampStep {
    pub tick: u32,
    pub replicas: u64,
}

/// What a burst of messages should do.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BurstExpectation {
    pub messages: u64,
    /// AQ-7: the burst activates KEDA (messages > activationQueueLength).
    pub activates: bool,
    /// min(max, ceil(messages / queueLength)) (HPA-4), at least 1 when active.
    pub peak_replicas: u64,
    /// HPA-7 (or HPA-8 when behavior is set): replicas after each HPA sync, from KEDA's 0 -> 1.
    pub ramp: Vec<RampStep>,
    /// Consumer pods a node of the pool's smallest size holds (AZ-5, AZ-7).
    pub pods_per_small_node: u64,
    /// Nodes for the peak: at least (largest size) .. at most (smallest size).
    pub nodes_min: u64,
    pub nodes_max: u64,
    /// The pool's CPU limit cannot hold the peak's pods.
    pub limit_blocks: bool,
    /// From the burst to the first Running consumer pods (activation wait + batch + node + start).
    pub first_capacity_after: Duration,
    /// From the burst to the peak replica count (activation wait + ramp syncs).
    pub peak_after: Duration,
    /// Estimated time to drain the burst (fluid model at the ramp's capacity, or the storage's
    /// rate where that is lower).
    pub drain_estimate: Duration,
    /// KS-5: after the drain, replicas reach 0 within this (polls until the cooldown passed).
    pub scale_to_zero_within: Duration,
    /// KS-6: up to this many messages can stay on the queue at 0 replicas (activation > 0 with
    /// minReplicaCount 0), until new traffic pushes the count above the activation threshold.
    pub max_stranded: u64,
}

/// The model for one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub scaling: ScalingSettings,
    pub pool: NodePoolSettings,
    pub timing: TargetTiming,
}

/// AZ-5: kube-reserved CPU (6 % of the 1st core, 4 % of the 2nd, 2 % of cores 3-4, 1 % above).
fn kube_reserved_cpu_millis(vcpus: u64) -> u64 {
    (1..=vcpus)
        .map(|c| match c {
            1 => 60,
            2 => 40,
            3 | 4 => 20,
            _ => 10,
        })
        .sum()
}

impl Model {
    pub fn new(scaling: ScalingSettings, pool: NodePoolSettings, timing: TargetTiming) -> Self {
        Model {
            scaling,
            pool,
            timing,
        }
    }

    /// AQ-7: active iff the count is strictly above activationQueueLength.
    pub fn is_active(&self, count: u64) -> bool {
        count > self.scaling.activation
    }

    /// AQ-7 with minReplicaCount 0: `messages` on an idle queue are never read (KEDA does not
    /// activate and no consumer runs). The smallest load that is read is `activation + 1`.
    pub fn never_read(&self, messages: u64) -> bool {
        self.scaling.min_replicas == 0 && !self.is_active(messages)
    }

    /// The replica count the system settles at for a steady queue length `count`.
    pub fn replicas_for(&self, count: u64) -> u64 {
        let s = &self.scaling;
        if !self.is_active(count) {
            return s.min_replicas;
        }
        count
            .div_ceil(s.queue_length)
            .clamp(s.min_replicas.max(1), s.max_replicas.max(1))
    }

    /// HPA-7 (legacy: max(2 x current, 4) per sync) or HPA-8 (defaulted behavior: max(current
    /// + 4, 2 x current)) from `start` up to `target`.
    pub fn ramp(&self, start: u64, target: u64) -> Vec<RampStep> {
        let mut steps = vec![RampStep {
            tick: 0,
            replicas: start,
        }];
        let mut current = start;
        let mut tick = 0;
        while current < target && tick < 64 {
            tick += 1;
            let limit = if self.scaling.behavior_set {
                (current + 4).max(2 * current)
            } else {
                (2 * current).max(4)
            };
            current = target.min(limit).min(self.scaling.max_replicas.max(1));
            steps.push(RampStep {
                tick,
                replicas: current,
            });
        }
        steps
    }

    /// AZ-5 / AZ-7: consumer pods a node with `vcpus` holds.
    pub fn pods_per_node(&self, vcpus: u64) -> u64 {
        let allocatable = vcpus * 1000 - kube_reserved_cpu_millis(vcpus);
        allocatable.saturating_sub(self.timing.daemonset_cpu_millis)
            / self.timing.pod_cpu_millis.max(1)
    }

    /// Expectations for `messages` sent at once to an empty queue.
    pub fn burst(&self, messages: u64) -> BurstExpectation {
        let s = &self.scaling;
        let t = &self.timing;
        let activates = self.is_active(messages);
        let peak = if activates {
            self.replicas_for(messages)
        } else {
            s.min_replicas
        };
        let start = s.min_replicas.max(1);
        let ramp = if activates {
            self.ramp(start, peak)
        } else {
            vec![RampStep {
                tick: 0,
                replicas: peak,
            }]
        };
        let ticks = ramp.last().map_or(0, |r| r.tick);
        let small = self.pods_per_node(self.pool.min_vcpus).max(1);
        let large = self.pods_per_node(self.pool.max_vcpus).max(1);
        let limit_blocks = self.pool.cpu_limit_millis.is_some_and(|limit| {
            peak * t.pod_cpu_millis + peak.div_ceil(large) * t.daemonset_cpu_millis > limit
        });
        // Activation waits up to one poll; the HPA syncs every period after.
        let activation_wait = s.polling;
        let first_capacity_after = activation_wait + t.batch * 2 + t.node_ready + t.pod_start;
        let peak_after = activation_wait + t.hpa_sync * (ticks + 1);
        // Fluid drain: nothing until the first capacity, then the peak's capacity once the last
        // node of the ramp is ready (a conservative estimate).
        let consumers = peak as f64 * t.per_pod_rate;
        let rate = t
            .storage_rate
            .map_or(consumers, |storage| consumers.min(storage))
            .max(1e-9);
        let full_capacity_after =
            (peak_after + t.batch * 2 + t.node_ready + t.pod_start).as_secs_f64();
        let drain_estimate = if activates {
            Duration::from_secs_f64(
                full_capacity_after.max(first_capacity_after.as_secs_f64())
                    + messages as f64 / rate,
            )
        } else {
            Duration::ZERO
        };
        // KS-5: the first inactive poll after lastActiveTime + cooldown scales to zero.
        let polls = if s.cooldown < s.polling {
            1
        } else {
            s.cooldown.as_secs().div_ceil(s.polling.as_secs().max(1)) as u32 + 1
        };
        BurstExpectation {
            messages,
            activates,
            peak_replicas: peak,
            ramp,
            pods_per_small_node: small,
            nodes_min: peak.div_ceil(large),
            nodes_max: peak.div_ceil(small),
            limit_blocks,
            first_capacity_after,
            peak_after,
            drain_estimate,
            scale_to_zero_within: s.polling * polls,
            max_stranded: if s.min_replicas == 0 { s.activation } else { 0 },
        }
    }

    /// Step timeouts for a burst, in target seconds, with a margin for the unconfirmed latencies.
    pub fn timeouts(&self, messages: u64) -> BurstTimeouts {
        let e = self.burst(messages);
        let t = &self.timing;
        let margin = self.scaling.polling + t.hpa_sync * 2;
        BurstTimeouts {
            scale_out: e.peak_after + margin,
            nodes_grow: self.scaling.polling + t.hpa_sync + t.node_ready * 2 + margin,
            drain: e.drain_estimate * 2 + margin,
            scale_in: e.scale_to_zero_within + t.pod_start + margin,
            nodes_removed: t.node_removal * 3 + margin,
        }
    }
}

/// What a constant message rate should do.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SteadyExpectation {
    /// Messages per (target) second.
    pub rate: f64,
    /// ceil(rate / per-pod rate): the replicas that keep up.
    pub needed: u64,
    /// maxReplicaCount replicas keep up (else the queue grows without bound).
    pub keeps_up: bool,
    /// minReplicaCount replicas already keep up: the backlog stays below one queueLength per
    /// replica, so the HPA holds minReplicaCount (HPA-4) and KEDA's activation does not matter.
    /// Otherwise queue-length scaling does not settle: the backlog is the integral of the rate
    /// mismatch, so the replicas swing between the floor and the ceiling (the twin shows the
    /// period).
    pub holds: bool,
    /// The replica count held when `holds` (minReplicaCount).
    pub replicas: u64,
}

impl Model {
    /// A constant `rate` messages per second (after the baseline pods run).
    pub fn steady(&self, rate: f64) -> SteadyExpectation {
        let s = &self.scaling;
        let per_pod = self.timing.per_pod_rate.max(1e-9);
        let needed = (rate.max(0.0) / per_pod).ceil() as u64;
        let holds = s.min_replicas >= needed && s.min_replicas > 0;
        SteadyExpectation {
            rate,
            needed,
            keeps_up: s.max_replicas >= needed,
            holds,
            replicas: if holds { s.min_replicas } else { needed },
        }
    }
}

/// Timeouts for the burst flow's waits (target seconds).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BurstTimeouts {
    pub scale_out: Duration,
    pub nodes_grow: Duration,
    pub drain: Duration,
    pub scale_in: Duration,
    pub nodes_removed: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walkthrough() -> Model {
        Model::new(
            ScalingSettings::default(),
            NodePoolSettings::default(),
            TargetTiming::default(),
        )
    }

    #[test]
    fn a_steady_rate_holds_only_where_the_floor_keeps_up() {
        let mut model = walkthrough();
        // The walkthrough: min 0, so 2.5 msg/s needs scaling and the replicas swing.
        let e = model.steady(2.5);
        assert_eq!((e.needed, e.keeps_up, e.holds), (3, true, false));
        // A baseline of 3 consumers holds 3.
        model.scaling.min_replicas = 3;
        let e = model.steady(2.5);
        assert_eq!((e.needed, e.holds, e.replicas), (3, true, 3));
        // 20 msg/s cannot be kept up with by 15 replicas at 1 msg/s each.
        assert!(!model.steady(20.0).keeps_up);
        assert!(!model.steady(3.5).holds);
    }

    #[test]
    fn the_worked_example() {
        let model = walkthrough();
        let e = model.burst(1000);
        assert!(e.activates);
        assert_eq!(e.peak_replicas, 15);
        assert_eq!(
            e.ramp.iter().map(|r| r.replicas).collect::<Vec<_>>(),
            [1, 4, 8, 15],
            "HPA-7 legacy ramp"
        );
        assert_eq!(
            e.pods_per_small_node, 7,
            "P = 7 on a D2 with 100m of DaemonSets"
        );
        assert_eq!(e.nodes_max, 3);
        assert_eq!(
            e.max_stranded, 20,
            "activationQueueLength 20 with minReplicaCount 0"
        );
        assert_eq!(
            e.scale_to_zero_within,
            Duration::from_secs(30),
            "cooldown 10 < polling 30: one poll"
        );
        let drain = e.drain_estimate.as_secs_f64();
        assert!(
            (150.0..=260.0).contains(&drain),
            "drain estimate {drain} s (the spec's example drains at about 175 s)"
        );
    }

    #[test]
    fn sensitivities() {
        let mut model = walkthrough();
        model.timing.daemonset_cpu_millis = 300;
        assert_eq!(
            model.pods_per_node(2),
            6,
            "§7.4: DaemonSet CPU 150-400m gives P = 6"
        );
        assert_eq!(model.burst(1000).nodes_max, 3);
        let mut behavior = walkthrough();
        behavior.scaling.behavior_set = true;
        assert_eq!(
            behavior
                .ramp(1, 15)
                .iter()
                .map(|r| r.replicas)
                .collect::<Vec<_>>(),
            [1, 5, 10, 15],
            "HPA-8"
        );
        let quiet = walkthrough().burst(20);
        assert!(
            !quiet.activates && quiet.peak_replicas == 0,
            "20 messages do not activate (strict >)"
        );
        assert!(walkthrough().burst(21).activates);
        let mut fixed = walkthrough();
        fixed.scaling.activation = 0;
        assert_eq!(
            fixed.burst(1000).max_stranded,
            0,
            "the fix: activationQueueLength 0"
        );
    }
}
