//! What the twin's consumer pods run: the real consumer from [`crate::workload`], one per
//! Running pod, against the harness's storage account and endpoints (the real Azurite) with
//! retries in simulated time ([`in_cluster_target`]), and the real queue count the twin's KEDA
//! reads. A pod processes one message per simulated second as the sample's pods do,
//! paced by the twin's clock, which the [`ClockGovernor`] slows when the pods' storage calls lag.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edw_twin::activity::PodActivity;
use edw_twin::driver::{BoxFuture, PodExit, PodProgram, PodRuntime, QueueProbe};
use edw_twin::store::ObjectKey;
use tokio_util::sync::CancellationToken;

use crate::storage::{Storage, StorageTarget};
use crate::twin_governor::ClockGovernor;
use crate::workload::{
    consume, poison_queue_name, ConsumerOptions, ConsumerReport, Pacer, SliceCommand, StopWhen,
    WorkClock,
};

/// What one pod's consumer did (or why it stopped).
pub type PodReport = (ObjectKey, Result<ConsumerReport, String>);

/// Runs the real consumer for each Running consumer pod.
pub struct ConsumerPods {
    storage: Storage,
    governor: Arc<ClockGovernor>,
    runtime: tokio::runtime::Handle,
    running: Mutex<HashMap<ObjectKey, CancellationToken>>,
    reports: Arc<Mutex<Vec<PodReport>>>,
    activity: Option<PodActivity>,
    /// Programs that ended by themselves (a load Job's producers), for the twin's kubelet.
    exits: Arc<Mutex<Vec<PodExit>>>,
}

impl ConsumerPods {
    /// Consumers on `storage`, one simulated second per message on the governed clock.
    pub fn new(storage: Storage, governor: Arc<ClockGovernor>) -> Self {
        ConsumerPods {
            storage,
            governor,
            runtime: tokio::runtime::Handle::current(),
            running: Mutex::new(HashMap::new()),
            reports: Arc::default(),
            activity: None,
            exits: Arc::default(),
        }
    }

    /// The same pods, writing their lines (`kubectl logs`) and processed counts (the metrics
    /// API) to the twin's `activity`.
    pub fn with_activity(mut self, activity: PodActivity) -> Self {
        self.activity = Some(activity);
        self
    }

    /// Pods whose consumer is running now.
    pub fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// What each finished consumer did.
    pub fn reports(&self) -> Vec<PodReport> {
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Messages processed by finished consumers.
    pub fn processed(&self) -> u64 {
        self.reports()
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .map(|r| r.processed)
            .sum()
    }
}

impl ConsumerPods {
    /// A load Job's pod: the real producer sends its slice (the rate per simulated second, on
    /// the governed clock's scale), writes the report line the harness reads from the pod's
    /// log, and exits 0 (2 when it cannot start: no index, no queue name).
    fn start_producer(
        &self,
        pod: &ObjectKey,
        program: &PodProgram,
        command: Result<SliceCommand, String>,
    ) {
        let journal = self.activity.as_ref().map(|a| a.journal(pod));
        let log = move |line: String| {
            if let Some(journal) = &journal {
                journal.log(line);
            }
        };
        let index = program
            .env
            .get("JOB_COMPLETION_INDEX")
            .map(|i| {
                i.parse::<u64>()
                    .map_err(|_| format!("JOB_COMPLETION_INDEX {i:?} is not a number"))
            })
            .unwrap_or_else(|| {
                Err("--slices needs JOB_COMPLETION_INDEX (set by an Indexed Job)".to_owned())
            });
        let queue_name = program.env.get("AZURE_QUEUE_NAME").cloned();
        let exits = self.exits.clone();
        let key = pod.clone();
        let (command, index, queue_name) = match (command, index, queue_name) {
            (Ok(command), Ok(index), Some(queue)) => (command, index, queue),
            (command, index, queue) => {
                let why = command
                    .err()
                    .or(index.err())
                    .or(queue
                        .is_none()
                        .then(|| "AZURE_QUEUE_NAME is not set".to_owned()))
                    .unwrap_or_default();
                log(format!("error: {why}"));
                exits
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(PodExit {
                        pod: key,
                        exit_code: 2,
                        message: why,
                    });
                return;
            }
        };
        let queue = self.storage.queue(&queue_name);
        let scale = self.governor.scale();
        // Its sends slow the governed clock when storage lags, as the consumers' calls do: a
        // burst with no consumer running yet would otherwise let the clock (and the Job's
        // deadline) run at full scale however slowly the messages go in.
        let pacer = Pacer(self.governor.clone());
        let cancel = CancellationToken::new();
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pod.clone(), cancel.clone());
        self.runtime.spawn(async move {
            let (code, message) = match crate::workload::send_slice(
                &queue,
                &command,
                index,
                scale,
                Some(&pacer),
                &cancel,
            )
            .await
            {
                Ok(report) => {
                    log(format!(
                        "slice {index} of {}: sent {} of {} messages (from {}); {} failed",
                        command.slices,
                        report.sent_count,
                        report.slice.count,
                        report.slice.first,
                        report.failed.len()
                    ));
                    log(report.line());
                    // As `edw produce --slices`: 0 once the report is written; the
                    // harness judges the load from the reports.
                    (0, report.stopped.clone().unwrap_or_default())
                }
                Err(e) => {
                    log(format!("error: {e}"));
                    (2, e.to_string())
                }
            };
            if !cancel.is_cancelled() {
                exits
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(PodExit {
                        pod: key,
                        exit_code: code,
                        message,
                    });
            }
        });
    }
}

impl PodRuntime for ConsumerPods {
    fn start(&self, pod: &ObjectKey, program: &PodProgram) {
        if let Some(command) = SliceCommand::parse(&program.command) {
            self.start_producer(pod, program, command);
            return;
        }
        let env = &program.env;
        let (Some(queue_name), Some(table_name)) =
            (env.get("AZURE_QUEUE_NAME"), env.get("AZURE_TABLE_NAME"))
        else {
            tracing::warn!(pod = %pod.name, "consumer pod without AZURE_QUEUE_NAME / AZURE_TABLE_NAME: the sample's consumer would exit");
            return;
        };
        let queue = self.storage.queue(queue_name);
        let poison = self.storage.queue(&poison_queue_name(queue_name));
        let table = self.storage.table(table_name);
        let scale = self.governor.scale();
        let second = Duration::from_secs_f64(1.0 / scale);
        let options = ConsumerOptions {
            workers: 1,
            batch: 1,
            // The sample's 60 s, in simulated time at the clock's scale (the service needs at
            // least 1 s).
            visibility_timeout: Duration::from_secs_f64((60.0 / scale).ceil().max(1.0)),
            pacer: Some(Pacer(self.governor.clone())),
            idle_poll: second.max(Duration::from_millis(20)),
            stop: StopWhen::Cancelled,
            journal: self.activity.as_ref().map(|a| a.journal(pod)),
            ..ConsumerOptions::default()
        };
        if let Some(journal) = &options.journal {
            journal.log(format!(
                "consumer started: queue {queue_name}, table {table_name}, poison queue {}, one message at a time",
                poison_queue_name(queue_name)
            ));
        }
        let cancel = CancellationToken::new();
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pod.clone(), cancel.clone());
        let reports = self.reports.clone();
        let key = pod.clone();
        self.runtime.spawn(async move {
            let _ = table.create().await;
            let _ = poison.create().await;
            let result = consume(&queue, &table, &poison, &options, &cancel)
                .await
                .map_err(|e| crate::error_chain::text(&e));
            if let Err(error) = &result {
                tracing::warn!(pod = %key.name, %error, "consumer pod stopped with an error");
            }
            if let Some(journal) = &options.journal {
                journal.log(match &result {
                    Ok(report) => {
                        format!("consumer stopped: {} messages processed", report.processed)
                    }
                    Err(error) => format!("consumer stopped with an error: {error}"),
                });
            }
            reports
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((key, result));
        });
    }

    fn exited(&self) -> Vec<PodExit> {
        std::mem::take(&mut *self.exits.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn stop(&self, pod: &ObjectKey) {
        if let Some(cancel) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(pod)
        {
            cancel.cancel();
        }
    }
}

/// The storage of what runs inside the simulated cluster (the consumer pods, and KEDA reading
/// the queue): `target` with its retry backoff (and a service's `Retry-After`) in the twin's
/// simulated time, as those programs wait in the real system's time. The harness's own reads
/// keep real-time backoff. KEDA's reads with real-time backoff held the governed clock near
/// real time whenever few pods ran: a retried read of a partition took 400-1,000 ms, and with
/// few calls it set the pace.
pub fn in_cluster_target(target: &StorageTarget, scale: f64) -> StorageTarget {
    StorageTarget {
        retry: target.retry.in_simulated_time(scale),
        ..target.clone()
    }
}

/// The real queues' approximate counts, for the twin's KEDA and HPA (the queue the
/// ScaledObject names, on this storage). A slow read slows the governed clock like a slow pod.
pub struct StorageQueueProbe {
    storage: Storage,
    governor: Arc<ClockGovernor>,
}

impl StorageQueueProbe {
    pub fn new(storage: Storage, governor: Arc<ClockGovernor>) -> Self {
        StorageQueueProbe { storage, governor }
    }
}

impl QueueProbe for StorageQueueProbe {
    fn approximate_count<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let ticket = self.governor.started();
            let count = self.storage.queue(queue).approximate_count().await;
            self.governor.finished(ticket);
            // A queue the twin's storage does not hold (the ScaledObject names another
            // account's queue, or the harness and the twin use different storage) is a scaler
            // error, as KEDA reports it: KEDAScalerFailed, Ready=False.
            count.map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster_storage_backs_off_in_simulated_time_and_keeps_the_rest() {
        let target = StorageTarget::development_partitioned(
            &[
                "http://127.0.0.1:1/a".to_owned(),
                "http://127.0.0.1:2/a".to_owned(),
            ],
            "http://127.0.0.1:3/a",
        );
        let inside = in_cluster_target(&target, 20.0);
        assert_eq!(inside.retry, target.retry.in_simulated_time(20.0));
        assert_ne!(inside.retry, target.retry, "x20 shortens the backoff");
        // Only the retry changes.
        assert_eq!(
            (
                &inside.account,
                &inside.queue_endpoint,
                &inside.table_endpoint
            ),
            (
                &target.account,
                &target.queue_endpoint,
                &target.table_endpoint
            )
        );
        assert_eq!(inside.queue_partitions, target.queue_partitions);
    }
}
