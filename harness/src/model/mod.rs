//! The model: what the configuration under test should do, computed from the rules of the
//! twin specification (AQ-7 activation, HPA-4/HPA-7 replica count and legacy ramp, KS-5 scale
//! to zero, KP-4/AZ-5..AZ-7 pods per node and node count, A5 provisioning latency) for a
//! ScaledObject, a NodePool and the consumer's rate. Scenarios state their expectations through
//! it, derive their timeouts from it, and reports show expected next to observed.

mod expect;
mod settings;

pub use expect::{BurstExpectation, Model, RampStep};
pub use settings::{ModelError, NodePoolSettings, ScalingSettings, TargetTiming};
