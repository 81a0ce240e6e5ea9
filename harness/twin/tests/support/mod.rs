//! What several twin test binaries share: an engine on the virtual clock with a namespace, and
//! waiting for a condition on the scaled clock.

#![allow(dead_code)] // each test binary uses its part

use std::time::{Duration, Instant};

use edw_twin::engine::Engine;
use edw_twin::params::TwinParams;
use edw_twin::queue::LoadProfile;
use serde_json::json;

/// A twin on the virtual clock with the specification's params and namespace `ns`.
pub fn engine_with_namespace(ns: &str) -> Engine {
    let engine = Engine::new_virtual(TwinParams::default(), &LoadProfile::default()).expect("twin");
    engine
        .store
        .create(
            "namespaces",
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .expect("namespace");
    engine
}

/// Polls `check` until it holds, failing with `what` and the last state after `within`.
pub async fn eventually_within(
    what: &str,
    within: Duration,
    check: impl Fn() -> Result<(), String>,
) {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(()) => return,
            Err(state) if Instant::now() > deadline => panic!("{what}: still {state}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
