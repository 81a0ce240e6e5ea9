//! The README's "Writing a scenario" example, compiled: the code between the markers below is
//! the README's block, character for character (the second test compares them), so the example
//! a team copies builds against the library as it is.

// README example begins
use edw_engine::observe::{eventually, Expect};
use edw_engine::runner::{Context, FlowSettings, Scenario, Step, StepFuture, StepResult};
use std::time::Duration;

/// Our settings: queueLength 10, maxReplicaCount 30, a 5,000-message burst.
fn our_burst() -> Scenario {
    let mut s = edw_scenarios::burst();
    s.name = "team::big_burst".into();
    s.settings = FlowSettings {
        queue_length: 10,
        max_replicas: 30,
        messages: 5000,
        ..FlowSettings::default()
    };
    s.steps.push(Step::new(
        "team: at least 3 nodes",
        Duration::from_secs(900),
        three_nodes,
    ));
    s
}

fn three_nodes(ctx: &mut Context) -> StepFuture<'_> {
    Box::pin(async move {
        let Some(recorder) = ctx.recorder.as_ref() else {
            return StepResult::failed("the recorder is not running (deploy starts it)", []);
        };
        let expect = Expect::new("3 or more Karpenter nodes", |o| o.total_nodes() >= 3);
        // Within 600 s on the target's clock (simulated seconds on the twin).
        match eventually(recorder, &expect, Duration::from_secs(600)).await {
            Ok(seen) => StepResult::passed([format!(
                "3 or more nodes seen at t={:.0} s: {} nodes",
                seen.t,
                seen.total_nodes()
            )]),
            Err(failure) => StepResult::failed("fewer than 3 nodes within 600 s", failure.lines()),
        }
    })
}
// README example ends

const README: &str = include_str!("../../../../README.md");
const THIS_FILE: &str = include_str!("readme_scenario.rs");

#[test]
fn the_example_builds_a_scenario_with_the_teams_settings_and_step() {
    let scenario = our_burst();
    assert_eq!(scenario.name, "team::big_burst");
    assert_eq!(scenario.settings.queue_length, 10);
    assert_eq!(scenario.settings.max_replicas, 30);
    assert_eq!(scenario.settings.messages, 5000);
    let last = scenario.steps.last().expect("steps");
    assert_eq!(last.name, "team: at least 3 nodes");
    assert_eq!(last.timeout, Duration::from_secs(900));
    // The sample's flow is kept before it.
    let burst = edw_scenarios::burst();
    assert_eq!(scenario.steps.len(), burst.steps.len() + 1);
    assert_eq!(scenario.cleanup.len(), burst.cleanup.len());
}

#[test]
fn the_readme_shows_exactly_this_code() {
    let begin = "// README example begins\n";
    let end = "// README example ends\n";
    let example = THIS_FILE
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(code, _)| code)
        .expect("the markers in this file");
    let section = README
        .split_once("### Writing a scenario")
        .expect("the README's section")
        .1;
    let block = section
        .split_once("```rust\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(code, _)| code)
        .expect("its rust block");
    assert_eq!(
        block, example,
        "README's \"Writing a scenario\" block differs from harness/cli/tests/suite/readme_scenario.rs"
    );
}
