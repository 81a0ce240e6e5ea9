//! Plain types of the edw conformance suite, no I/O: what the engine, the twin, the scenarios
//! and the CLI share.
//!
//! - [`walkthrough`]: the walkthrough's values (ScaledObject numbers, object names), one copy;
//! - [`keys`]: the configuration keys (the sample's variables, deploy.state, the suite's own);
//! - [`naming`], [`run`]: run-unique names, a run's footprint and settings;
//! - [`settings`], [`expect`]: the scaling model: the inputs read from a ScaledObject and a
//!   NodePool, and what they should do, computed from the rules of the twin specification
//!   (AQ-7 activation, HPA-4/HPA-7 replica count and legacy ramp, KS-5 scale to zero,
//!   KP-4/AZ-5..AZ-7 pods per node and node count, A5 provisioning latency). Scenarios state
//!   their expectations through it, derive their timeouts from it, and reports show expected
//!   next to observed;
//! - [`finding`]: a configuration finding;
//! - [`gate`]: a conformance profile and the release gate's verdict;
//! - [`history`]: run history lines and the regression rule;
//! - [`lifecycle`]: when each pod, NodeClaim and node passed each stage, and the latency
//!   distributions computed from it;
//! - [`phases`], [`prediction`]: a flow's phases by one set of rules, and each phase's model
//!   expectation, twin prediction and observation side by side;
//! - [`slices`]: a load split over the pods of an in-cluster load Job;
//! - [`report`]: what ran where, each step's outcome, the observed timeline, what the nodes
//!   cost ([`cost`]).

pub mod cost;
pub mod expect;
pub mod finding;
pub mod gate;
pub mod history;
pub mod keys;
pub mod lifecycle;
pub mod naming;
pub mod phases;
pub mod prediction;
pub mod report;
pub mod run;
pub mod settings;
pub mod slices;
pub mod walkthrough;

pub use expect::{BurstExpectation, Model, RampStep};
pub use settings::{ModelError, NodePoolSettings, ScalingSettings, TargetTiming};
