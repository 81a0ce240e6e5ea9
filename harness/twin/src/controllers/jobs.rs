//! The Job controller (kube-controller-manager's `job-controller`, batch/v1 Jobs of Kubernetes
//! 1.33): it keeps up to `parallelism` pods running, one per index not yet completed for an
//! Indexed Job, counts each pod that ends once (`succeeded`, `failed`, `completedIndexes`),
//! replaces a failed pod after the failure back-off until `backoffLimit` is exceeded or
//! `activeDeadlineSeconds` passes, and ends the Job with upstream's conditions: `FailureTarget`
//! then `Failed`, or `SuccessCriteriaMet` then `Complete`, the terminal one once no pod of the
//! Job is left running. Pods of a deleted Job go by garbage collection (their owner reference).
//!
//! Not modelled: pod failure policies, `backoffLimitPerIndex`, success policies,
//! `ttlSecondsAfterFinished`, `podReplacementPolicy: Failed`, the `batch.kubernetes.io/job-tracking`
//! finalizer (the twin counts ended pods in memory instead), and the creation slow start.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::workloads::is_completed;
use crate::engine::{Engine, Task};
use crate::objects::{
    condition_true, i64_at, is_deleting, name, namespace, owned_by, set_condition, str_at, uid,
};
use crate::store::{EventType, ObjectKey, WatchEvent};

/// The annotation and label with an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable with an Indexed Job pod's index.
const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
const COMPONENT: &str = "job-controller";
/// The first replacement of a failed pod waits this long; each further failure doubles it
/// (`DefaultJobPodFailureBackOff`), up to [`MAX_FAILURE_BACKOFF`].
const FAILURE_BACKOFF: Duration = Duration::from_secs(10);
const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(360);

/// What the controller remembers of the Jobs between syncs.
#[derive(Debug, Default)]
pub struct JobState {
    /// The pods already counted in each Job's status, by the Job's uid (the upstream
    /// controller keeps this with finalizers; the twin keeps it here).
    counted: std::collections::HashMap<String, HashSet<String>>,
    /// When each Job's last pod failed (simulated time), for the failure back-off.
    last_failure: std::collections::HashMap<ObjectKey, Duration>,
}

/// The spec fields the controller reads.
#[derive(Debug, Clone, PartialEq)]
struct JobSpec {
    parallelism: i64,
    completions: Option<i64>,
    indexed: bool,
    backoff_limit: i64,
    suspend: bool,
    active_deadline: Option<Duration>,
}

impl JobSpec {
    fn of(job: &Value) -> JobSpec {
        JobSpec {
            parallelism: i64_at(job, "/spec/parallelism").unwrap_or(1).max(0),
            completions: i64_at(job, "/spec/completions").map(|c| c.max(0)),
            indexed: str_at(job, "/spec/completionMode") == Some("Indexed"),
            backoff_limit: i64_at(job, "/spec/backoffLimit").unwrap_or(6).max(0),
            suspend: job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true),
            active_deadline: i64_at(job, "/spec/activeDeadlineSeconds")
                .map(|s| Duration::from_secs(s.max(0) as u64)),
        }
    }
}

/// True once a Job has its terminal condition.
fn finished(job: &Value) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

/// The Job a pod belongs to (its controller reference of kind Job): (name, uid).
fn owning_job(pod: &Value) -> Option<(String, String)> {
    pod.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| {
            r.get("kind").and_then(Value::as_str) == Some("Job")
                && r.get("controller").and_then(Value::as_bool) == Some(true)
        })
        .map(|r| {
            let text = |field: &str| {
                r.get(field)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (text("name"), text("uid"))
        })
}

/// True for a pod a Job created.
pub fn is_job_pod(pod: &Value) -> bool {
    owning_job(pod).is_some()
}

/// An Indexed Job pod's index (its annotation).
fn pod_index(pod: &Value) -> Option<i64> {
    pod.pointer("/metadata/annotations")?
        .get(COMPLETION_INDEX)?
        .as_str()?
        .parse()
        .ok()
}

/// `completedIndexes` as upstream writes it: ascending, runs of consecutive indexes as
/// `first-last` ("0-2,4").
pub fn format_indexes(indexes: &BTreeSet<i64>) -> String {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &index in indexes {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == index => *last = index,
            _ => runs.push((index, index)),
        }
    }
    runs.iter()
        .map(|&(first, last)| {
            if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The indexes of a `completedIndexes` text; what cannot be read is left out.
pub fn parse_indexes(text: &str) -> BTreeSet<i64> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .filter_map(|part| {
            let (first, last) = part.split_once('-').unwrap_or((part, part));
            let (first, last) = (
                first.trim().parse::<i64>().ok()?,
                last.trim().parse::<i64>().ok()?,
            );
            Some(first..=last)
        })
        .flatten()
        .collect()
}

/// A Job changed: it is synced (its first pods after the controller's creation delay).
pub fn on_job(engine: &mut Engine, change: &WatchEvent) {
    if change.event_type == EventType::Deleted {
        engine.state.jobs.counted.remove(uid(&change.object));
        engine.state.jobs.last_failure.remove(&change.key);
        return;
    }
    if is_deleting(&change.object) || finished(&change.object) {
        return;
    }
    let delay = if change.event_type == EventType::Added {
        engine.params.pod_create_delay
    } else {
        Duration::ZERO
    };
    engine.schedule_in(
        delay,
        Task::JobSync {
            job: change.key.clone(),
        },
    );
}

/// A pod of a Job changed: one that ended (or went without ending) is counted once, and the
/// Job is synced.
pub fn on_pod(engine: &mut Engine, change: &WatchEvent) {
    let Some((job_name, job_uid)) = owning_job(&change.object) else {
        return;
    };
    let job_key = ObjectKey::new("jobs.batch", &change.key.namespace, &job_name);
    let gone = change.event_type == EventType::Deleted;
    count_ended(engine, &job_key, &job_uid, &change.object, gone);
    engine.schedule_in(Duration::ZERO, Task::JobSync { job: job_key });
}

/// Adds an ended pod to its Job's status: a Succeeded pod completes its index (or one more
/// completion), a Failed pod, or one gone before it ended, is a failure.
fn count_ended(engine: &mut Engine, job_key: &ObjectKey, job_uid: &str, pod: &Value, gone: bool) {
    let Some(job) = engine.store.get(job_key) else {
        return;
    };
    if uid(&job) != job_uid || finished(&job) {
        return;
    }
    let succeeded = match str_at(pod, "/status/phase") {
        Some("Succeeded") => true,
        Some("Failed") => false,
        // A pod deleted before it ended is a failure, unless the Job stopped it (suspended,
        // or done with all its completions).
        _ if gone => {
            if condition_true(&job, "Suspended") || condition_true(&job, "SuccessCriteriaMet") {
                return;
            }
            false
        }
        _ => return,
    };
    let counted = engine
        .state
        .jobs
        .counted
        .entry(job_uid.to_owned())
        .or_default();
    if !counted.insert(uid(pod).to_owned()) {
        return;
    }
    let spec = JobSpec::of(&job);
    if !succeeded {
        let now = engine.now();
        engine.state.jobs.last_failure.insert(job_key.clone(), now);
    }
    let _ = engine.store.update(job_key, |o| {
        if !o.get("status").is_some_and(Value::is_object) {
            o["status"] = json!({});
        }
        let status = &mut o["status"];
        if !succeeded {
            let failed = i64_at(status, "/failed").unwrap_or(0) + 1;
            status["failed"] = json!(failed);
            return;
        }
        if spec.indexed {
            let mut completed = parse_indexes(
                status
                    .get("completedIndexes")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            );
            let in_range = |i: &i64| *i >= 0 && *i < spec.completions.unwrap_or(0);
            match pod_index(pod).filter(in_range) {
                Some(index) if completed.insert(index) => {
                    status["completedIndexes"] = json!(format_indexes(&completed));
                    status["succeeded"] = json!(completed.len());
                }
                _ => {}
            }
        } else {
            let done = i64_at(status, "/succeeded").unwrap_or(0) + 1;
            status["succeeded"] = json!(done);
        }
    });
}

/// The pods a Job owns, by its uid.
fn owned_pods(engine: &Engine, job: &Value) -> Vec<Arc<Value>> {
    let (pods, _) = engine.store.list("pods", Some(namespace(job)), None, None);
    let owner = uid(job);
    pods.into_iter().filter(|p| owned_by(p, owner)).collect()
}

/// How long a Job waits before replacing a pod after `failures` failures.
fn failure_backoff(failures: i64) -> Duration {
    let doublings = failures.saturating_sub(1).clamp(0, 16) as u32;
    FAILURE_BACKOFF
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_FAILURE_BACKOFF)
}

/// Simulated time of a timestamp the twin wrote.
fn simulated_at(engine: &Engine, timestamp: &str) -> Option<Duration> {
    let at = crate::clock::parse_timestamp(timestamp)?;
    let since_epoch = at - engine.clock.epoch();
    Duration::try_from(since_epoch).ok()
}

/// Why a Job fails now, if it does: (reason, message).
fn failure_of(engine: &Engine, job: &Value, spec: &JobSpec) -> Option<(String, String)> {
    if let Some(target) = crate::objects::condition(job, "FailureTarget")
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
    {
        let text = |f: &str| {
            target
                .get(f)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        return Some((text("reason"), text("message")));
    }
    if i64_at(job, "/status/failed").unwrap_or(0) > spec.backoff_limit {
        return Some((
            "BackoffLimitExceeded".into(),
            "Job has reached the specified backoff limit".into(),
        ));
    }
    let started = str_at(job, "/status/startTime").and_then(|t| simulated_at(engine, t));
    if let (Some(started), Some(deadline)) = (started, spec.active_deadline) {
        if engine.now() >= started + deadline {
            return Some((
                "DeadlineExceeded".into(),
                "Job was active longer than specified deadline".into(),
            ));
        }
    }
    None
}

/// A Job condition: upstream sets `lastProbeTime` with `lastTransitionTime`.
fn set_job_condition(
    job: &mut Value,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let probed = crate::objects::condition(job, type_)
        .and_then(|c| c.get("lastProbeTime"))
        .cloned();
    let changed = set_condition(job, type_, status, reason, message, now);
    let probed = match probed {
        Some(at) if !changed => at,
        _ => json!(now),
    };
    if let Some(conditions) = job
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for condition in conditions
            .iter_mut()
            .filter(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        {
            condition["lastProbeTime"] = probed.clone();
        }
    }
}

/// One sync of a Job: end it, or bring its pods to what it wants, and write its status.
pub fn sync(engine: &mut Engine, key: &ObjectKey) {
    let Some(job) = engine.store.get(key) else {
        return;
    };
    if is_deleting(&job) || finished(&job) {
        return;
    }
    let spec = JobSpec::of(&job);
    let now = engine.clock.wall_rfc3339();
    let pods = owned_pods(engine, &job);
    let mut active: Vec<Arc<Value>> = pods
        .iter()
        .filter(|p| !is_completed(p) && !is_deleting(p))
        .cloned()
        .collect();
    let succeeded = i64_at(&job, "/status/succeeded").unwrap_or(0);
    let completed = parse_indexes(str_at(&job, "/status/completedIndexes").unwrap_or(""));
    let complete = match (spec.indexed, spec.completions) {
        (true, Some(completions)) => completed.len() as i64 >= completions,
        (_, Some(completions)) => succeeded >= completions,
        (_, None) => succeeded > 0 && active.is_empty(),
    };
    let failure = failure_of(engine, &job, &spec);
    let mut events: Vec<(&str, String, String)> = Vec::new();
    let stopping = failure.is_some() || complete || spec.suspend;
    if stopping {
        for pod in active.drain(..) {
            delete_pod(engine, &job, &pod);
        }
    } else {
        create_pods(engine, &job, &spec, &active, &completed);
        active = owned_pods(engine, &job)
            .into_iter()
            .filter(|p| !is_completed(p) && !is_deleting(p))
            .collect();
    }
    let pods = owned_pods(engine, &job);
    let terminating = pods
        .iter()
        .filter(|p| is_deleting(p) && !is_completed(p))
        .count();
    let ready = active.iter().filter(|p| condition_true(p, "Ready")).count();
    let quiet = active.is_empty() && terminating == 0;
    let updated = engine.store.update(key, |o| {
        if !o.get("status").is_some_and(Value::is_object) {
            o["status"] = json!({});
        }
        if spec.suspend {
            if set_suspended(o, true, &now) {
                events.push(("Normal", "Suspended".into(), "Job suspended".into()));
            }
        } else {
            if set_suspended(o, false, &now) {
                events.push(("Normal", "Resumed".into(), "Job resumed".into()));
            }
            if o.pointer("/status/startTime").is_none() {
                o["status"]["startTime"] = json!(now);
            }
        }
        let status = &mut o["status"];
        match active.len() {
            0 => {
                status.as_object_mut().map(|s| s.remove("active"));
            }
            n => status["active"] = json!(n),
        }
        status["ready"] = json!(ready);
        status["terminating"] = json!(terminating);
        status["uncountedTerminatedPods"] = json!({});
        if let Some((reason, message)) = &failure {
            if !condition_true(o, "FailureTarget") {
                events.push(("Warning", reason.clone(), message.clone()));
            }
            set_job_condition(o, "FailureTarget", "True", reason, message, &now);
            if quiet {
                set_job_condition(o, "Failed", "True", reason, message, &now);
            }
        } else if complete {
            let message = "Reached expected number of succeeded pods";
            set_job_condition(
                o,
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                message,
                &now,
            );
            if quiet {
                set_job_condition(o, "Complete", "True", "CompletionsReached", message, &now);
                o["status"]["completionTime"] = json!(now);
                events.push(("Normal", "Completed".into(), "Job completed".into()));
            }
        }
    });
    if let Ok(Some(job)) = &updated {
        for (type_, reason, message) in &events {
            engine.emit(job, type_, reason, message, COMPONENT);
        }
        schedule_deadline(engine, key, job, &spec);
    }
}

/// Sets (or clears) the `Suspended` condition; true when it turned True or back to False.
fn set_suspended(job: &mut Value, suspended: bool, now: &str) -> bool {
    if suspended {
        if condition_true(job, "Suspended") {
            return false;
        }
        set_job_condition(
            job,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        );
        true
    } else {
        if !condition_true(job, "Suspended") {
            return false;
        }
        set_job_condition(job, "Suspended", "False", "JobResumed", "Job resumed", now);
        true
    }
}

/// A Job with `activeDeadlineSeconds` is synced again when its deadline passes.
fn schedule_deadline(engine: &mut Engine, key: &ObjectKey, job: &Value, spec: &JobSpec) {
    let Some(deadline) = spec.active_deadline else {
        return;
    };
    if finished(job) {
        return;
    }
    if let Some(started) = str_at(job, "/status/startTime").and_then(|t| simulated_at(engine, t)) {
        engine.schedule_at(started + deadline, Task::JobDeadline { job: key.clone() });
    }
}

fn delete_pod(engine: &mut Engine, job: &Value, pod: &Value) {
    let pod_key = ObjectKey::new("pods", namespace(pod), name(pod));
    if engine.store.delete(&pod_key, None).is_ok() {
        let message = format!("Deleted pod: {}", name(pod));
        engine.emit(job, "Normal", "SuccessfulDelete", &message, COMPONENT);
    }
}

/// Creates the pods the Job lacks: up to `parallelism` running, as many as completions are
/// left (NonIndexed) or one for each index neither completed nor running, lowest first
/// (Indexed); after a failure, not before the back-off has passed.
fn create_pods(
    engine: &mut Engine,
    job: &Value,
    spec: &JobSpec,
    active: &[Arc<Value>],
    completed: &BTreeSet<i64>,
) {
    let failed = i64_at(job, "/status/failed").unwrap_or(0);
    let key = ObjectKey::new("jobs.batch", namespace(job), name(job));
    if failed > 0 {
        if let Some(at) = engine.state.jobs.last_failure.get(&key).copied() {
            let ready_at = at + failure_backoff(failed);
            if engine.now() < ready_at {
                engine.schedule_at(ready_at, Task::JobBackoff { job: key });
                return;
            }
        }
    }
    let room = (spec.parallelism - active.len() as i64).max(0);
    let indexes: Vec<Option<i64>> = if spec.indexed {
        let running: HashSet<i64> = active.iter().filter_map(|p| pod_index(p)).collect();
        (0..spec.completions.unwrap_or(0))
            .filter(|i| !completed.contains(i) && !running.contains(i))
            .take(room as usize)
            .map(Some)
            .collect()
    } else {
        let succeeded = i64_at(job, "/status/succeeded").unwrap_or(0);
        let wanted = match spec.completions {
            Some(completions) => spec.parallelism.min(completions - succeeded),
            None if succeeded > 0 => 0,
            None => spec.parallelism,
        };
        let missing = (wanted - active.len() as i64).max(0);
        vec![None; missing as usize]
    };
    for index in indexes {
        let pod = pod_for(engine, job, index);
        if let Ok(created) = engine.store.create("pods", namespace(job), pod) {
            let message = format!("Created pod: {}", name(&created));
            engine.emit(job, "Normal", "SuccessfulCreate", &message, COMPONENT);
        }
    }
}

/// A pod from the Job's template (with the admission defaults every controller's pods get);
/// an Indexed Job's pod carries its index as upstream puts it: annotation and label, hostname
/// `<job>-<index>`, and `JOB_COMPLETION_INDEX` in every container.
fn pod_for(engine: &Engine, job: &Value, index: Option<i64>) -> Value {
    let mut pod = super::workloads::pod_from_template(engine, job);
    let Some(index) = index else {
        return pod;
    };
    let index_text = index.to_string();
    pod["metadata"]["generateName"] = json!(format!("{}-{index}-", name(job)));
    if !pod["metadata"]
        .get("annotations")
        .is_some_and(Value::is_object)
    {
        pod["metadata"]["annotations"] = json!({});
    }
    pod["metadata"]["annotations"][COMPLETION_INDEX] = json!(index_text);
    if !pod["metadata"].get("labels").is_some_and(Value::is_object) {
        pod["metadata"]["labels"] = json!({});
    }
    pod["metadata"]["labels"][COMPLETION_INDEX] = json!(index_text);
    if pod.pointer("/spec/hostname").is_none() {
        pod["spec"]["hostname"] = json!(format!("{}-{index}", name(job)));
    }
    let env_entry = json!({
        "name": COMPLETION_INDEX_ENV,
        "valueFrom": {"fieldRef": {
            "apiVersion": "v1",
            "fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']"),
        }},
    });
    for list in ["initContainers", "containers"] {
        let Some(containers) = pod["spec"].get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers {
            if !container.get("env").is_some_and(Value::is_array) {
                container["env"] = json!([]);
            }
            if let Some(env) = container["env"].as_array_mut() {
                let present = env
                    .iter()
                    .any(|e| e.get("name").and_then(Value::as_str) == Some(COMPLETION_INDEX_ENV));
                if !present {
                    env.push(env_entry.clone());
                }
            }
        }
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_are_written_and_read_as_ranges() {
        let set = |v: &[i64]| v.iter().copied().collect::<BTreeSet<i64>>();
        assert_eq!(format_indexes(&set(&[0, 1, 2, 4])), "0-2,4");
        assert_eq!(format_indexes(&set(&[3])), "3");
        assert_eq!(format_indexes(&set(&[0, 1, 5, 6, 9])), "0-1,5-6,9");
        assert_eq!(format_indexes(&set(&[])), "");
        assert_eq!(parse_indexes("0-2,4"), set(&[0, 1, 2, 4]));
        assert_eq!(parse_indexes(""), set(&[]));
        assert_eq!(parse_indexes("x,3-1,7"), set(&[7]));
    }

    #[test]
    fn failures_back_off_doubling_up_to_six_minutes() {
        assert_eq!(failure_backoff(1), Duration::from_secs(10));
        assert_eq!(failure_backoff(2), Duration::from_secs(20));
        assert_eq!(failure_backoff(4), Duration::from_secs(80));
        assert_eq!(failure_backoff(40), MAX_FAILURE_BACKOFF);
    }
}
