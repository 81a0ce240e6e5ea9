//! `edw roundtrip`: produce a burst into a fresh queue, drain it into a fresh table, reconcile,
//! and remove both (whatever happened).

use tokio_util::sync::CancellationToken;

use crate::args::{GlobalArgs, RoundtripArgs};
use crate::{exit, session, Failure};
use edw_engine::storage::Storage;
use edw_engine::workload::{
    consume, poison_queue_name, produce, reconcile, ConsumerOptions, ProducerPlan, StopWhen,
};
use edw_model::naming::{run_queue_name, run_table_name};

pub async fn run(
    global: &GlobalArgs,
    args: &RoundtripArgs,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    let session = session::open(global).await?;
    let names = Names {
        queue: run_queue_name(session.config.queue_name()),
        table: run_table_name(session.config.table_name()),
    };
    eprintln!(
        "round trip of {} messages through queue {} and table {} at {}",
        args.count,
        names.queue,
        names.table,
        session.storage.describe()
    );
    let outcome = round_trip(&session.storage, &names, args, cancel).await;
    let cleanup = remove(&session.storage, &names).await;
    let code = outcome?;
    cleanup?;
    Ok(code)
}

struct Names {
    queue: String,
    table: String,
}

async fn round_trip(
    storage: &Storage,
    names: &Names,
    args: &RoundtripArgs,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    let queue = storage.queue(&names.queue);
    let poison = storage.queue(&poison_queue_name(&names.queue));
    let table = storage.table(&names.table);
    for step in [
        queue.create().await,
        poison.create().await,
        table.create().await,
    ] {
        step.map_err(Failure::environment)?;
    }
    let produced = produce(
        &queue,
        &ProducerPlan::burst(args.count, args.concurrency),
        cancel,
    )
    .await
    .map_err(Failure::environment)?;
    let options = ConsumerOptions {
        workers: args.workers,
        batch: 32,
        stop: StopWhen::Empty,
        ..ConsumerOptions::default()
    };
    let consumed = consume(&queue, &table, &poison, &options, cancel)
        .await
        .map_err(Failure::environment)?;
    let result = reconcile(&produced, &table, &poison)
        .await
        .map_err(Failure::environment)?;
    if args.json {
        let json = serde_json::json!({
            "produce": { "sent": produced.sent_count(), "failed": produced.failed.len(),
                         "seconds": produced.elapsed.as_secs_f64(), "per_second": produced.rate() },
            "consume": consumed,
            "reconciliation": result,
            "exact": result.is_exact(),
        });
        println!("{json:#}");
    } else {
        println!(
            "produced {} in {:.1} s ({:.0}/s); drained in {:.1} s ({:.0}/s)",
            produced.sent_count(),
            produced.elapsed.as_secs_f64(),
            produced.rate(),
            consumed.elapsed_ms as f64 / 1000.0,
            consumed.processed as f64 * 1000.0 / consumed.elapsed_ms.max(1) as f64,
        );
        println!("{}", result.summary());
        println!(
            "{}",
            if cancel.is_cancelled() {
                "INTERRUPTED: the counts above are partial"
            } else if result.is_exact() {
                "PASS: every message was processed exactly once"
            } else {
                "FAIL: messages were lost or duplicated"
            }
        );
    }
    Ok(if cancel.is_cancelled() {
        exit::INTERRUPTED
    } else if result.is_exact() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

/// Deletes the run's queue, poison queue and table; every one is tried.
async fn remove(storage: &Storage, names: &Names) -> Result<(), Failure> {
    let results = [
        storage.queue(&names.queue).delete().await,
        storage
            .queue(&poison_queue_name(&names.queue))
            .delete()
            .await,
        storage.table(&names.table).delete().await,
    ];
    for result in results {
        result.map_err(Failure::environment)?;
    }
    Ok(())
}
