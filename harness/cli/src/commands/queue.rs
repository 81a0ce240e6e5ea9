//! `edw queue stats`: the queue's and its poison queue's counts.

use crate::args::GlobalArgs;
use crate::{exit, session, Failure};
use edw_engine::workload::poison_queue_name;

pub async fn stats(global: &GlobalArgs, json: bool) -> Result<u8, Failure> {
    let session = session::open(global).await?;
    let name = session.config.queue_name();
    let mut all = Vec::new();
    for queue_name in [name.to_owned(), poison_queue_name(name)] {
        let queue = session.storage.queue(&queue_name);
        if !queue.exists().await.map_err(Failure::environment)? {
            if queue_name == name {
                return Err(Failure::environment(anyhow::anyhow!(
                    "queue {queue_name} does not exist at {}",
                    session.storage.queue_endpoint()
                )));
            }
            continue;
        }
        all.push(queue.stats().await.map_err(Failure::environment)?);
    }
    if json {
        let text = serde_json::to_string_pretty(&all).map_err(Failure::environment)?;
        println!("{text}");
    } else {
        for s in &all {
            let bound = if s.visible_is_lower_bound { "≥" } else { "" };
            println!(
                "{}: approximate {} (visible + in flight), visible {bound}{}",
                s.queue, s.approximate, s.visible
            );
        }
    }
    Ok(exit::OK)
}
