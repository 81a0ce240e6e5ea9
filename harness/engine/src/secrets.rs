//! Secret handling: a [`Secret`] wrapper that never prints its value, and [`redact`], which
//! removes account keys, SAS signatures, bearer tokens and connection-string keys (and any
//! value registered with [`register`]) from text before it reaches a log or a report.

use std::fmt;
use std::sync::{Mutex, OnceLock};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "***";

/// A secret string (account key, connection string, token). `Debug` and `Display` show
/// [`REDACTED`]; the value is reached only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value` and registers it so that [`redact`] removes it from any text.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Secret(value)
    }

    /// The secret value, for the one place that has to send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

fn registry() -> &'static Mutex<Vec<String>> {
    static REGISTRY: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remembers `value` as a secret so that [`redact`] removes it wherever it appears.
/// Values shorter than 8 characters are not registered: they would redact ordinary words.
pub fn register(value: &str) {
    if value.len() < 8 {
        return;
    }
    let mut known = registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !known.iter().any(|k| k == value) {
        known.push(value.to_owned());
    }
}

/// `key=` markers (compared without case) whose value is a secret, ended by one of
/// [`ends_value`].
const VALUE_MARKERS: &[&str] = &[
    "accountkey=",
    "sharedaccesssignature=",
    "sig=",
    "client_secret=",
    "access_token=",
    "refresh_token=",
    "client_assertion=",
    "azure_storage_key=",
    "azure_storage_connection_string=",
    "azure_client_secret=",
];

/// Words after which the next token is a secret (compared without case).
const TOKEN_MARKERS: &[&str] = &["bearer ", "sharedkey ", "sharedkeylite "];

fn ends_value(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            ';' | '&' | '"' | '\'' | '<' | '>' | ',' | ')' | '}' | '`'
        )
}

/// A short run of letters: prose after "bearer " or "sharedkey ", where a token (a JWT, an
/// opaque token, `account:signature`) is long or carries digits and punctuation.
fn is_word(value: &str) -> bool {
    let word = value.trim_end_matches([':', '.', '!', '?']);
    !word.is_empty() && word.len() < 20 && word.chars().all(|c| c.is_ascii_alphabetic())
}

/// Returns `text` with every secret replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    for marker in VALUE_MARKERS.iter().chain(TOKEN_MARKERS) {
        out = redact_after(&out, marker);
    }
    let known = registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for value in known.iter() {
        if out.contains(value.as_str()) {
            out = out.replace(value.as_str(), REDACTED);
        }
    }
    out
}

fn redact_after(text: &str, marker: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search_from = 0;
    while let Some(found) = lower[search_from..].find(marker) {
        let value_start = search_from + found + marker.len();
        // "sig=" must start a parameter, not end another word ("xsig=").
        let starts_word = search_from + found == 0
            || !text[..search_from + found]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let value_len = text[value_start..]
            .find(ends_value)
            .unwrap_or(text.len() - value_start);
        let value = &text[value_start..value_start + value_len];
        // After "bearer " a word ("failed to get bearer token") is prose, not a token.
        let a_word = TOKEN_MARKERS.contains(&marker) && is_word(value);
        if starts_word && value_len > 0 && value != REDACTED && !a_word {
            out.push_str(&text[copied..value_start]);
            out.push_str(REDACTED);
            copied = value_start + value_len;
        }
        search_from = value_start.max(search_from + found + 1);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("super-secret-value-123");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "super-secret-value-123");
        assert_eq!(redact("key is super-secret-value-123."), "key is ***.");
    }

    #[test]
    fn connection_string_and_sas_are_redacted() {
        let text = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc/def+==;EndpointSuffix=core.windows.net";
        assert_eq!(
            redact(text),
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;EndpointSuffix=core.windows.net"
        );
        let url = "https://a.queue.core.windows.net/q?sv=2022&sig=AbC%2Fd%3D&se=2026";
        assert_eq!(
            redact(url),
            "https://a.queue.core.windows.net/q?sv=2022&sig=***&se=2026"
        );
        assert_eq!(
            redact("Authorization: Bearer eyJ0eXAi.abc.def"),
            "Authorization: Bearer ***"
        );
        assert_eq!(redact("design=ok"), "design=ok");
    }

    #[test]
    fn words_after_bearer_are_prose_not_tokens() {
        assert_eq!(
            redact("failed to get bearer token from the CLI"),
            "failed to get bearer token from the CLI"
        );
        // As azure_identity words it: "failed to get bearer token: Multiple errors ...".
        assert_eq!(
            redact("failed to get bearer token: Multiple errors were encountered"),
            "failed to get bearer token: Multiple errors were encountered"
        );
        assert_eq!(
            redact("Authorization: Bearer abcdefghijklmnopqrstuvwxyzABCDEF"),
            "Authorization: Bearer ***"
        );
        assert_eq!(
            redact("Authorization: SharedKey devstoreaccount1:c2lnbmF0dXJl"),
            "Authorization: SharedKey ***"
        );
    }
}
