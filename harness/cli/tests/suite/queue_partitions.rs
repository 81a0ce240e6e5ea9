//! A queue partitioned over several real Azurite queue services behaves as one queue: sends
//! spread round-robin, receives find messages on any partition, deletes go to the partition
//! that gave the message, counts and peeks add up, and create/delete/exists/clear cover every
//! partition. The configuration takes the partitions as a comma-separated endpoint list.

use std::collections::BTreeSet;
use std::time::Duration;

use edw_engine::azurite::{Azurite, AzuriteOptions};
use edw_engine::config::{Config, ConfigInputs, StorageChoice};
use edw_engine::storage::{Storage, StorageTarget};
use edw_engine::target::{Target, TargetKind};
use edw_model::naming::run_queue_name;

const PARTITIONS: usize = 3;

async fn partitioned_azurite() -> Azurite {
    Azurite::start_with(&AzuriteOptions {
        queue_partitions: PARTITIONS,
        ..AzuriteOptions::default()
    })
    .await
    .expect("Azurite with three queue services")
}

/// The storage of one queue service alone (partition `index`), to look at it from outside.
fn one_service(azurite: &Azurite, index: usize) -> Storage {
    Storage::connect(&StorageTarget::development(
        &azurite.queue_endpoints()[index],
        azurite.table_endpoint(),
    ))
    .unwrap()
}

/// The number of messages on each partition.
async fn per_partition(azurite: &Azurite, queue: &str) -> Vec<u64> {
    let mut counts = Vec::new();
    for index in 0..azurite.queue_endpoints().len() {
        let partition = one_service(azurite, index).queue(queue);
        counts.push(partition.approximate_count().await.unwrap());
    }
    counts
}

#[tokio::test]
async fn a_partitioned_queue_behaves_as_one_queue() {
    let azurite = partitioned_azurite().await;
    assert_eq!(azurite.queue_endpoints().len(), PARTITIONS);
    let storage = Storage::connect(&azurite.storage_target()).unwrap();
    assert!(
        storage
            .describe()
            .contains("partitioned over 3 queue services"),
        "{}",
        storage.describe()
    );
    let name = run_queue_name("parts");
    let queue = storage.queue(&name);
    assert_eq!(queue.partition_count(), PARTITIONS);
    assert!(!queue.exists().await.unwrap());
    queue.create().await.unwrap();
    assert!(queue.exists().await.unwrap());

    for i in 0..30 {
        queue.send(&format!("m{i}")).await.unwrap();
    }
    // Round-robin: ten on each service; the count adds them up.
    assert_eq!(per_partition(&azurite, &name).await, vec![10, 10, 10]);
    assert_eq!(queue.approximate_count().await.unwrap(), 30);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.approximate, stats.visible), (30, 30), "{stats:?}");

    // Another handle (as another consumer has) receives from every partition in turn, and each
    // delete goes to the partition that gave the message.
    let consumer = storage.queue(&name);
    let mut seen = BTreeSet::new();
    let mut partitions_used = BTreeSet::new();
    loop {
        let batch = consumer.receive(4, Duration::from_secs(60)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for message in batch {
            partitions_used.insert(message.partition);
            assert!(seen.insert(message.text.clone()), "{} twice", message.text);
            consumer.delete_message(&message).await.unwrap();
        }
    }
    assert_eq!(seen.len(), 30);
    assert_eq!(partitions_used.len(), PARTITIONS);
    assert_eq!(queue.approximate_count().await.unwrap(), 0);
    assert_eq!(per_partition(&azurite, &name).await, vec![0, 0, 0]);

    // A message left on the last partition alone is still found by a receive.
    let third = one_service(&azurite, 2);
    third.queue(&name).send("only-on-the-third").await.unwrap();
    let found = consumer.receive(1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].text.as_str(), found[0].partition),
        ("only-on-the-third", 2)
    );
    // The receipt is only valid on that partition: a message claiming another one is refused
    // with the partition named, not deleted elsewhere.
    let mut wrong = found[0].clone();
    wrong.partition = 7;
    let error = consumer.delete_message(&wrong).await.unwrap_err();
    assert!(error.to_string().contains("partition 7"), "{error}");
    consumer.delete_message(&found[0]).await.unwrap();

    for i in 0..6 {
        queue.send(&format!("c{i}")).await.unwrap();
    }
    queue.clear().await.unwrap();
    assert_eq!(queue.approximate_count().await.unwrap(), 0);
    // A queue left on one partition still exists (a cleanup check must not call it gone).
    one_service(&azurite, 0)
        .queue(&name)
        .delete()
        .await
        .unwrap();
    assert!(queue.exists().await.unwrap());
    queue.delete().await.unwrap();
    assert!(!queue.exists().await.unwrap());
    for index in 0..PARTITIONS {
        let partition = one_service(&azurite, index).queue(&name);
        let kept = partition.exists().await.unwrap();
        assert!(!kept, "partition {index} kept the queue");
    }
}

/// The configuration of an Azurite whose queue endpoint setting is `queue`.
fn azurite_config(queue: &str) -> Result<Config, edw_engine::config::ConfigError> {
    Config::load(&ConfigInputs {
        env: [
            ("EDW_AZURITE_QUEUE_ENDPOINT".to_owned(), queue.to_owned()),
            (
                "EDW_AZURITE_TABLE_ENDPOINT".to_owned(),
                "http://127.0.0.1:10002/devstoreaccount1".to_owned(),
            ),
        ]
        .into_iter()
        .collect(),
        working_dir: Some(std::env::temp_dir()),
        ..ConfigInputs::default()
    })
}

#[test]
fn the_configuration_takes_partitions_as_an_endpoint_list() {
    let config =
        azurite_config("http://127.0.0.1:1/devstoreaccount1, http://127.0.0.1:2/devstoreaccount1")
            .expect("two endpoints");
    let Ok(StorageChoice::Target(target)) = config.storage() else {
        panic!("an Azurite target");
    };
    assert_eq!(
        target.queue_endpoint.as_deref(),
        Some("http://127.0.0.1:1/devstoreaccount1")
    );
    assert_eq!(
        target.queue_partitions,
        vec!["http://127.0.0.1:2/devstoreaccount1".to_owned()]
    );
    // A bad entry is named.
    let error = azurite_config("http://127.0.0.1:1/devstoreaccount1,127.0.0.1:2")
        .expect_err("a bad second endpoint")
        .to_string();
    assert!(
        error.contains("EDW_AZURITE_QUEUE_ENDPOINT") && error.contains("\"127.0.0.1:2\""),
        "{error}"
    );
    // Partitions are for Azurite: a real account cannot be given any.
    let mut real = StorageTarget::development("http://127.0.0.1:1/x", "http://127.0.0.1:2/x");
    real.auth = edw_engine::storage::StorageAuth::EntraId;
    real.account = "account1".into();
    real.queue_partitions = vec!["http://127.0.0.1:3/x".into()];
    let error = Storage::connect(&real).unwrap_err().to_string();
    assert!(error.contains("queue partitions"), "{error}");
}

#[tokio::test]
async fn a_cluster_target_refuses_partitions_its_pods_would_not_read() {
    let config =
        azurite_config("http://127.0.0.1:1/devstoreaccount1,http://127.0.0.1:2/devstoreaccount1")
            .unwrap();
    for kind in [TargetKind::Kube, TargetKind::Aks] {
        let Err(error) = Target::open(kind, &config).await else {
            panic!("{kind:?} opened with partitions");
        };
        let text = error.to_string();
        assert!(
            text.contains("EDW_AZURITE_QUEUE_ENDPOINT")
                && text.contains("2 queue endpoints")
                && text.contains("local target"),
            "{text}"
        );
    }
}

/// KEDA reads a queue's count in one call; a partitioned queue reads its partitions at once, so
/// one slow partition does not add up with the others (read one after the other, a KEDA poll
/// of eight partitions held the twin's governed clock at x2-x3 when few pods ran). Partition 0
/// holds its answer for 20 s: the others are asked meanwhile, before the count finishes.
#[tokio::test]
async fn the_count_reads_every_partition_at_once() {
    use edw_testkit::faults::{Fault, FaultProxy};
    let azurite = partitioned_azurite().await;
    let mut proxies = Vec::new();
    for endpoint in azurite.queue_endpoints() {
        proxies.push(FaultProxy::start(endpoint).await.expect("fault proxy"));
    }
    let endpoints: Vec<String> = proxies.iter().map(FaultProxy::url).collect();
    let storage = Storage::connect(&StorageTarget::development_partitioned(
        &endpoints,
        azurite.table_endpoint(),
    ))
    .unwrap();
    let name = run_queue_name("count");
    let queue = storage.queue(&name);
    queue.create().await.unwrap();
    let before: Vec<u64> = proxies.iter().map(FaultProxy::requests).collect();
    proxies[0].fail_next(1, Fault::Delay(Duration::from_secs(20)));
    let counting = tokio::spawn(async move { queue.approximate_count().await });
    super::support::eventually(
        "every other partition asked while partition 0 holds its answer",
        Duration::from_secs(15),
        || {
            let asked: Vec<bool> = proxies
                .iter()
                .zip(&before)
                .skip(1)
                .map(|(proxy, before)| proxy.requests() > *before)
                .collect();
            let finished = counting.is_finished();
            async move {
                if !finished && asked.iter().all(|a| *a) {
                    Ok(())
                } else {
                    Err(format!("asked {asked:?}, count finished: {finished}"))
                }
            }
        },
    )
    .await;
    counting.abort();
}
