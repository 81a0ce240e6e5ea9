//! One line for an error and its causes, as a person or a report sees it: the message, then
//! each `source()` in turn, joined by ": ", with secrets redacted ([`crate::secrets::redact`]).
//!
//! The suite's own errors keep their cause out of their message (the cause is their
//! `#[source]`), so every link is printed as it is. Some dependencies repeat their source in
//! their message as well (kube's `"HyperError: {0}"`, an `azure_core::Error` wrapping another
//! error): a cause whose text its own error's message already ends with is not printed again.

use std::error::Error;

/// `error` and its causes on one line, each once, secrets redacted.
pub fn text(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut previous = text.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !previous.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        previous = cause_text;
        source = cause.source();
    }
    crate::secrets::redact(&text)
}

#[cfg(test)]
mod tests {
    use super::text;
    use crate::config::ConfigError;
    use crate::storage::StorageError;
    use crate::target::TargetError;

    /// Each link's own message, without its causes.
    fn links(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
        std::iter::successors(Some(error), |e| e.source())
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_nested_error_prints_each_cause_once() {
        let missing = ConfigError::Missing {
            key: "AZURE_STORAGE_ACCOUNT_NAME".into(),
            why: "the kube target needs storage".into(),
        };
        let error = anyhow::Error::from(TargetError::from(missing)).context("opening the target");
        assert_eq!(
            text(error.as_ref()),
            "opening the target: AZURE_STORAGE_ACCOUNT_NAME is not set: the kube target needs storage"
        );

        let rejected = edw_twin::store::ApiError::bad_request("no such group");
        let engine = edw_twin::engine::EngineError::from(rejected);
        let error = anyhow::Error::from(TargetError::Twin(Box::new(engine)))
            .context("opening the local target");
        let line = text(error.as_ref());
        assert_eq!(
            line,
            "opening the local target: cannot start the twin: bootstrapping the cluster failed: \
             BadRequest (400): no such group"
        );
        // The suite's own messages leave their cause out: no link repeats the next one.
        let links = links(error.as_ref());
        for pair in links.windows(2) {
            assert!(!pair[0].contains(&pair[1]), "{pair:?}");
        }
        assert_eq!(line.matches("no such group").count(), 1, "{line}");
    }

    #[test]
    fn a_secret_in_a_cause_is_redacted() {
        let storage = StorageError::Config(
            "cannot parse DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc/def+==;EndpointSuffix=core.windows.net".into(),
        );
        let error = anyhow::Error::from(TargetError::from(storage)).context("opening the target");
        let line = text(error.as_ref());
        assert!(!line.contains("abc/def+=="), "{line}");
        assert!(
            line.starts_with(
                "opening the target: cannot set up storage: invalid storage configuration: \
                 cannot parse DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;"
            ),
            "{line}"
        );
    }

    /// A dependency's error that repeats its source in its message (kube's "HyperError: {0}").
    #[derive(Debug, thiserror::Error)]
    #[error("HyperError: {0}")]
    struct Repeating(#[source] std::io::Error);

    #[test]
    fn a_dependency_that_repeats_its_source_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error = anyhow::Error::from(Repeating(io)).context("the cluster does not answer");
        assert_eq!(
            text(error.as_ref()),
            "the cluster does not answer: HyperError: connection refused"
        );
    }
}
