//! [`ArmError`]: what can go wrong talking to ARM, always naming the resource id, and the HTTP
//! status and ARM error code when there is one. Texts are redacted: no token ever shows.

use std::time::Duration;

use crate::secrets::redact;

/// An ARM request that did not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmError {
    /// HTTP 404: the resource (or its parent) does not exist.
    #[error("{resource}: not found (HTTP 404, {code}): {message}")]
    NotFound {
        resource: String,
        code: String,
        message: String,
    },
    /// Any other error status.
    #[error("{resource}: HTTP {status}, {code}: {message}")]
    Http {
        resource: String,
        status: u16,
        code: String,
        message: String,
    },
    /// 429/503 still after the allowed retries.
    #[error("{resource}: HTTP {status}, {code}: still throttled or unavailable after {attempts} attempts")]
    Throttled {
        resource: String,
        status: u16,
        code: String,
        attempts: u32,
    },
    /// A body that is not the JSON ARM documents.
    #[error("{resource}: malformed response (HTTP {status}): {reason}")]
    Malformed {
        resource: String,
        status: u16,
        reason: String,
    },
    /// The request could not be sent or its answer not read.
    #[error("{resource}: request failed: {reason}")]
    Transport { resource: String, reason: String },
    /// No bearer token could be obtained.
    #[error("{resource}: no ARM token: {reason}")]
    Token { resource: String, reason: String },
    /// A long-running operation ended Failed or Canceled.
    #[error("{resource}: long-running operation ended {status}, {code}: {message}")]
    OperationFailed {
        resource: String,
        status: String,
        code: String,
        message: String,
    },
    /// A long-running operation (or a wait for deletion) passed its deadline.
    #[error("{resource}: not finished after {waited:?} (last seen: {last})")]
    Timeout {
        resource: String,
        waited: Duration,
        last: String,
    },
    /// A name or URL the client refuses to use (bad path segment, foreign polling host).
    #[error("{resource}: invalid request: {reason}")]
    Invalid { resource: String, reason: String },
}

impl ArmError {
    /// The resource id the error is about.
    pub fn resource(&self) -> &str {
        match self {
            ArmError::NotFound { resource, .. }
            | ArmError::Http { resource, .. }
            | ArmError::Throttled { resource, .. }
            | ArmError::Malformed { resource, .. }
            | ArmError::Transport { resource, .. }
            | ArmError::Token { resource, .. }
            | ArmError::OperationFailed { resource, .. }
            | ArmError::Timeout { resource, .. }
            | ArmError::Invalid { resource, .. } => resource,
        }
    }

    /// The HTTP status, when the error came with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ArmError::NotFound { .. } => Some(404),
            ArmError::Http { status, .. }
            | ArmError::Throttled { status, .. }
            | ArmError::Malformed { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The ARM error code (`error.code`), when the error came with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ArmError::NotFound { code, .. }
            | ArmError::Http { code, .. }
            | ArmError::Throttled { code, .. }
            | ArmError::OperationFailed { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True when ARM itself is out of reach or refuses the caller (no token, a refused token,
    /// no answer, still throttled): the environment is at fault, not the resource asked for.
    pub fn is_access_failure(&self) -> bool {
        match self {
            ArmError::Token { .. } | ArmError::Transport { .. } | ArmError::Throttled { .. } => {
                true
            }
            ArmError::Http { status, .. } => matches!(status, 401 | 403),
            _ => false,
        }
    }

    /// True for [`ArmError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, ArmError::NotFound { .. })
    }

    /// From an error status and its body (`{"error":{"code","message"}}` when ARM wrote it).
    pub(crate) fn from_status(resource: &str, status: u16, body: &[u8]) -> ArmError {
        let (code, message) = error_code_message(body);
        let resource = redact(resource);
        if status == 404 {
            ArmError::NotFound {
                resource,
                code,
                message,
            }
        } else {
            ArmError::Http {
                resource,
                status,
                code,
                message,
            }
        }
    }

    pub(crate) fn malformed(resource: &str, status: u16, reason: impl AsRef<str>) -> ArmError {
        ArmError::Malformed {
            resource: redact(resource),
            status,
            reason: redact(reason.as_ref()),
        }
    }

    pub(crate) fn transport(resource: &str, reason: impl AsRef<str>) -> ArmError {
        ArmError::Transport {
            resource: redact(resource),
            reason: redact(reason.as_ref()),
        }
    }

    pub(crate) fn invalid(resource: &str, reason: impl AsRef<str>) -> ArmError {
        ArmError::Invalid {
            resource: redact(resource),
            reason: redact(reason.as_ref()),
        }
    }
}

/// The longest body excerpt quoted in an error.
const EXCERPT: usize = 300;

/// `error.code` and `error.message` of an ARM error body, else `unknown` and an excerpt.
pub(crate) fn error_code_message(body: &[u8]) -> (String, String) {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .and_then(|v| v.as_str())
            .map(redact)
    };
    let code = field("code").unwrap_or_else(|| "unknown".to_owned());
    let message = field("message").unwrap_or_else(|| excerpt(body));
    (code, message)
}

/// The start of `body` as text, redacted.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let cut: String = text.chars().take(EXCERPT).collect();
    let more = if cut.len() < text.len() { "…" } else { "" };
    format!("{}{more}", redact(&cut))
}
