//! The engine of the edw conformance suite: what scenarios are written with and run on.
//!
//! - what is under test: the configuration ([`config`]), every use of the Azure Storage SDK
//!   ([`storage`]), the sample's producer and consumer ([`workload`]), its manifests
//!   ([`manifests`]), its deploy script ([`deploy_script`]), Azure Resource Manager ([`arm`]),
//!   configuration findings ([`findings`]);
//! - where it runs: [`target`] (local: embedded Azurite ([`azurite`]) and the twin with its
//!   consumer pods ([`twin_pods`]) on a governed clock ([`twin_governor`]); kube; aks);
//! - how a run sees it: [`observe`] (recorder, waits, diagnostics);
//! - how a scenario runs: [`runner`] (Scenario, Step, Context, `execute`), the public
//!   [`steps`] library, and the [`report`] writers;
//! - secret redaction ([`secrets`]), interruption ([`interrupt`]), this machine's public
//!   address ([`public_address`]).
pub mod arm;
pub mod azurite;
pub mod config;
pub mod deploy_script;
pub mod error_chain;
pub mod findings;
pub mod interrupt;
pub mod manifests;
pub mod observe;
pub mod predict;
pub mod public_address;
pub mod report;
pub mod runner;
pub mod secrets;
pub mod steps;
pub mod storage;
pub mod target;
pub mod twin_governor;
pub mod twin_pods;
pub mod workload;
