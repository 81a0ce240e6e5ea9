//! The twin on the scaled wall clock against real Azurite: the sample's objects are deployed,
//! 200 messages are sent, KEDA (reading the real queue) scales the Deployment, Karpenter adds
//! nodes, the pods run the real consumer, and the table ends with every message exactly once.
//!
//! The ScaledObject has activationQueueLength 0 (the fix for the stranded tail). With the
//! walkthrough's 20, a KEDA poll that lands while the last 1..20 messages are in flight scales
//! to zero and leaves them on the queue: real behaviour, which the flows accept and report as
//! the finding `stranded-tail`, but it would make this test's "every message" fail at random
//! (it did, once in CI: 18 left at 0 replicas).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{eventually, Env};
use edw_engine::twin_governor::ClockGovernor;
use edw_engine::twin_pods::{ConsumerPods, StorageQueueProbe};
use edw_engine::workload::{produce, reconcile, ProducerPlan};
use edw_twin::driver::{drive, scaled_engine};
use edw_twin::params::TwinParams;
use edw_twin::sample::{deploy_with_table, ScalingConfig};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_messages_drain_through_real_consumer_pods() {
    let env = Env::start().await;
    let (queue, poison, table) = env.fresh().await;
    let scale = 20.0;
    let (engine, clock) = scaled_engine(TwinParams::default(), scale).expect("twin");
    deploy_with_table(
        &engine.store,
        queue.name(),
        table.name(),
        &ScalingConfig {
            activation: 0,
            ..ScalingConfig::default()
        },
    )
    .expect("deploy");
    let engine = Arc::new(Mutex::new(engine));
    let cancel = CancellationToken::new();
    let governor = ClockGovernor::start(clock.clone(), cancel.clone());
    let pods = Arc::new(ConsumerPods::new(env.storage.clone(), governor.clone()));
    let driver = tokio::spawn(drive(
        engine.clone(),
        clock,
        Arc::new(StorageQueueProbe::new(env.storage.clone(), governor)),
        pods.clone(),
        cancel.clone(),
    ));

    let produced = produce(
        &queue,
        &ProducerPlan::burst(200, 8),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(produced.sent.len(), 200);

    let sample =
        |engine: &Arc<Mutex<edw_twin::engine::Engine>>| engine.lock().unwrap().timeline.latest();
    // KEDA activates (200 > 0) and Karpenter brings nodes; pods run real consumers.
    eventually("consumer pods running", Duration::from_secs(60), || async {
        match pods.running() {
            0 => Err(sample(&engine)),
            _ => Ok(()),
        }
    })
    .await;
    eventually(
        "the table holds every message",
        Duration::from_secs(120),
        || async {
            match table.count(None).await {
                Ok(200) => Ok(()),
                other => Err(format!("{other:?} rows; cluster {:?}", sample(&engine))),
            }
        },
    )
    .await;
    // After the drain KEDA scales to zero at its next poll and the pods' consumers stop; a
    // stopped pod's consumer reports what it processed a moment after it leaves `running`.
    eventually("scaled to zero", Duration::from_secs(60), || async {
        let s = sample(&engine);
        if s.replicas == 0 && pods.running() == 0 && pods.processed() == 200 {
            Ok(())
        } else {
            Err(format!(
                "{s:?}; consumers running {}, processed {}",
                pods.running(),
                pods.processed()
            ))
        }
    })
    .await;
    cancel.cancel();
    driver.await.unwrap();

    let result = reconcile(&produced, &table, &poison).await.unwrap();
    assert!(result.is_exact(), "{}", result.summary());
    assert_eq!(queue.approximate_count().await.unwrap(), 0);
    assert_eq!(
        pods.processed(),
        200,
        "every message processed once by the pods' consumers"
    );
    let max_nodes = engine
        .lock()
        .unwrap()
        .timeline
        .series(|s| s.nodes)
        .iter()
        .map(|(_, v)| *v)
        .max();
    assert!(
        max_nodes.unwrap_or(0) >= 1,
        "Karpenter added nodes for the pods"
    );
}
