//! Findings about the NodePool: a CPU limit that cannot hold maxReplicaCount consumer pods
//! (AZ-5, AZ-7) and a disruption budget that removes empty nodes a few at a time (KP-14).

use serde_json::Value;

use super::{secs, Checked, Finding, Severity};
use edw_model::Model;

/// True when the model's limit check lets `n` consumer pods run in the pool.
fn fits(model: &Model, n: u64) -> bool {
    if n == 0 {
        return true;
    }
    let mut m = model.clone();
    m.scaling.min_replicas = 0;
    m.scaling.max_replicas = n;
    m.scaling.activation = 0;
    m.scaling.queue_length = 1;
    !m.burst(n).limit_blocks
}

/// CPU (millicores) `n` consumer pods need as the model counts it: their requests plus the
/// DaemonSets of the fewest (largest) nodes that hold them.
fn needed_millis(model: &Model, n: u64) -> u64 {
    let t = &model.timing;
    let per_node = model.pods_per_node(model.pool.max_vcpus).max(1);
    n * t.pod_cpu_millis + n.div_ceil(per_node) * t.daemonset_cpu_millis
}

/// `nodepool-limit` (Risk): `spec.limits.cpu` cannot hold maxReplicaCount consumer pods.
pub(super) fn nodepool_limit(c: &Checked<'_>) -> Option<Finding> {
    let limit = c.model.pool.cpu_limit_millis?;
    let max = c.model.scaling.max_replicas;
    if fits(&c.model, max) {
        return None;
    }
    // The largest count that fits (the need grows with the count).
    let (mut lo, mut hi) = (0, max);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(&c.model, mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let fit = lo;
    let t = &c.model.timing;
    let raw = c
        .inputs
        .nodepool
        .as_ref()
        .and_then(|p| p.pointer("/spec/limits/cpu"))
        .map_or_else(String::new, |v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    let burst = c.burst_or_full();
    let full = c.model.burst(burst);
    let mut capped = c.model.clone();
    capped.scaling.max_replicas = fit;
    let (limited, unlimited) = (capped.burst(burst).drain_estimate, full.drain_estimate);
    let drain = if fit == 0 {
        "nothing drains it".to_owned()
    } else if limited > unlimited {
        format!(
            "it drains in about {} instead of {}",
            secs(limited),
            secs(unlimited)
        )
    } else {
        // A burst this small drains before the ramp reaches the pods the limit refuses.
        format!(
            "the model's drain estimate is about {} either way: a burst this small drains before the HPA's ramp reaches the pods the limit refuses (a larger --burst shows the cost)",
            secs(unlimited)
        )
    };
    Some(Finding {
        id: "nodepool-limit".to_owned(),
        severity: Severity::Risk,
        subject: c.pool_subject("spec.limits.cpu"),
        message: format!(
            "spec.limits.cpu {raw} ({limit}m) holds {fit} of maxReplicaCount {max} consumer pods \
             ({}m each plus {}m of DaemonSets per node)",
            t.pod_cpu_millis, t.daemonset_cpu_millis
        ),
        consequence: format!(
            "past {fit} replicas Karpenter provisions no node and {} pods stay Pending; a burst \
             of {burst} messages asks for {} replicas and {drain} (Karpenter counts whole \
             nodes' capacity against the limit, so the real headroom is smaller still)",
            max - fit,
            full.peak_replicas,
        ),
        fix: format!(
            "raise spec.limits.cpu to at least {}m (plus the nodes' own overhead), or lower the \
             ScaledObject's maxReplicaCount to {fit}",
            needed_millis(&c.model, max)
        ),
    })
}

/// `serial-node-removal` (Info; Warning for a 0 % budget): a disruption budget below 100 %
/// removes empty nodes a few at a time (KP-14).
/// A `karpenter.sh/v1beta1` NodePool (the walkthrough's `default-pool.yaml`): AKS Node
/// Autoprovisioning serves only `karpenter.sh/v1` since Karpenter 1.4 (April 2025), so applying
/// it gets 404. The flow converts it when it creates its own pool
/// ([`crate::manifests::nodepool_as_v1`]); a team applying the file itself needs the same.
pub(super) fn nodepool_v1beta1(c: &Checked<'_>) -> Option<Finding> {
    let pool = c.inputs.nodepool.as_ref()?;
    if pool.get("apiVersion").and_then(|v| v.as_str()) != Some("karpenter.sh/v1beta1") {
        return None;
    }
    Some(Finding {
        id: "nodepool-v1beta1".to_owned(),
        // A warning, not a risk: it breaks an apply, which the team sees at once, not a run's
        // outcome (the flow converts the pool it creates).
        severity: Severity::Warning,
        subject: c.pool_subject("apiVersion"),
        message: "the NodePool is karpenter.sh/v1beta1; AKS Node Autoprovisioning serves only \
                  karpenter.sh/v1 since Karpenter 1.4 (April 2025)"
            .to_owned(),
        consequence: "`kubectl apply` of this file fails (404: the server could not find the \
                      requested resource), so the pool the walkthrough relies on is not what \
                      the cluster runs"
            .to_owned(),
        fix: "write it as karpenter.sh/v1: consolidationPolicy WhenUnderutilized becomes \
              WhenEmptyOrUnderutilized with consolidateAfter 0s, spec.disruption.expireAfter \
              moves to spec.template.spec.expireAfter, and nodeClassRef names group \
              karpenter.azure.com and kind AKSNodeClass (what edw does when it creates its pool)"
            .to_owned(),
    })
}

pub(super) fn serial_node_removal(c: &Checked<'_>) -> Option<Finding> {
    let percent = c.model.pool.budget_percent?;
    if !percent.is_finite() || percent >= 100.0 {
        return None;
    }
    let set = c
        .inputs
        .nodepool
        .as_ref()
        .and_then(|p| p.pointer("/spec/disruption/budgets/0/nodes"))
        .is_some();
    let shown = if set {
        format!("{percent}%")
    } else {
        format!("unset (Karpenter's default, {percent}%)")
    };
    let e = c.model.burst(c.burst_or_full());
    let nodes = e.nodes_max;
    let removal = c.model.timing.node_removal;
    let subject = c.pool_subject("spec.disruption.budgets[0].nodes");
    if percent <= 0.0 {
        return (nodes > 0).then(|| Finding {
            id: "serial-node-removal".to_owned(),
            severity: Severity::Warning,
            subject,
            message: format!("the disruption budget is {shown}: Karpenter removes no node"),
            consequence: format!(
                "the up to {nodes} nodes a burst of {} messages adds ({} replicas) stay after the \
                 drain, idle and billed",
                e.messages, e.peak_replicas
            ),
            fix: "set spec.disruption.budgets[0].nodes to 100% (or a schedule that allows \
                  disruption)"
                .to_owned(),
        });
    }
    // KP-14: each pass may remove ceil(percent x nodes) of the remaining nodes.
    let mut remaining = nodes;
    let mut passes: u32 = 0;
    let mut first = 0;
    while remaining > 0 {
        let allowed = ((percent / 100.0 * remaining as f64).ceil() as u64).max(1);
        if passes == 0 {
            first = allowed;
        }
        remaining = remaining.saturating_sub(allowed);
        passes += 1;
    }
    if passes <= 1 {
        return None;
    }
    Some(Finding {
        id: "serial-node-removal".to_owned(),
        severity: Severity::Info,
        subject,
        message: format!(
            "the disruption budget is {shown}: Karpenter removes empty nodes a few at a time \
             (KP-14), not all at once"
        ),
        consequence: format!(
            "after a burst of {} messages ({} replicas, up to {nodes} nodes of {} pods) the empty \
             nodes go {first} at a time: {passes} passes, about {} instead of {} at 100%, billed \
             while idle",
            e.messages,
            e.peak_replicas,
            e.pods_per_small_node,
            secs(removal * passes),
            secs(removal)
        ),
        fix: "set spec.disruption.budgets[0].nodes to 100% if the pool serves only this \
              workload (keep a lower budget where disruption must be gradual)"
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{find, pool, walkthrough};
    use super::super::{CheckInputs, Severity};
    use super::*;
    use edw_model::{NodePoolSettings, ScalingSettings, TargetTiming};

    fn with_pool(spec: Value) -> CheckInputs {
        let mut inputs = CheckInputs::new(walkthrough());
        inputs.nodepool = Some(pool(spec));
        inputs
    }

    #[test]
    fn a_one_cpu_limit_holds_three_pods() {
        let f = find(
            &with_pool(json!({"limits": {"cpu": "1"}})),
            "nodepool-limit",
        )
        .expect("finding");
        assert_eq!(f.severity, Severity::Risk);
        assert_eq!(f.subject, "NodePool default: spec.limits.cpu");
        // 3 x 250m + 100m of DaemonSets = 850m <= 1000m; 4 pods need 1100m.
        assert!(
            f.message.contains("holds 3 of maxReplicaCount 15"),
            "{}",
            f.message
        );
        assert!(
            f.consequence.contains("12 pods stay Pending"),
            "{}",
            f.consequence
        );
        assert!(f.fix.contains("3850m"), "{}", f.fix);
        // The default burst (75) drains before the ramp needs a 4th pod: the finding never
        // claims the limited pool drains faster.
        assert!(!limited_is_faster(&f.consequence), "{}", f.consequence);
        let mut big = with_pool(json!({"limits": {"cpu": "1"}}));
        big.burst = Some(5000);
        let f = find(&big, "nodepool-limit").expect("finding");
        assert!(f.consequence.contains("instead of"), "{}", f.consequence);
        assert!(!limited_is_faster(&f.consequence), "{}", f.consequence);
    }

    /// "it drains in about A instead of B" with A < B.
    fn limited_is_faster(consequence: &str) -> bool {
        let seconds = |text: &str| -> Option<f64> {
            text.split_whitespace()
                .next()?
                .trim_end_matches('s')
                .parse()
                .ok()
        };
        let Some(rest) = consequence.split("drains in about ").nth(1) else {
            return false;
        };
        let Some((limited, unlimited)) = rest.split_once(" instead of ") else {
            return false;
        };
        matches!((seconds(limited), seconds(unlimited)), (Some(a), Some(b)) if a < b)
    }

    #[test]
    fn the_needed_limit_is_what_the_model_accepts() {
        let mut model = Model::new(
            ScalingSettings::default(),
            NodePoolSettings::default(),
            TargetTiming::default(),
        );
        let needed = needed_millis(&model, 15);
        model.pool.cpu_limit_millis = Some(needed);
        assert!(fits(&model, 15));
        model.pool.cpu_limit_millis = Some(needed - 1);
        assert!(!fits(&model, 15));
        let f = find(
            &with_pool(json!({"limits": {"cpu": format!("{needed}m")}})),
            "nodepool-limit",
        );
        assert!(f.is_none(), "{f:?}");
        assert!(find(&with_pool(json!({})), "nodepool-limit").is_none());
        let f = find(
            &with_pool(json!({"limits": {"cpu": "100m"}})),
            "nodepool-limit",
        )
        .expect("finding");
        assert!(
            f.consequence.contains("nothing drains it"),
            "{}",
            f.consequence
        );
    }

    #[test]
    fn a_ten_percent_budget_removes_nodes_one_at_a_time() {
        let f = find(
            &with_pool(json!({"disruption": {"budgets": [{"nodes": "10%"}]}})),
            "serial-node-removal",
        )
        .expect("finding");
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(
            f.subject,
            "NodePool default: spec.disruption.budgets[0].nodes"
        );
        // 15 replicas, 7 per D2 node: 3 nodes, removed 1 at a time (ceil(10 % of 3, 2, 1)).
        assert!(
            f.consequence.contains("up to 3 nodes of 7 pods")
                && f.consequence
                    .contains("go 1 at a time: 3 passes, about 135 s (2m 15s) instead of 45 s"),
            "{}",
            f.consequence
        );
        let unset =
            find(&with_pool(json!({"disruption": {}})), "serial-node-removal").expect("finding");
        assert!(
            unset.message.contains("Karpenter's default, 10%"),
            "{}",
            unset.message
        );
        let zero = find(
            &with_pool(json!({"disruption": {"budgets": [{"nodes": "0%"}]}})),
            "serial-node-removal",
        )
        .expect("finding");
        assert_eq!(zero.severity, Severity::Warning);
    }

    #[test]
    fn a_full_budget_or_no_pool_gives_nothing() {
        assert!(find(&with_pool(json!({})), "serial-node-removal").is_none());
        assert!(find(&CheckInputs::new(walkthrough()), "serial-node-removal").is_none());
    }
}
