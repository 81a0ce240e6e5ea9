//! The `deploy.state` parser: what the sample's deploy.sh writes (`KEY=value` lines) plus what
//! people hand-edit (blank lines, `#` comments, `export ` prefixes, quoted values, CRLF line
//! ends, the walkthrough's `AZURE_COSMOSDB_TABLE` alias). Anything else is rejected with the
//! file, the line and the reason; unknown keys are accepted with a warning.

use std::path::{Path, PathBuf};

use edw_model::keys::{canonical_key, is_known_key, is_secret_key};

/// One `KEY=value` from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The canonical key (an alias is already mapped).
    pub key: String,
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// A parsed `deploy.state`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployState {
    pub path: PathBuf,
    /// Entries in file order; a later entry for the same key wins.
    pub entries: Vec<StateEntry>,
    /// Things worth telling the user that are not errors (unknown keys, aliases, repeats).
    pub warnings: Vec<String>,
}

impl DeployState {
    /// The last value given for `key`, with its line.
    pub fn get(&self, key: &str) -> Option<&StateEntry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }
}

/// Why a `deploy.state` was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployStateError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Reads and parses the file at `path`.
pub fn load(path: &Path) -> Result<DeployState, DeployStateError> {
    let bytes = std::fs::read(path).map_err(|e| DeployStateError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    parse_bytes(path, &bytes)
}

/// Parses file contents; `path` is only used in messages.
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<DeployState, DeployStateError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        DeployStateError::Syntax {
            path: path.to_owned(),
            line,
            reason: "the line is not valid UTF-8".to_owned(),
        }
    })?;
    parse(path, text)
}

/// Parses file text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<DeployState, DeployStateError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut state = DeployState {
        path: path.to_owned(),
        ..DeployState::default()
    };
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let fail = |reason: String| DeployStateError::Syntax {
            path: path.to_owned(),
            line,
            reason,
        };
        let content = raw.strip_suffix('\r').unwrap_or(raw).trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let content = strip_export(content);
        let Some((key, rest)) = content.split_once('=') else {
            return Err(fail(format!(
                "expected KEY=value, found {}",
                quote_excerpt(content)
            )));
        };
        if !is_valid_key(key) {
            return Err(fail(format!(
                "{} is not a variable name (letters, digits and _, not starting with a digit)",
                quote_excerpt(key)
            )));
        }
        let value = parse_value(rest, !is_secret_key(canonical_key(key))).map_err(fail)?;
        let canonical = canonical_key(key);
        if canonical != key {
            state.warnings.push(format!(
                "{}:{line}: {key} is read as {canonical}",
                path.display()
            ));
        } else if !is_known_key(key) {
            state.warnings.push(format!(
                "{}:{line}: unknown key {key} (ignored)",
                path.display()
            ));
            continue;
        }
        if value.is_empty() {
            // The walkthrough shows `KEY=` lines; an empty value leaves the key unset.
            continue;
        }
        if let Some(earlier) = state.get(canonical) {
            state.warnings.push(format!(
                "{}:{line}: {canonical} repeats line {}; the later value is used",
                path.display(),
                earlier.line
            ));
        }
        state.entries.push(StateEntry {
            key: canonical.to_owned(),
            value,
            line,
        });
    }
    Ok(state)
}

fn strip_export(content: &str) -> &str {
    match content.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => content,
    }
}

fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value after `=`: bare, or in single or double quotes, optionally followed by a
/// ` # comment`. With `show` false (a secret), messages do not quote the text.
fn parse_value(rest: &str, show: bool) -> Result<String, String> {
    let quote_excerpt = |text: &str| {
        if show {
            crate::secrets::redact(&quote_excerpt(text))
        } else {
            "(a secret, not shown)".to_owned()
        }
    };
    let (value, after) = match rest.chars().next() {
        Some(quote @ ('"' | '\'')) => {
            let body = &rest[1..];
            let mut value = String::new();
            let mut chars = body.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    c if c == quote => {
                        end = Some(i + 1);
                        break;
                    }
                    '\\' if quote == '"' => match chars.next() {
                        Some((_, escaped @ ('"' | '\\' | '$' | '`'))) => value.push(escaped),
                        Some((_, other)) => {
                            value.push('\\');
                            value.push(other);
                        }
                        None => break,
                    },
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| format!("the {quote}-quoted value is not closed"))?;
            (value, &body[end..])
        }
        _ => {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let bare = &rest[..end];
            if let Some(bad) = bare
                .chars()
                .find(|c| matches!(c, '"' | '\'' | '`' | '$' | ';'))
            {
                return Err(format!(
                    "the value {} has a {bad:?} outside quotes",
                    quote_excerpt(bare)
                ));
            }
            (bare.to_owned(), &rest[end..])
        }
    };
    let after = after.trim_start();
    if !after.is_empty() && !after.starts_with('#') {
        return Err(format!(
            "unexpected text after the value: {} (quote a value that has spaces)",
            quote_excerpt(after)
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!("the value has a control character {c:?}"));
    }
    Ok(value)
}

fn quote_excerpt(text: &str) -> String {
    let excerpt: String = text.chars().take(40).collect();
    if excerpt.len() < text.len() {
        format!("{excerpt:?}…")
    } else {
        format!("{excerpt:?}")
    }
}
