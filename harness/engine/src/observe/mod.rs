//! Watching the system under test: the observation recorder (queue depth, replicas, pods,
//! nodes, NodeClaims, HPA, sampled on every watch event and on a timer), waits written as
//! predicates over observations ("eventually within T", "consistently for W"), the lifecycle
//! ledger it keeps (when each pod and NodeClaim passed each stage), and the diagnostic bundle
//! captured when something fails.

mod autoscaler;
mod diagnostics;
mod lifecycle;
mod recorder;
mod wait;

pub use autoscaler::{disagreement, read_view, Agreement, AutoscalerView, Mismatch};
pub use diagnostics::capture as capture_diagnostics;
pub use recorder::{sample as sample_once, Recorder, Subject};
pub use wait::{consistently, eventually, Expect, WaitFailure};
