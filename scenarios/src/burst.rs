//! The sample's burst flow (twin-spec §7 and the walkthrough): deploy with the walkthrough's
//! checks, a burst of 1,000 messages, scale out and back in, verify, cleanup. `edw run`'s
//! default.

use edw_engine::runner::{FlowSettings, Scenario};
use edw_engine::steps;

/// The sample's burst flow.
pub fn burst() -> Scenario {
    let mut steps = steps::walkthrough_setup();
    steps.push(steps::load_step());
    steps.extend(steps::scale_checks());
    steps.push(steps::verify_step());
    Scenario {
        name: "flow::burst".to_owned(),
        settings: FlowSettings::default(),
        steps,
        cleanup: steps::cleanup(),
    }
}
