//! Poison messages: malformed messages and messages whose processing fails go to the poison queue; every other message is processed once.

use edw_engine::runner::{Context, FlowSettings, Scenario, Step, StepFuture, StepResult};
use edw_engine::steps::*;

/// Malformed messages end in the poison queue; the rest drain, each once.
pub fn poison() -> Scenario {
    let settings = FlowSettings {
        messages: 200,
        ..FlowSettings::default()
    };
    scenario(
        "flow::poison",
        settings,
        vec![
            // Paced in real time: the storage's visibility timeouts are real time.
            Step::new(
                "load: messages that keep failing (taken and abandoned five times)",
                secs(300),
                failing_deliveries,
            )
            .paced_in_real_time(),
            // Before the burst, not after it: five malformed messages alone are below
            // activationQueueLength, so sent once the burst had drained and KEDA had scaled
            // the consumers to 0 they were never read (a side-by-side run on a served twin
            // saw 3 of 8 in the poison queue), and the drain step took them for a stranded
            // tail. With the burst, the consumers that drain it read them too.
            Step::new("load: malformed messages", secs(120), malformed).paced_in_real_time(),
            load_step(),
            drained_step(),
            Step::new(
                "poison: malformed and repeatedly failing messages are in the poison queue",
                secs(600),
                poisoned,
            ),
            verify_step(),
        ],
    )
}

const MALFORMED: &[&str] = &[
    "this is not JSON",
    r#"{"msg": "no stamp"}"#,
    r#"{"srcStamp": "no msg"}"#,
    "[1, 2, 3]",
    r#"{"msg": 7, "srcStamp": "x"}"#,
];

/// Well-formed messages whose processing keeps failing: a reader takes each and dies before
/// deleting it, as often as the consumer's dequeue limit allows.
const FAILING: u64 = 3;
/// The consumer's limit (`ConsumerOptions::max_dequeue`): the next delivery goes to poison.
const FAILED_DELIVERIES: u64 = 5;

fn failing_text(i: u64) -> String {
    format!(
        r#"{{"msg": "Repeatedly failing message {i}", "srcStamp": "2026-01-01 00:00:00.000000"}}"#
    )
}

fn failing_deliveries(ctx: &mut Context) -> StepFuture<'_> {
    ctx.prediction_caveat = Some(
        "the run sent messages that fail or are malformed (retried, then poisoned), the twin's queue model has none".to_owned(),
    );
    Box::pin(async move {
        let queue = ctx.target.storage().queue(&ctx.names.queue);
        for i in 1..=FAILING {
            if let Err(e) = queue.send(&failing_text(i)).await {
                return StepResult::failed(format!("sending: {e}"), []);
            }
        }
        // Fewer than activationQueueLength messages: no consumer runs yet, the failing reader
        // is alone. Each round takes every message once (hidden for 1 s, never deleted).
        for round in 1..=FAILED_DELIVERIES {
            let mut taken = std::collections::BTreeSet::new();
            // Visibility timeouts are the storage's real time.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            while (taken.len() as u64) < FAILING {
                if tokio::time::Instant::now() > deadline {
                    return StepResult::failed(
                        format!(
                            "round {round}: only {} of {FAILING} abandoned messages came back within 60 s",
                            taken.len()
                        ),
                        [],
                    );
                }
                match queue.receive(32, std::time::Duration::from_secs(1)).await {
                    Ok(messages) => taken.extend(messages.into_iter().map(|m| m.id)),
                    Err(e) => return StepResult::failed(format!("receiving: {e}"), []),
                }
                if (taken.len() as u64) < FAILING {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
        StepResult::passed([format!(
            "{FAILING} well-formed messages taken and abandoned {FAILED_DELIVERIES} times each: their next delivery exceeds the consumer's dequeue limit of {FAILED_DELIVERIES}"
        )])
    })
}

fn malformed(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let queue = ctx.target.storage().queue(&ctx.names.queue);
        for text in MALFORMED {
            if let Err(e) = queue.send(text).await {
                return StepResult::failed(e.to_string(), []);
            }
        }
        StepResult::passed([format!("{} malformed messages sent", MALFORMED.len())])
    })
}

fn poisoned(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let poison = ctx.target.storage().queue(&ctx.names.poison);
        let expected = MALFORMED.len() as u64 + FAILING;
        let clock = ctx.clock();
        let result = poll_until(&clock, secs(300), || async {
            match poison.approximate_count().await {
                Ok(n) if n == expected => Ok(n),
                Ok(n) => Err(format!("{n} in the poison queue")),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        match result {
            Ok(n) => {
                // Both paths, by content: each malformed text and each failing message.
                let texts: Vec<String> = match poison.peek(edw_engine::storage::MAX_BATCH).await {
                    Ok(peeked) => peeked.into_iter().map(|m| m.text).collect(),
                    Err(e) => return StepResult::failed(format!("peeking: {e}"), []),
                };
                let missing: Vec<String> = MALFORMED
                    .iter()
                    .map(|t| (*t).to_owned())
                    .chain((1..=FAILING).map(failing_text))
                    .filter(|t| !texts.contains(t))
                    .collect();
                if !missing.is_empty() {
                    return StepResult::failed(
                        format!("{n} messages in the poison queue, but not these: {missing:?}"),
                        [],
                    );
                }
                ctx.property("messages.poisoned_other", n);
                StepResult::passed([
                    format!(
                        "expected {expected} messages in {} ({} malformed, {FAILING} over the dequeue limit); found {n}, each by content",
                        ctx.names.poison,
                        MALFORMED.len()
                    ),
                    format!(
                        "none of them is one of the load's messages: the verify step counts them apart (poisoned 0 of the load's, {n} other messages in the poison queue)"
                    ),
                ])
            }
            Err(last) => StepResult::failed(
                format!("expected {expected} messages in the poison queue: {last}"),
                [],
            ),
        }
    })
}
