//! `edw produce`: the sample's producer.

use tokio_util::sync::CancellationToken;

use crate::args::{GlobalArgs, ProduceArgs};
use crate::{exit, session, Failure};
use edw_engine::workload::{produce, ProducerError, ProducerPlan, SliceCommand};

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
    if let (Some(slices), Some(count)) = (args.slices, args.count) {
        return send_slice(global, args, slices, count, cancel).await;
    }
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

/// `edw produce --slices P`: one pod's slice of an in-cluster load, with its report line.
async fn send_slice(
    global: &GlobalArgs,
    args: &ProduceArgs,
    slices: u64,
    count: u64,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    let command = SliceCommand {
        count,
        slices,
        first: args.first,
        rate_per_pod: args.rate,
        concurrency: args.concurrency,
    };
    let index = args.slice_index.ok_or_else(|| {
        Failure::usage(anyhow::anyhow!(
            "--slices needs --slice-index or JOB_COMPLETION_INDEX (set by an Indexed Job)"
        ))
    })?;
    // A bad split is refused before storage is opened.
    command.slice(index).map_err(Failure::usage)?;
    let session = session::open(global).await?;
    let queue = session.storage.queue(session.config.queue_name());
    let report = edw_engine::workload::send_slice(&queue, &command, index, 1.0, None, cancel)
        .await
        .map_err(Failure::usage)?;
    println!(
        "slice {index} of {slices}: sent {} of {} messages (from {}) in {:.1} s; {} failed{}",
        report.sent_count,
        report.slice.count,
        report.slice.first,
        report.elapsed_seconds,
        report.failed.len(),
        report
            .stopped
            .as_deref()
            .map(|why| format!("; stopped: {why}"))
            .unwrap_or_default()
    );
    println!("{}", report.line());
    // 0 once the report is printed, whatever it says: the harness judges the load from every
    // pod's report; a failing pod would fail the Job and stop its siblings mid-slice.
    Ok(exit::OK)
}
