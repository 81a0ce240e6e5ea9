//! Storage errors that name the endpoint, resource and operation, sorted into the kinds a
//! caller acts on differently (bad credentials, missing resource, unreachable endpoint, …).
//! Every message passes through [`crate::secrets::redact`].

use azure_core::error::ErrorKind;

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The service refused the credentials (401/403). Never retried.
    #[error("{operation} on {resource} at {endpoint} was refused ({status} {code}): {hint}")]
    Authentication {
        operation: &'static str,
        resource: String,
        endpoint: String,
        status: u16,
        code: String,
        hint: &'static str,
    },
    /// The queue, table, entity or message does not exist.
    #[error("{operation}: {resource} not found at {endpoint} ({code})")]
    NotFound {
        operation: &'static str,
        resource: String,
        endpoint: String,
        code: String,
    },
    /// No HTTP answer at all (refused, reset, timed out), after the retries.
    #[error("{operation} on {resource}: {endpoint} is unreachable: {detail}")]
    Unreachable {
        operation: &'static str,
        resource: String,
        endpoint: String,
        detail: String,
    },
    /// Any other HTTP error status (for a transient one: after the retries).
    #[error("{operation} on {resource} at {endpoint} failed with HTTP {status} {code}: {detail}")]
    Service {
        operation: &'static str,
        resource: String,
        endpoint: String,
        status: u16,
        code: String,
        detail: String,
    },
    /// No Entra ID token could be obtained.
    #[error("cannot get an Entra ID token for Azure Storage: {detail}")]
    Credential { detail: String },
    /// The storage configuration cannot work (no account, bad connection string, …).
    #[error("invalid storage configuration: {0}")]
    Config(String),
    /// A response could not be understood.
    #[error("{operation} on {resource}: unexpected response: {detail}")]
    Unexpected {
        operation: &'static str,
        resource: String,
        detail: String,
    },
}

impl StorageError {
    /// The HTTP status, where the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            StorageError::Authentication { status, .. } | StorageError::Service { status, .. } => {
                Some(*status)
            }
            StorageError::NotFound { .. } => Some(404),
            _ => None,
        }
    }

    /// The storage error code (`QueueNotFound`, `EntityAlreadyExists`, …), where there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            StorageError::Authentication { code, .. }
            | StorageError::NotFound { code, .. }
            | StorageError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True for a missing resource.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }

    /// True when the operation conflicted with an existing resource (409).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// True when the storage configuration itself cannot work (fix the settings, not the
    /// environment).
    pub fn is_configuration(&self) -> bool {
        matches!(self, StorageError::Config(_))
    }

    /// True for a refused credential.
    pub fn is_authentication(&self) -> bool {
        matches!(
            self,
            StorageError::Authentication { .. } | StorageError::Credential { .. }
        )
    }
}

/// What an SDK error was about, to build a [`StorageError`] from it.
pub(super) struct Failed<'a> {
    pub operation: &'static str,
    pub resource: &'a str,
    pub endpoint: &'a str,
}

impl Failed<'_> {
    /// `Ok` when the call worked or failed only in the `benign` way (a create that found the
    /// resource there, a delete that found it gone): what idempotent operations need.
    pub fn tolerate<T>(
        &self,
        result: azure_core::Result<T>,
        benign: fn(&StorageError) -> bool,
    ) -> Result<(), StorageError> {
        match result {
            Ok(_) => Ok(()),
            Err(e) => match self.classify(e) {
                error if benign(&error) => Ok(()),
                error => Err(error),
            },
        }
    }

    pub fn classify(&self, error: azure_core::Error) -> StorageError {
        let detail = crate::error_chain::text(&error);
        let resource = self.resource.to_owned();
        let endpoint = self.endpoint.to_owned();
        let operation = self.operation;
        match error.kind() {
            ErrorKind::HttpResponse { status, error_code } => {
                let status = u16::from(*status);
                let code = error_code
                    .clone()
                    .unwrap_or_else(|| "no error code".to_owned());
                match status {
                    401 | 403 => StorageError::Authentication {
                        operation,
                        resource,
                        endpoint,
                        status,
                        hint: auth_hint(&code),
                        code,
                    },
                    404 => StorageError::NotFound {
                        operation,
                        resource,
                        endpoint,
                        code,
                    },
                    _ => StorageError::Service {
                        operation,
                        resource,
                        endpoint,
                        status,
                        code,
                        detail,
                    },
                }
            }
            ErrorKind::Io => StorageError::Unreachable {
                operation,
                resource,
                endpoint,
                detail,
            },
            ErrorKind::Credential => StorageError::Credential { detail },
            _ => StorageError::Unexpected {
                operation,
                resource,
                detail,
            },
        }
    }
}

fn auth_hint(code: &str) -> &'static str {
    match code {
        "AuthorizationPermissionMismatch" => {
            "the identity is signed in but lacks a data role on the account: the sample's deploy.sh grants Storage Queue Data Contributor and Storage Table Data Contributor to the workload identity only, not to the person or CI identity running edw; grant both to it (`az role assignment create --role \"Storage Queue Data Contributor\" --assignee <object id> --scope <storage account id>`, and the same for Storage Table Data Contributor)"
        }
        "AuthenticationFailed" => {
            "the account key, SAS or token was rejected: check the key or connection string"
        }
        // Azure Storage answers a request its network rules deny with 403 AuthorizationFailure
        // ("This request is not authorized to perform this operation").
        "AuthorizationFailure" => {
            "the account refused this request: check the key or SAS (Azurite's table service answers a wrong key so); with a valid credential it is the account's firewall (the sample's deploy.sh denies by default and allows only the deployer's address and the AKS subnet); add this machine's address to the account's network rules for the run (`az storage account network-rule add --account-name <account> --ip-address <this address>`, removed afterwards) or produce and verify from inside the cluster; `edw doctor --target aks` checks it"
        }
        "AuthorizationSourceIPMismatch" | "AuthorizationProtocolMismatch" => {
            "the account's network rules refuse this client (firewall / allowed IPs)"
        }
        _ => "the credentials were rejected: check the key, connection string or role assignment",
    }
}

#[cfg(test)]
mod tests {
    use super::auth_hint;

    #[test]
    fn a_firewall_a_missing_role_and_a_bad_key_each_get_their_fix() {
        let firewall = auth_hint("AuthorizationFailure");
        assert!(firewall.contains("firewall") && firewall.contains("network-rule add"));
        assert!(
            firewall.contains("check the key"),
            "Azurite's tables say so for a wrong key"
        );
        let role = auth_hint("AuthorizationPermissionMismatch");
        assert!(
            role.contains("Storage Queue Data Contributor")
                && role.contains("az role assignment create")
        );
        let key = auth_hint("AuthenticationFailed");
        assert!(key.contains("key") && !key.contains("firewall"));
    }
}
