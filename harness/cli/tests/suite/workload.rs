//! The sample's producer and consumer against real Azurite: exact delivery with several
//! workers, redelivery after a crash between write and delete, and the poison queue.

use std::time::Duration;

use crate::support::{eventually, Env};
use edw_engine::workload::{
    consume, label, message_text, produce, reconcile, ConsumerOptions, ProcessedEntity,
    ProducerPlan, StopWhen,
};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

fn until_empty(workers: usize) -> ConsumerOptions {
    ConsumerOptions {
        workers,
        batch: 16,
        stop: StopWhen::Empty,
        idle_poll: Duration::from_millis(200),
        ..ConsumerOptions::default()
    }
}

#[tokio::test]
async fn five_hundred_messages_are_processed_exactly_once_by_four_workers() {
    let env = Env::start().await;
    let (queue, poison, table) = env.fresh().await;
    let cancel = CancellationToken::new();
    let produced = produce(&queue, &ProducerPlan::burst(500, 8), &cancel)
        .await
        .unwrap();
    assert_eq!(produced.sent, (1..=500).collect::<Vec<_>>());
    assert!(produced.failed.is_empty());

    let consumed = consume(&queue, &table, &poison, &until_empty(4), &cancel)
        .await
        .unwrap();
    assert_eq!(consumed.processed, 500, "{consumed:?}");
    assert_eq!(queue.approximate_count().await.unwrap(), 0);

    let result = reconcile(&produced, &table, &poison).await.unwrap();
    assert!(result.is_exact(), "{}", result.summary());
    assert_eq!(result.processed_once, 500);
    assert_eq!((result.unexpected, result.poisoned), (0, 0));
    assert_eq!(table.count(None).await.unwrap(), 500);

    // The rows carry the sample's fields.
    let rows: Vec<ProcessedEntity> = table
        .query(Some(&format!("data eq '{}'", label(42))))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].src_stamp.len(), "2026-11-27 21:50:26.123456".len());
    assert!(!rows[0].partition_key.is_empty() && !rows[0].date_stamp.is_empty());
}

#[tokio::test]
async fn a_crash_between_write_and_delete_does_not_duplicate_the_row() {
    let env = Env::start().await;
    let (queue, poison, table) = env.fresh().await;
    let cancel = CancellationToken::new();
    let produced = produce(&queue, &ProducerPlan::burst(3, 1), &cancel)
        .await
        .unwrap();

    // The first consumer writes message rows and "dies" before deleting the first one.
    let crashing = ConsumerOptions {
        batch: 1,
        visibility_timeout: Duration::from_secs(1),
        crash_after_write: 1,
        ..until_empty(1)
    };
    let first = consume(&queue, &table, &poison, &crashing, &cancel)
        .await
        .unwrap();
    assert_eq!(first.injected_crashes, 1, "{first:?}");
    // StopWhen::Empty waited for the crashed message to come back and processed it again.
    assert_eq!(first.processed, 3, "{first:?}");
    assert_eq!(
        first.redeliveries, 1,
        "the redelivery found its row: {first:?}"
    );

    let result = reconcile(&produced, &table, &poison).await.unwrap();
    assert!(result.is_exact(), "{}", result.summary());
    assert_eq!(table.count(None).await.unwrap(), 3);
}

#[tokio::test]
async fn a_redelivered_message_is_written_once_across_consumers() {
    let env = Env::start().await;
    let (queue, poison, table) = env.fresh().await;
    let cancel = CancellationToken::new();
    let produced = produce(&queue, &ProducerPlan::burst(1, 1), &cancel)
        .await
        .unwrap();
    let crashing = ConsumerOptions {
        visibility_timeout: Duration::from_secs(1),
        crash_after_write: 1,
        stop: StopWhen::Cancelled,
        ..until_empty(1)
    };
    // Consumer A writes the row and dies; stop it once it has.
    let stop_a = CancellationToken::new();
    let a = consume(&queue, &table, &poison, &crashing, &stop_a);
    let watcher = async {
        eventually(
            "consumer A wrote the row",
            Duration::from_secs(30),
            || async {
                match table.count(None).await {
                    Ok(1) => Ok(()),
                    other => Err(other),
                }
            },
        )
        .await;
        stop_a.cancel();
    };
    let (a, ()) = tokio::join!(a, watcher);
    assert_eq!(a.unwrap().injected_crashes, 1);
    // Consumer B gets the message after its visibility timeout.
    let b = consume(&queue, &table, &poison, &until_empty(1), &cancel)
        .await
        .unwrap();
    assert_eq!((b.processed, b.redeliveries), (1, 1), "{b:?}");
    let result = reconcile(&produced, &table, &poison).await.unwrap();
    assert!(result.is_exact(), "{}", result.summary());
}

#[tokio::test]
async fn malformed_and_over_delivered_messages_end_in_the_poison_queue() {
    let env = Env::start().await;
    let (queue, poison, table) = env.fresh().await;
    let cancel = CancellationToken::new();
    let now = OffsetDateTime::now_utc();
    queue.send(&message_text(1, now)).await.unwrap();
    queue.send("this is not JSON").await.unwrap();
    queue.send(r#"{"msg": "no stamp"}"#).await.unwrap();
    queue.send(&message_text(2, now)).await.unwrap();

    // Receive every message twice without deleting, as a consumer failing on them would.
    for round in 1..=2u64 {
        let seen = std::cell::Cell::new(0);
        let (seen, queue) = (&seen, &queue);
        eventually(
            "all four messages visible again",
            Duration::from_secs(30),
            || async move {
                let got = queue
                    .receive(32, Duration::from_secs(1))
                    .await
                    .map_err(|e| e.to_string())?;
                assert!(got.iter().all(|m| m.dequeue_count == round), "{got:?}");
                seen.set(seen.get() + got.len());
                match seen.get() {
                    4 => Ok(()),
                    n => Err(format!("{n} of 4 in round {round}")),
                }
            },
        )
        .await;
    }
    let options = ConsumerOptions {
        max_dequeue: 2,
        ..until_empty(2)
    };
    let report = consume(&queue, &table, &poison, &options, &cancel)
        .await
        .unwrap();
    // Third delivery: each is past the limit of 2, so all four go to the poison queue.
    assert_eq!(report.poisoned_dequeue_limit, 4, "{report:?}");
    assert_eq!(report.processed, 0);
    assert_eq!(poison.approximate_count().await.unwrap(), 4);
    assert_eq!(queue.approximate_count().await.unwrap(), 0);

    // Fresh deliveries: malformed ones are poisoned at once, good ones are processed.
    let (queue, poison, table) = env.fresh().await;
    queue.send(&message_text(1, now)).await.unwrap();
    queue.send("this is not JSON").await.unwrap();
    queue.send(r#"{"msg": "no stamp"}"#).await.unwrap();
    queue.send(&message_text(2, now)).await.unwrap();
    let report = consume(&queue, &table, &poison, &until_empty(2), &cancel)
        .await
        .unwrap();
    assert_eq!(
        (report.processed, report.poisoned_malformed),
        (2, 2),
        "{report:?}"
    );
    let poisoned: Vec<String> = poison
        .peek(32)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(poisoned.len(), 2);
    assert!(
        poisoned.contains(&"this is not JSON".to_owned()),
        "{poisoned:?}"
    );
    assert!(
        poisoned.contains(&r#"{"msg": "no stamp"}"#.to_owned()),
        "{poisoned:?}"
    );
    assert_eq!(table.count(None).await.unwrap(), 2);
}

#[tokio::test]
async fn the_producer_keeps_its_rate_and_duration() {
    let env = Env::start().await;
    let (queue, _, _) = env.fresh().await;
    let cancel = CancellationToken::new();
    let plan = ProducerPlan {
        count: None,
        rate: Some(20.0),
        duration: Some(Duration::from_millis(1000)),
        concurrency: 2,
        first_index: 1,
    };
    let report = produce(&queue, &plan, &cancel).await.unwrap();
    // Due times 0, 50, ..., 950 ms fall inside the second: exactly 20 messages.
    assert_eq!(report.sent, (1..=20).collect::<Vec<_>>());
    assert_eq!(queue.approximate_count().await.unwrap(), 20);

    // Without a count or duration it runs until cancelled.
    let stop = CancellationToken::new();
    let open_ended = ProducerPlan {
        first_index: 100,
        ..ProducerPlan::default()
    };
    let (report, ()) = tokio::join!(produce(&queue, &open_ended, &stop), async {
        eventually(
            "the first message arrived",
            Duration::from_secs(30),
            || async {
                match queue.approximate_count().await {
                    Ok(n) if n > 20 => Ok(()),
                    other => Err(other),
                }
            },
        )
        .await;
        stop.cancel();
    });
    let report = report.unwrap();
    assert!(
        !report.sent.is_empty() && report.sent[0] == 100,
        "{report:?}"
    );
}

#[tokio::test]
async fn a_refused_credential_stops_producer_and_consumer_with_the_reason() {
    let env = Env::start().await;
    let (queue, _, _) = env.fresh().await;
    let target = edw_engine::storage::StorageTarget {
        account: "devstoreaccount1".into(),
        auth: edw_engine::storage::StorageAuth::AccountKey(edw_engine::secrets::Secret::new(
            "bm90LXRoZS1yaWdodC1rZXktbm90LXRoZS1yaWdodC1rZXk=",
        )),
        queue_endpoint: Some(env.azurite.queue_endpoint().into()),
        table_endpoint: Some(env.azurite.table_endpoint().into()),
        queue_partitions: Vec::new(),
        retry: Default::default(),
    };
    let refused = edw_engine::storage::Storage::connect(&target).unwrap();
    let cancel = CancellationToken::new();
    let q = refused.queue(queue.name());
    let error = produce(&q, &ProducerPlan::burst(5, 2), &cancel)
        .await
        .unwrap_err();
    let text = edw_engine::error_chain::text(&error);
    assert!(text.contains("refused"), "{text}");
    let error = consume(
        &q,
        &refused.table("tbl"),
        &refused.queue("p"),
        &until_empty(2),
        &cancel,
    )
    .await
    .unwrap_err();
    let text = edw_engine::error_chain::text(&error);
    assert!(text.contains("refused"), "{text}");
}

/// A twin's load pod sends through the governed clock's pacer (`produce_paced`, what
/// `ConsumerPods` gives its producers): each send holds a ticket while in flight, so storage
/// that answers late (every call 300 ms late here, behind the fault proxy) slows the clock while
/// the producer sends, as late consumer calls do, and the pod's Job deadline on that clock keeps
/// pace with it. The same sends without the pacer leave the clock at its scale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_producer_slows_the_governed_clock_when_its_sends_lag() {
    use edw_engine::storage::{Storage, StorageTarget};
    use edw_engine::twin_governor::ClockGovernor;
    use edw_engine::workload::{produce_paced, Pacer};
    use edw_model::naming::run_queue_name;
    use edw_testkit::faults::{Fault, FaultProxy};

    let env = Env::start().await;
    let proxy = FaultProxy::start(env.azurite.queue_endpoint())
        .await
        .expect("fault proxy");
    let storage = Storage::connect(&StorageTarget::development(
        &proxy.url(),
        env.azurite.table_endpoint(),
    ))
    .unwrap();
    let queue = storage.queue(&run_queue_name("paced"));
    queue.create().await.unwrap();
    proxy.fail_every(Some((1, Fault::Delay(Duration::from_millis(300)))));
    let send = |paced: bool| {
        let queue = queue.clone();
        async move {
            let clock = std::sync::Arc::new(edw_twin::clock::ScaledClock::new(20.0));
            let stop = CancellationToken::new();
            let governor = ClockGovernor::start(clock, stop.clone());
            let pacer = Pacer(governor.clone());
            let report = produce_paced(
                &queue,
                &ProducerPlan::burst(12, 2),
                paced.then_some(&pacer),
                &CancellationToken::new(),
            )
            .await
            .unwrap();
            stop.cancel();
            (report.sent.len(), governor.summary())
        }
    };
    let (sent, paced) = send(true).await;
    assert_eq!(sent, 12);
    assert!(
        paced.lowest_rate < 20.0 && !paced.slowed_for.is_zero(),
        "the clock did not slow for sends 300 ms late: {paced}"
    );
    let (sent, unpaced) = send(false).await;
    assert_eq!(sent, 12);
    assert_eq!(
        unpaced.lowest_rate, 20.0,
        "without the pacer the governor cannot see the sends: {unpaced}"
    );
    proxy.fail_every(None);
    queue.delete().await.unwrap();
}
