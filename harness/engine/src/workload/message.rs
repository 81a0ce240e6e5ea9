//! The sample's message (`{"msg": "Scale Test Message : COUNT i", "srcStamp": "..."}`) and
//! the table entity the consumer writes for it.

use serde::{Deserialize, Serialize};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// Python's `%Y-%m-%d %H:%M:%S.%f`, as the sample stamps its messages.
const STAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]");

/// The RowKey form: the message's insertion time, sortable and free of characters that table
/// keys forbid.
const ROW_KEY: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// `t` as the sample's producer stamps it.
pub fn format_stamp(t: OffsetDateTime) -> String {
    t.format(STAMP)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The `msg` of the sample's i-th message.
pub fn label(index: u64) -> String {
    format!("Scale Test Message : COUNT {index}")
}

/// The i-th message's text exactly as the sample's producer (Python `json.dumps`) writes it.
pub fn message_text(index: u64, now: OffsetDateTime) -> String {
    format!(
        "{{\"msg\": {}, \"srcStamp\": {}}}",
        serde_json::Value::String(label(index)),
        serde_json::Value::String(format_stamp(now))
    )
}

pub use edw_model::walkthrough::poison_queue_name;

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleMessage {
    pub msg: String,
    pub src_stamp: String,
}

/// Why a message text is not a sample message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message ({reason}): {excerpt}")]
pub struct MalformedMessage {
    pub reason: String,
    /// The start of the text, for the log.
    pub excerpt: String,
}

/// Parses a message as the sample's consumer does: a JSON object with string fields `msg`
/// and `srcStamp`.
pub fn parse_message(text: &str) -> Result<ScaleMessage, MalformedMessage> {
    let malformed = |reason: String| MalformedMessage {
        reason,
        excerpt: text.chars().take(80).collect(),
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| malformed("not a JSON object".to_owned()))?;
    let field = |name: &str| match object.get(name) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(malformed(format!("field {name} is not a string"))),
        None => Err(malformed(format!("field {name} is missing"))),
    };
    Ok(ScaleMessage {
        msg: field("msg")?,
        src_stamp: field("srcStamp")?,
    })
}

/// The row the consumer writes for a processed message: the sample's fields, with keys that
/// derive from the queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessedEntity {
    /// The queue message id.
    #[serde(rename = "PartitionKey")]
    pub partition_key: String,
    /// The message's insertion time (stable across redeliveries).
    #[serde(rename = "RowKey")]
    pub row_key: String,
    /// The message's `msg`.
    pub data: String,
    #[serde(rename = "srcStamp")]
    pub src_stamp: String,
    /// When the consumer processed it.
    #[serde(rename = "dateStamp")]
    pub date_stamp: String,
}

impl ProcessedEntity {
    pub fn new(
        message_id: &str,
        inserted: OffsetDateTime,
        message: ScaleMessage,
        now: OffsetDateTime,
    ) -> Self {
        ProcessedEntity {
            partition_key: message_id.to_owned(),
            row_key: inserted
                .format(ROW_KEY)
                .unwrap_or_else(|_| inserted.unix_timestamp().to_string()),
            data: message.msg,
            src_stamp: message.src_stamp,
            date_stamp: format_stamp(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn text_matches_the_python_producer() {
        let t = datetime!(2026-11-27 21:50:26.123456 UTC);
        assert_eq!(
            message_text(7, t),
            r#"{"msg": "Scale Test Message : COUNT 7", "srcStamp": "2026-11-27 21:50:26.123456"}"#
        );
        let parsed = parse_message(&message_text(7, t)).unwrap();
        assert_eq!(parsed.msg, "Scale Test Message : COUNT 7");
        assert_eq!(parsed.src_stamp, "2026-11-27 21:50:26.123456");
    }

    #[test]
    fn malformed_messages_say_why() {
        for (text, reason) in [
            ("not json", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"msg": "x"}"#, "field srcStamp is missing"),
            (
                r#"{"msg": 3, "srcStamp": "s"}"#,
                "field msg is not a string",
            ),
        ] {
            let err = parse_message(text).unwrap_err();
            assert!(err.reason.starts_with(reason), "{text}: {err}");
        }
    }
}
