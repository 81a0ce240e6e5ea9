//! What the twin's pods and nodes use, for the metrics API (`metrics.k8s.io/v1beta1`, served
//! by [`crate::api`] as metrics-server serves it, so that `kubectl top` works). Nothing here is
//! measured: it is a model, and its constants are modelled, not measured.
//!
//! - Only a Running pod on a Ready node has metrics, and only a Ready node does (as
//!   metrics-server, which scrapes Ready nodes' kubelets and reports the pods they run).
//! - A consumer container (one with `AZURE_QUEUE_NAME` in its env) uses CPU in proportion to
//!   the messages its pod processes: an idle floor of a few millicores (drawn from the pod's
//!   name, [`CONSUMER_IDLE_MILLICORES`]) plus [`CONSUMER_MILLICORES_PER_MESSAGE_PER_SECOND`]
//!   times its recent rate, capped by its CPU limit (the CFS quota throttles it there). The
//!   rate is the pod's messages per simulated second over the last [`WINDOW`], as its program
//!   counted them in [`PodActivity`] (the real consumer on the scaled clock); a pod that counted
//!   none uses the queue model's rate per consumer pod (virtual clock:
//!   `messages_per_pod_second` while the queue has messages, the arrivals shared out when it
//!   is empty), or is idle when there is no model. Its memory is the sample consumer's
//!   baseline (Python with the Azure SDK, [`CONSUMER_MEMORY_MIB`] plus a few MiB drawn from the
//!   name), capped by its memory limit.
//! - Every other container (KEDA's, the node daemons', a user's nginx) uses a small fixed
//!   floor drawn from its pod's and its own name: [`OTHER_MILLICORES`] of CPU and
//!   [`OTHER_MEMORY_MIB`] of memory, capped by its limits.
//! - A node uses the sum of its pods' usage plus the system's (kubelet, containerd, the OS):
//!   [`SYSTEM_CPU_FRACTION`] of its allocatable CPU and [`SYSTEM_MEMORY_MIB`].
//!
//! Quantities are written as metrics-server writes them: CPU in nanocores, memory in bytes,
//! both in Kubernetes' canonical form (`123456789n`, `250m`, `61548Ki`).

use std::ops::{Add, RangeInclusive};
use std::time::Duration;

use serde_json::Value;

use crate::activity::PodActivity;
use crate::objects::{condition_true, cpu_millis, memory_bytes, name, namespace, str_at};
use crate::rng::Rng;
use crate::store::ObjectKey;

/// The window usage is averaged over (metrics-server's two kubelet scrapes apart); each object
/// reports it plus a few milliseconds drawn from its name, as real scrapes never line up.
pub const WINDOW: Duration = Duration::from_secs(20);

/// A consumer's CPU with no message to process (the SDK's receive loop polling): modelled.
pub const CONSUMER_IDLE_MILLICORES: RangeInclusive<u64> = 2..=4;

/// A consumer's CPU per message per second (receive, decode, write the table row, delete;
/// about 25 ms of CPU per message in Python): modelled.
pub const CONSUMER_MILLICORES_PER_MESSAGE_PER_SECOND: f64 = 25.0;

/// A consumer's resident memory before its few MiB of jitter (Python 3 with the Azure Storage
/// and Identity SDKs loaded): modelled.
pub const CONSUMER_MEMORY_MIB: u64 = 60;

/// Any other container's CPU: modelled.
pub const OTHER_MILLICORES: RangeInclusive<u64> = 1..=5;

/// Any other container's memory: modelled.
pub const OTHER_MEMORY_MIB: RangeInclusive<u64> = 10..=40;

/// The share of a node's allocatable CPU its kubelet, container runtime and OS use: modelled.
pub const SYSTEM_CPU_FRACTION: f64 = 0.05;

/// The memory a node's kubelet, container runtime and OS use: modelled.
pub const SYSTEM_MEMORY_MIB: u64 = 600;

const MIB: u64 = 1024 * 1024;
const NANOS_PER_MILLI: u64 = 1_000_000;

/// CPU and memory in use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub nanocores: u64,
    pub bytes: u64,
}

impl Add for Usage {
    type Output = Usage;
    fn add(self, other: Usage) -> Usage {
        Usage {
            nanocores: self.nanocores + other.nanocores,
            bytes: self.bytes + other.bytes,
        }
    }
}

impl Usage {
    /// CPU as metrics-server writes it (`123456789n`; `250m` when whole millicores).
    pub fn cpu_quantity(&self) -> String {
        decimal_si(self.nanocores)
    }

    /// Memory as metrics-server writes it (`61548Ki`; `60Mi` when whole MiB).
    pub fn memory_quantity(&self) -> String {
        binary_si(self.bytes)
    }

    /// Millicores, rounded down.
    pub fn millicores(&self) -> u64 {
        self.nanocores / NANOS_PER_MILLI
    }

    /// Whole MiB, rounded down.
    pub fn mebibytes(&self) -> u64 {
        self.bytes / MIB
    }
}

/// Nanocores in Kubernetes' canonical decimal form: the largest of `n`, `u`, `m`, cores, `k`
/// that keeps it whole.
fn decimal_si(nanocores: u64) -> String {
    canonical_quantity(nanocores, 1000, &["n", "u", "m", "", "k", "M"])
}

/// Bytes in Kubernetes' canonical binary form: the largest of bytes, `Ki`, `Mi`, `Gi`, `Ti`
/// that keeps it whole.
fn binary_si(bytes: u64) -> String {
    canonical_quantity(bytes, 1024, &["", "Ki", "Mi", "Gi", "Ti"])
}

/// `value` (in units of the first suffix) with the largest of `suffixes`, each `base` times the
/// one before, that keeps it whole.
fn canonical_quantity(value: u64, base: u64, suffixes: &[&str]) -> String {
    if value == 0 {
        return "0".to_owned();
    }
    let mut value = value;
    let mut suffixes = suffixes.iter().peekable();
    while let Some(suffix) = suffixes.next() {
        if !value.is_multiple_of(base) || suffixes.peek().is_none() {
            return format!("{value}{suffix}");
        }
        value /= base;
    }
    value.to_string()
}

/// The window `object_name`'s metrics report: [`WINDOW`] plus 0–99 ms drawn from the name.
pub fn window_of(object_name: &str) -> Duration {
    let jitter = Rng::derived(0, &["metrics-window", object_name]).next_u64() % 100;
    WINDOW + Duration::from_millis(jitter)
}

/// A duration as Go prints one (`20.05s`, `20s`), as metrics-server's `window`.
pub fn go_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    let (seconds, fraction) = (millis / 1000, millis % 1000);
    if fraction == 0 {
        format!("{seconds}s")
    } else {
        let fraction = format!("{fraction:03}");
        format!("{seconds}.{}s", fraction.trim_end_matches('0'))
    }
}

/// True for a node metrics-server would report: a Ready one.
pub fn node_has_metrics(node: &Value) -> bool {
    condition_true(node, "Ready")
}

/// True for a pod metrics-server would report, given whether its node is Ready: Running on a
/// Ready node.
pub fn pod_has_metrics(pod: &Value, node_ready: impl Fn(&str) -> bool) -> bool {
    str_at(pod, "/status/phase") == Some("Running")
        && str_at(pod, "/spec/nodeName").is_some_and(node_ready)
}

/// True for a container that runs the queue consumer (`AZURE_QUEUE_NAME` in its env).
fn is_consumer_container(container: &Value) -> bool {
    container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|e| e.get("name").and_then(Value::as_str) == Some("AZURE_QUEUE_NAME"))
}

/// A draw from `range`, repeatable from `parts`, with a fraction of a unit on top (in
/// `unit`s of the result): a usage that looks measured but never changes.
fn drawn(parts: &[&str], range: &RangeInclusive<u64>, unit: u64) -> u64 {
    let mut rng = Rng::derived(0, parts);
    let span = range.end() - range.start() + 1;
    let whole = range.start() + rng.next_u64() % span;
    whole * unit + rng.next_u64() % unit
}

/// `usage` capped by the container's limit of `resource` (`to_units` reads the quantity).
fn capped(container: &Value, resource: &str, usage: u64, to_units: impl Fn(&Value) -> u64) -> u64 {
    match container.pointer(&format!("/resources/limits/{resource}")) {
        Some(limit) if to_units(limit) > 0 => usage.min(to_units(limit)),
        _ => usage,
    }
}

/// Messages per simulated second the consumer pod `key` processes: what its program counted
/// over the last [`WINDOW`], else the queue model's rate, else none.
pub fn consumer_rate(activity: &PodActivity, key: &ObjectKey) -> f64 {
    activity
        .processed_rate(key, WINDOW)
        .or_else(|| activity.modelled_rate())
        .unwrap_or(0.0)
        .max(0.0)
}

/// One container's usage, given its pod's processing rate (messages per second).
pub fn container_usage(pod: &Value, container: &Value, rate: f64) -> Usage {
    let (pod_ns, pod_name) = (namespace(pod), name(pod));
    let container_name = container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let parts = |what: &'static str| [what, pod_ns, pod_name, container_name];
    let (nanocores, bytes) = if is_consumer_container(container) {
        let idle = drawn(
            &parts("consumer-cpu"),
            &CONSUMER_IDLE_MILLICORES,
            NANOS_PER_MILLI,
        );
        let busy = CONSUMER_MILLICORES_PER_MESSAGE_PER_SECOND * rate * NANOS_PER_MILLI as f64;
        let memory = drawn(
            &parts("consumer-memory"),
            &(CONSUMER_MEMORY_MIB..=CONSUMER_MEMORY_MIB + 5),
            MIB,
        );
        (idle + busy.round() as u64, memory)
    } else {
        (
            drawn(&parts("cpu"), &OTHER_MILLICORES, NANOS_PER_MILLI),
            drawn(&parts("memory"), &OTHER_MEMORY_MIB, MIB),
        )
    };
    // Working-set bytes come in pages; metrics-server reports whole KiB.
    let bytes = bytes / 4096 * 4096;
    Usage {
        nanocores: capped(container, "cpu", nanocores, |q| {
            cpu_millis(q) * NANOS_PER_MILLI
        }),
        bytes: capped(container, "memory", bytes, |q| memory_bytes(q) as u64),
    }
}

/// Each container's usage of a pod that has metrics, in the pod's order.
pub fn pod_usage(pod: &Value, activity: &PodActivity) -> Vec<(String, Usage)> {
    let key = ObjectKey::new("pods", namespace(pod), name(pod));
    let containers: Vec<&Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let rate = if containers.iter().any(|c| is_consumer_container(c)) {
        consumer_rate(activity, &key)
    } else {
        0.0
    };
    containers
        .into_iter()
        .map(|c| {
            let container_name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            (container_name.to_owned(), container_usage(pod, c, rate))
        })
        .collect()
}

/// The sum of a pod's containers' usage.
pub fn total(containers: &[(String, Usage)]) -> Usage {
    containers
        .iter()
        .fold(Usage::default(), |sum, (_, usage)| sum + *usage)
}

/// What a node's kubelet, runtime and OS use: [`SYSTEM_CPU_FRACTION`] of its allocatable CPU
/// and [`SYSTEM_MEMORY_MIB`] plus a few MiB drawn from its name.
pub fn system_usage(node: &Value) -> Usage {
    let allocatable_millis = node
        .pointer("/status/allocatable/cpu")
        .map_or(0, cpu_millis);
    let cpu = SYSTEM_CPU_FRACTION * (allocatable_millis * NANOS_PER_MILLI) as f64;
    let memory = drawn(
        &["system-memory", name(node)],
        &(SYSTEM_MEMORY_MIB..=SYSTEM_MEMORY_MIB + 15),
        MIB,
    );
    Usage {
        nanocores: cpu.round() as u64,
        bytes: memory / 4096 * 4096,
    }
}

/// A node's usage: its system's plus its pods' (`pods`: each pod's total).
pub fn node_usage(node: &Value, pods: impl IntoIterator<Item = Usage>) -> Usage {
    pods.into_iter().fold(system_usage(node), |sum, u| sum + u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use serde_json::json;
    use std::sync::Arc;

    fn activity() -> (Arc<VirtualClock>, PodActivity) {
        let clock = Arc::new(VirtualClock::new(
            time::macros::datetime!(2026-01-01 00:00 UTC),
        ));
        (clock.clone(), PodActivity::new(clock))
    }

    fn consumer(name: &str, limits: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "aqs-demo"},
            "spec": {"nodeName": "aks-default-abcde", "containers": [{"name": "keda-queue-reader",
                "env": [{"name": "AZURE_QUEUE_NAME", "value": "aqs"}],
                "resources": {"limits": limits}}]},
            "status": {"phase": "Running"}})
    }

    fn nginx(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "web"},
            "spec": {"nodeName": "aks-default-abcde", "containers": [{"name": "nginx"}]},
            "status": {"phase": "Running"}})
    }

    #[test]
    fn consumer_cpu_grows_with_its_rate_from_an_idle_floor() {
        let pod = consumer("aqs-app-1", json!({}));
        let container = &pod["spec"]["containers"][0];
        let idle = container_usage(&pod, container, 0.0);
        assert!(
            CONSUMER_IDLE_MILLICORES.contains(&idle.millicores()),
            "{idle:?}"
        );
        for rate in [1.0, 2.0, 4.0] {
            let busy = container_usage(&pod, container, rate);
            let expected =
                idle.nanocores as f64 + CONSUMER_MILLICORES_PER_MESSAGE_PER_SECOND * rate * 1e6;
            assert_eq!(busy.nanocores, expected.round() as u64, "rate {rate}");
            assert_eq!(busy.bytes, idle.bytes, "memory does not follow the rate");
        }
        assert!((CONSUMER_MEMORY_MIB..=CONSUMER_MEMORY_MIB + 5).contains(&idle.mebibytes()));
    }

    #[test]
    fn limits_cap_what_a_consumer_uses() {
        let pod = consumer("aqs-app-2", json!({"cpu": "50m", "memory": "32Mi"}));
        let usage = container_usage(&pod, &pod["spec"]["containers"][0], 10.0);
        assert_eq!(usage.cpu_quantity(), "50m");
        assert_eq!(usage.memory_quantity(), "32Mi");
    }

    #[test]
    fn other_pods_use_a_fixed_floor_drawn_from_their_name() {
        let (_, activity) = activity();
        activity.set_modelled_rate(Some(3.0));
        let a = total(&pod_usage(&nginx("web-1"), &activity));
        assert_eq!(a, total(&pod_usage(&nginx("web-1"), &activity)));
        let floors: Vec<Usage> = (0..20)
            .map(|i| total(&pod_usage(&nginx(&format!("web-{i}")), &activity)))
            .collect();
        for usage in &floors {
            assert!(OTHER_MILLICORES.contains(&usage.millicores()), "{usage:?}");
            assert!(OTHER_MEMORY_MIB.contains(&usage.mebibytes()), "{usage:?}");
        }
        assert!(
            floors.iter().any(|u| u.millicores() != a.millicores()),
            "names draw different floors: {floors:?}"
        );
    }

    #[test]
    fn a_counted_rate_wins_over_the_model_and_the_model_over_nothing() {
        let (clock, activity) = activity();
        let busy = consumer("aqs-app-busy", json!({}));
        let idle = consumer("aqs-app-idle", json!({}));
        let idle_floor = total(&pod_usage(&idle, &activity));
        assert!(CONSUMER_IDLE_MILLICORES.contains(&idle_floor.millicores()));
        let busy_key = ObjectKey::new("pods", "aqs-demo", "aqs-app-busy");
        for second in 0..20 {
            clock.advance_to(Duration::from_secs(second));
            for _ in 0..4 {
                activity.processed(&busy_key);
            }
        }
        assert_eq!(consumer_rate(&activity, &busy_key), 4.0);
        let busy_usage = total(&pod_usage(&busy, &activity));
        assert!(
            busy_usage.millicores() >= 100,
            "4 msg/s is 100m above the floor: {busy_usage:?}"
        );
        assert_eq!(total(&pod_usage(&idle, &activity)), idle_floor);
        activity.set_modelled_rate(Some(1.0));
        let modelled = total(&pod_usage(&idle, &activity));
        assert_eq!(
            modelled.nanocores,
            idle_floor.nanocores + 25 * NANOS_PER_MILLI
        );
        assert_eq!(total(&pod_usage(&busy, &activity)), busy_usage);
    }

    #[test]
    fn a_node_uses_its_pods_and_its_system() {
        let (_, activity) = activity();
        let node = json!({"metadata": {"name": "aks-default-abcde"},
            "status": {"allocatable": {"cpu": "1900m", "memory": "5Gi"},
                "conditions": [{"type": "Ready", "status": "True"}]}});
        let system = system_usage(&node);
        assert_eq!(system.cpu_quantity(), "95m", "5% of 1900m");
        assert!((SYSTEM_MEMORY_MIB..=SYSTEM_MEMORY_MIB + 15).contains(&system.mebibytes()));
        let pods: Vec<Usage> = [nginx("web-1"), consumer("aqs-app-1", json!({}))]
            .iter()
            .map(|p| total(&pod_usage(p, &activity)))
            .collect();
        let usage = node_usage(&node, pods.clone());
        assert_eq!(usage, system + pods[0] + pods[1]);
        assert!(node_has_metrics(&node));
        assert!(!node_has_metrics(&json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"}]}})));
    }

    #[test]
    fn only_running_pods_on_ready_nodes_have_metrics() {
        let running = nginx("web-1");
        assert!(pod_has_metrics(&running, |n| n == "aks-default-abcde"));
        assert!(!pod_has_metrics(&running, |_| false));
        let mut pending = running.clone();
        pending["status"]["phase"] = json!("Pending");
        assert!(!pod_has_metrics(&pending, |_| true));
    }

    #[test]
    fn quantities_and_windows_are_written_as_metrics_server_writes_them() {
        let usage = Usage {
            nanocores: 123_456_789,
            bytes: 61_548 * 1024,
        };
        assert_eq!(usage.cpu_quantity(), "123456789n");
        assert_eq!(usage.memory_quantity(), "61548Ki");
        let whole = Usage {
            nanocores: 250_000_000,
            bytes: 60 * MIB,
        };
        assert_eq!(whole.cpu_quantity(), "250m");
        assert_eq!(whole.memory_quantity(), "60Mi");
        assert_eq!(Usage::default().cpu_quantity(), "0");
        assert_eq!(decimal_si(2_000_000_000), "2");
        assert_eq!(decimal_si(1_500_000), "1500u");
        assert_eq!(go_duration(Duration::from_millis(20_050)), "20.05s");
        assert_eq!(go_duration(Duration::from_secs(20)), "20s");
        let window = window_of("aks-default-abcde");
        assert!(window >= WINDOW && window < WINDOW + Duration::from_millis(100));
        assert_eq!(window, window_of("aks-default-abcde"));
    }
}
