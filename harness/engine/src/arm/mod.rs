//! Azure-side validation against Azure Resource Manager (ARM) over plain HTTPS.
//!
//! * [`ArmClient`]: GET/PUT/DELETE with `api-version`, bearer tokens from a [`TokenSource`],
//!   `Retry-After` on 429/503, long-running operations, typed errors ([`ArmError`]).
//! * [`validate`]: what the walkthrough's deploy.sh should have created, one [`Check`] each,
//!   for a [`Deployment`] read from deploy.state's keys.
//! * [`ResourceGroups`]: deleting a resource group and sweeping expired, tagged ones.
//! * [`preflight`]: what only the team can fix, checked before anything is deployed: the
//!   storage firewall, the signed-in principal's data roles, the cluster's Kubernetes version.
//! * [`StorageFirewall`]: one IP rule added to (and removed from) a storage account's network
//!   rules, every other rule kept.
//!
//! API versions are those of the recorded payloads in `fixtures/recorded/arm/` ([`api`]).

pub mod api;
mod check;
mod client;
mod deployment;
mod error;
mod kubernetes_version;
mod lifecycle;
mod lro;
pub mod preflight;
mod principal;
mod storage_firewall;
mod token;
mod validate;

pub use check::{names, Check, CheckOutcome};
pub use client::{ArmClient, ClientSettings, DEFAULT_BASE_URL};
pub use deployment::{Deployment, DeploymentError};
pub use error::ArmError;
pub use lifecycle::{DeleteOutcome, ExpiredGroup, ExpiryTags, ResourceGroups, SweepReport};
pub use principal::{PrincipalError, PrincipalKind, SignedInPrincipal};
pub use storage_firewall::{
    ip_rule_contains, ip_rule_refusal, Admission, NetworkRules, RuleRemoval, StorageFirewall,
};
pub use token::{DefaultCredentialToken, StaticToken, TokenFuture, TokenSource, ARM_SCOPE};
pub use validate::validate;
