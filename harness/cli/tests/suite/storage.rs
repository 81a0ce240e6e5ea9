//! `edw_engine::storage` against real Azurite: queue and table operations, the three ways to
//! authenticate, refused credentials, unreachable endpoints and retries that honour
//! `Retry-After` (through the fault proxy).

use std::time::{Duration, Instant};

use crate::support::Env;
use edw_engine::secrets::Secret;
use edw_engine::storage::{
    InsertOutcome, RetrySettings, Storage, StorageAuth, StorageError, StorageTarget,
};
use edw_testkit::faults::{Fault, FaultProxy};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    #[serde(rename = "PartitionKey")]
    pk: String,
    #[serde(rename = "RowKey")]
    rk: String,
    value: i64,
}

fn row(pk: &str, rk: &str, value: i64) -> Row {
    Row {
        pk: pk.into(),
        rk: rk.into(),
        value,
    }
}

#[tokio::test]
async fn queue_operations_round_trip() {
    let env = Env::start().await;
    let (queue, _, _) = env.fresh().await;
    assert!(queue.exists().await.unwrap());
    queue
        .create()
        .await
        .expect("creating an existing queue is fine");
    for i in 0..3 {
        queue.send(&format!("m{i}")).await.unwrap();
    }
    let peeked = queue.peek(32).await.unwrap();
    assert_eq!(
        peeked.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["m0", "m1", "m2"]
    );

    let taken = queue.receive(2, Duration::from_secs(30)).await.unwrap();
    assert_eq!(taken.len(), 2);
    assert!(taken.iter().all(|m| m.dequeue_count == 1));
    // The approximate count includes in-flight messages (KEDA's metric, twin-spec AQ-2).
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.approximate, stats.visible), (3, 1), "{stats:?}");
    assert!(!stats.visible_is_lower_bound);

    queue.delete_message(&taken[0]).await.unwrap();
    let again = queue.delete_message(&taken[0]).await.unwrap_err();
    assert!(again.is_not_found(), "deleting twice: {again}");
    assert_eq!(queue.approximate_count().await.unwrap(), 2);

    queue.clear().await.unwrap();
    assert_eq!(queue.approximate_count().await.unwrap(), 0);
    queue.delete().await.unwrap();
    assert!(!queue.exists().await.unwrap());
    queue
        .delete()
        .await
        .expect("deleting a missing queue is fine");
    let missing = queue.send("x").await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    assert!(missing.to_string().contains(queue.name()), "{missing}");
}

#[tokio::test]
async fn table_operations_round_trip() {
    let env = Env::start().await;
    let (_, _, table) = env.fresh().await;
    table
        .create()
        .await
        .expect("creating an existing table is fine");
    assert_eq!(
        table.insert(&row("a", "1", 1)).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_eq!(
        table.insert(&row("a", "2", 2)).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_eq!(
        table.insert(&row("b", "1", 3)).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_eq!(
        table.insert(&row("a", "1", 99)).await.unwrap(),
        InsertOutcome::AlreadyExists
    );
    assert_eq!(
        table.get::<Row>("a", "1").await.unwrap(),
        Some(row("a", "1", 1))
    );
    assert_eq!(table.get::<Row>("zz", "1").await.unwrap(), None);

    table.upsert("a", "1", &row("a", "1", 10)).await.unwrap();
    assert_eq!(table.get::<Row>("a", "1").await.unwrap().unwrap().value, 10);

    let in_a: Vec<Row> = table.query(Some("PartitionKey eq 'a'")).await.unwrap();
    assert_eq!(in_a.len(), 2);
    assert_eq!(table.count(None).await.unwrap(), 3);
    assert_eq!(table.count(Some("value gt 2")).await.unwrap(), 2);

    table.delete().await.unwrap();
    table
        .delete()
        .await
        .expect("deleting a missing table is fine");
    let missing = table.insert(&row("a", "1", 1)).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
}

#[tokio::test]
async fn query_reads_every_page() {
    let env = Env::start().await;
    let (_, _, table) = env.fresh().await;
    // Table queries return at most 1,000 entities a page.
    let mut pending = futures::stream::iter((0..1100).map(|i| {
        let table = table.clone();
        async move { table.insert(&row("p", &format!("{i:05}"), i)).await }
    }))
    .buffer_unordered(16);
    while let Some(result) = pending.next().await {
        result.unwrap();
    }
    assert_eq!(table.count(None).await.unwrap(), 1100);
    let all: Vec<Row> = table.query(None).await.unwrap();
    assert_eq!(all.len(), 1100);
}

#[tokio::test]
async fn account_key_and_connection_string_authenticate() {
    let env = Env::start().await;
    let by_key = StorageTarget {
        account: "devstoreaccount1".into(),
        auth: StorageAuth::AccountKey(Secret::new(edw_engine::azurite::DEVELOPMENT_KEY)),
        queue_endpoint: Some(env.azurite.queue_endpoint().into()),
        table_endpoint: Some(env.azurite.table_endpoint().into()),
        queue_partitions: Vec::new(),
        retry: RetrySettings::default(),
    };
    let by_connection_string = StorageTarget {
        account: String::new(),
        auth: StorageAuth::ConnectionString(Secret::new(env.azurite.connection_string())),
        queue_endpoint: None,
        table_endpoint: None,
        queue_partitions: Vec::new(),
        retry: RetrySettings::default(),
    };
    for target in [by_key, by_connection_string] {
        let storage = Storage::connect(&target).unwrap();
        let queue = storage.queue(&edw_model::naming::run_queue_name("auth"));
        queue
            .create()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", target.auth.kind()));
        queue.send("hello").await.unwrap();
        assert_eq!(queue.approximate_count().await.unwrap(), 1);
        let table = storage.table(&edw_model::naming::run_table_name("auth"));
        table.create().await.unwrap();
        table.insert(&row("a", "b", 1)).await.unwrap();
        assert_eq!(table.count(None).await.unwrap(), 1);
        // A secret never shows in how the storage describes itself.
        assert!(
            !storage.describe().contains("Eby8vdM02"),
            "{}",
            storage.describe()
        );
    }
}

#[tokio::test]
async fn wrong_key_is_refused_once_with_a_clear_error() {
    let env = Env::start().await;
    let proxy = FaultProxy::start(env.azurite.queue_endpoint())
        .await
        .unwrap();
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let target = StorageTarget {
        account: "devstoreaccount1".into(),
        auth: StorageAuth::AccountKey(Secret::new(wrong_key)),
        queue_endpoint: Some(proxy.url()),
        table_endpoint: Some(env.azurite.table_endpoint().into()),
        queue_partitions: Vec::new(),
        retry: RetrySettings::default(),
    };
    let storage = Storage::connect(&target).unwrap();
    let started = Instant::now();
    let error = storage.queue("refused").create().await.unwrap_err();
    assert!(
        matches!(error, StorageError::Authentication { status: 403, .. }),
        "{error:?}"
    );
    assert_eq!(proxy.requests(), 1, "a refused credential is not retried");
    let text = error.to_string();
    assert!(text.contains("refused") && text.contains("key"), "{text}");
    assert!(
        text.contains(&proxy.url()),
        "the error names the endpoint: {text}"
    );
    assert!(!text.contains(wrong_key) && !format!("{error:?}").contains(wrong_key));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn transient_errors_are_retried_after_retry_after() {
    let env = Env::start().await;
    let proxy = FaultProxy::start(env.azurite.queue_endpoint())
        .await
        .unwrap();
    let storage = Storage::connect(&StorageTarget::development(
        &proxy.url(),
        env.azurite.table_endpoint(),
    ))
    .unwrap();
    let queue = storage.queue(&edw_model::naming::run_queue_name("retry"));
    queue.create().await.unwrap();
    let before = proxy.requests();

    proxy.fail_next(
        1,
        Fault::Status {
            status: 503,
            retry_after: Some(2),
        },
    );
    proxy.fail_next(
        1,
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
    );
    proxy.fail_next(1, Fault::Reset);
    let started = Instant::now();
    queue
        .send("survives")
        .await
        .expect("retried until it works");
    let waited = started.elapsed();
    assert_eq!(
        proxy.requests() - before,
        4,
        "3 faults, then the request that worked"
    );
    assert!(
        waited >= Duration::from_secs(3),
        "Retry-After 2 s and 1 s were honoured, waited {waited:?}"
    );
    let messages = queue.peek(32).await.unwrap();
    assert_eq!(messages.len(), 1, "sent exactly once: {messages:?}");
}

#[tokio::test]
async fn exhausted_retries_name_the_failure() {
    let env = Env::start().await;
    let proxy = FaultProxy::start(env.azurite.queue_endpoint())
        .await
        .unwrap();
    let mut target = StorageTarget::development(&proxy.url(), env.azurite.table_endpoint());
    target.retry = RetrySettings {
        max_retries: 2,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..RetrySettings::default()
    };
    let storage = Storage::connect(&target).unwrap();
    proxy.fail_next(
        10,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
    );
    let error = storage.queue("busy").create().await.unwrap_err();
    assert_eq!(proxy.requests(), 3, "first attempt and 2 retries");
    assert_eq!(error.status(), Some(500), "{error}");
    assert!(
        error.to_string().contains("create queue on busy"),
        "{error}"
    );
}

#[tokio::test]
async fn unreachable_endpoint_is_named() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}/devstoreaccount1");
    let mut target = StorageTarget::development(&endpoint, &endpoint);
    target.retry = RetrySettings {
        max_retries: 1,
        initial_delay: Duration::from_millis(10),
        ..RetrySettings::default()
    };
    let storage = Storage::connect(&target).unwrap();
    let error = storage
        .queue("nowhere")
        .approximate_count()
        .await
        .unwrap_err();
    assert!(
        matches!(error, StorageError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&endpoint), "{error}");
}

#[tokio::test]
async fn incomplete_targets_are_rejected_before_any_request() {
    let no_account = StorageTarget {
        account: String::new(),
        auth: StorageAuth::AccountKey(Secret::new("a-key-that-is-long-enough")),
        queue_endpoint: None,
        table_endpoint: None,
        queue_partitions: Vec::new(),
        retry: RetrySettings::default(),
    };
    let error = Storage::connect(&no_account).unwrap_err();
    assert!(
        error.to_string().contains("AZURE_STORAGE_ACCOUNT_NAME"),
        "{error}"
    );

    let bad_connection_string = StorageTarget {
        auth: StorageAuth::ConnectionString(Secret::new("AccountName=x;NoKeyHere=1")),
        ..no_account
    };
    let error = Storage::connect(&bad_connection_string).unwrap_err();
    assert!(error.to_string().contains("connection string"), "{error}");
}
