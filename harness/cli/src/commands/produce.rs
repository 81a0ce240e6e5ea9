//! `edw produce`: the sample's producer.

use tokio_util::sync::CancellationToken;

use crate::args::{GlobalArgs, ProduceArgs};
use crate::{exit, session, Failure};
use edw_engine::workload::{produce, ProducerError, ProducerPlan};

pub async fn run(
    global: &GlobalArgs,
    args: &ProduceArgs,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    let plan = ProducerPlan {
        count: args.count,
        // The sample's 1 per second, unless a count asks for a burst.
        rate: args
            .rate
            .or(if args.count.is_some() || args.duration.is_some() {
                None
            } else {
                Some(1.0)
            }),
        duration: args.duration,
        concurrency: args.concurrency,
        first_index: args.first,
    };
    plan.validate().map_err(Failure::usage)?;
    let session = session::open(global).await?;
    super::note_embedded(&session);
    let queue = session.storage.queue(session.config.queue_name());
    queue.create().await.map_err(Failure::environment)?;
    eprintln!(
        "producing to queue {} at {}{}",
        queue.name(),
        session.storage.queue_endpoint(),
        if plan.count.is_none() && plan.duration.is_none() {
            " until Ctrl-C"
        } else {
            ""
        }
    );
    let report = produce(&queue, &plan, cancel).await.map_err(|e| match e {
        ProducerError::Plan(_) => Failure::usage(e),
        ProducerError::Storage { .. } => Failure::environment(e),
    })?;
    println!(
        "sent {} messages in {:.1} s ({:.0}/s); {} failed",
        report.sent_count(),
        report.elapsed.as_secs_f64(),
        report.rate(),
        report.failed.len()
    );
    for (index, error) in report.failed.iter().take(10) {
        println!("  message {index} not sent: {error}");
    }
    Ok(if report.failed.is_empty() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}
