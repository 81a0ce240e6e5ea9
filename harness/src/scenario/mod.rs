//! Scenarios: ordered steps plus always-run cleanup steps ([`runner`]), the state they share
//! ([`context`]), the sample's flow ([`flow`]), the plain types of a run ([`model`]) and the
//! report writers ([`report`]).

pub mod catalogue;
pub mod chaos;
pub mod context;
pub mod flow;
pub mod model;
pub mod report;
pub mod run_state;
pub mod runner;
pub mod steady;
pub mod storage_firewall;

pub use context::{Context, DeployedGroup, FlowSettings, Footprint, RunNames};
pub use runner::{run, RunOptions, Scenario, Step, StepFn, StepFuture, StepResult};
pub use storage_firewall::FirewallOpening;
