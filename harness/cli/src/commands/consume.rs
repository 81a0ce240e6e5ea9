//! `edw consume`: the sample's consumer, with poison handling and idempotent rows.

use tokio_util::sync::CancellationToken;

use crate::args::{ConsumeArgs, GlobalArgs};
use crate::{exit, session, Failure};
use edw_engine::workload::{consume, poison_queue_name, ConsumerError, ConsumerOptions, StopWhen};

pub async fn run(
    global: &GlobalArgs,
    args: &ConsumeArgs,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    let options = ConsumerOptions {
        workers: args.workers,
        batch: args.batch,
        visibility_timeout: args.visibility_timeout,
        pace: args.pace,
        max_dequeue: args.max_dequeue,
        stop: if args.until_empty {
            StopWhen::Empty
        } else {
            StopWhen::Cancelled
        },
        ..ConsumerOptions::default()
    };
    options.validate().map_err(Failure::usage)?;
    let session = session::open(global).await?;
    super::note_embedded(&session);
    let queue = session.storage.queue(session.config.queue_name());
    let poison = session
        .storage
        .queue(&poison_queue_name(session.config.queue_name()));
    let table = session.storage.table(session.config.table_name());
    for step in [
        queue.create().await,
        poison.create().await,
        table.create().await,
    ] {
        step.map_err(Failure::environment)?;
    }
    eprintln!(
        "consuming queue {} into table {} with {} worker(s){}",
        queue.name(),
        table.name(),
        options.workers,
        if args.until_empty {
            " until the queue is empty"
        } else {
            " until Ctrl-C"
        }
    );
    let report = consume(&queue, &table, &poison, &options, cancel)
        .await
        .map_err(|e| match e {
            ConsumerError::Options(_) => Failure::usage(e),
            ConsumerError::Storage { .. } => Failure::environment(e),
        })?;
    println!(
        "processed {} messages in {:.1} s; redeliveries {}, poisoned {} (malformed {}, dequeue limit {}), storage errors {}",
        report.processed,
        report.elapsed_ms as f64 / 1000.0,
        report.redeliveries,
        report.poisoned_malformed + report.poisoned_dequeue_limit,
        report.poisoned_malformed,
        report.poisoned_dequeue_limit,
        report.errors
    );
    Ok(exit::OK)
}
