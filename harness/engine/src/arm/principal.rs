//! [`SignedInPrincipal`]: who the harness is signed in as, read from the `oid` (object id) and
//! `idtyp`/`scp` claims of its Azure Resource Manager token. The token's payload is decoded
//! without verifying its signature (ARM verifies it; the harness only needs to name the
//! principal), and the token itself never appears in a message.

use base64::Engine as _;
use serde_json::Value;

use crate::secrets::Secret;

/// What kind of principal a token was issued to, as `az role assignment create
/// --assignee-principal-type` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A person signed in (`az login`): `User`.
    User,
    /// An application, a service principal or a managed identity (CI): `ServicePrincipal`.
    ServicePrincipal,
}

impl PrincipalKind {
    /// `User` or `ServicePrincipal`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "User",
            PrincipalKind::ServicePrincipal => "ServicePrincipal",
        }
    }
}

/// The principal a token was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInPrincipal {
    /// The Entra ID object id (`oid`).
    pub object_id: String,
    pub kind: PrincipalKind,
}

/// Why a token names no principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// Not three dot-separated parts (an opaque token, e.g. a test's `EDW_ARM_TOKEN`).
    #[error("the ARM token is not a JSON Web Token (no three dot-separated parts)")]
    NotJwt,
    /// The middle part is not base64url-encoded JSON.
    #[error("the ARM token's payload is not base64url-encoded JSON: {0}")]
    Payload(String),
    /// The payload has no `oid` claim.
    #[error("the ARM token has no `oid` (object id) claim")]
    NoObjectId,
}

impl SignedInPrincipal {
    /// The principal `token` was issued to.
    pub fn from_token(token: &Secret) -> Result<SignedInPrincipal, PrincipalError> {
        let parts: Vec<&str> = token.expose().split('.').collect();
        let [_, payload, _] = parts[..] else {
            return Err(PrincipalError::NotJwt);
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|e| PrincipalError::Payload(e.to_string()))?;
        let claims: Value =
            serde_json::from_slice(&bytes).map_err(|e| PrincipalError::Payload(e.to_string()))?;
        let object_id = claims
            .get("oid")
            .and_then(Value::as_str)
            .filter(|oid| !oid.is_empty())
            .ok_or(PrincipalError::NoObjectId)?
            .to_owned();
        // `idtyp` ("user" or "app") when the token carries it; else a delegated token (a
        // person's) has scopes (`scp`) and an application's has none.
        let kind = match claims.get("idtyp").and_then(Value::as_str) {
            Some(t) if t.eq_ignore_ascii_case("user") => PrincipalKind::User,
            Some(_) => PrincipalKind::ServicePrincipal,
            None if claims.get("scp").is_some() => PrincipalKind::User,
            None => PrincipalKind::ServicePrincipal,
        };
        Ok(SignedInPrincipal { object_id, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(claims: Value) -> Secret {
        let encode = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        Secret::new(format!(
            "{}.{}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk",
            encode(&json!({"typ": "JWT", "alg": "RS256"})),
            encode(&claims)
        ))
    }

    #[test]
    fn the_object_id_and_kind_come_from_the_claims() {
        let user = token(json!({"oid": "4f1c", "idtyp": "user", "scp": "user_impersonation"}));
        assert_eq!(
            SignedInPrincipal::from_token(&user),
            Ok(SignedInPrincipal {
                object_id: "4f1c".into(),
                kind: PrincipalKind::User
            })
        );
        let app = token(json!({"oid": "9a2b", "idtyp": "app"}));
        assert_eq!(
            SignedInPrincipal::from_token(&app).map(|p| p.kind),
            Ok(PrincipalKind::ServicePrincipal)
        );
        // Without idtyp: scopes mean a person, none an application.
        let delegated = token(json!({"oid": "1", "scp": "user_impersonation"}));
        assert_eq!(
            SignedInPrincipal::from_token(&delegated).map(|p| p.kind),
            Ok(PrincipalKind::User)
        );
        let application = token(json!({"oid": "2", "roles": []}));
        assert_eq!(
            SignedInPrincipal::from_token(&application).map(|p| p.kind),
            Ok(PrincipalKind::ServicePrincipal)
        );
    }

    #[test]
    fn tokens_without_a_principal_are_told_apart() {
        assert_eq!(
            SignedInPrincipal::from_token(&Secret::new("opaque-test-token-1234")),
            Err(PrincipalError::NotJwt)
        );
        assert!(matches!(
            SignedInPrincipal::from_token(&Secret::new("a.%%%.c")),
            Err(PrincipalError::Payload(_))
        ));
        assert_eq!(
            SignedInPrincipal::from_token(&token(json!({"sub": "x"}))),
            Err(PrincipalError::NoObjectId)
        );
    }
}
