//! edw-conformance harness: the library the conformance scenarios are written with.
//!
//! It holds the configuration of the system under test ([`config`]), every use of the
//! Azure Storage SDK ([`storage`]), an embedded real Azurite ([`azurite`]), the sample's
//! producer and consumer ([`workload`]), secret redaction ([`secrets`]) and the `edw` CLI
//! ([`cli`]).
pub mod arm;
pub mod azurite;
pub mod cli;
pub mod config;
pub mod deploy_script;
pub mod error_chain;
pub mod faults;
pub mod findings;
pub mod interrupt;
pub mod manifests;
pub mod model;
pub mod naming;
pub mod observe;
pub mod public_address;
pub mod scenario;
pub mod secrets;
pub mod storage;
pub mod target;
pub mod twin_governor;
pub mod twin_pods;
pub mod workload;
