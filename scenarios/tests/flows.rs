//! nextest entry point for the scenario catalogue: one trial per scenario per target
//! (`flow::burst::local`, `flow::burst::kube`, `flow::burst::aks`).

use edw_engine::target::TargetKind;
use edw_scenarios::{all, run_trial, skip_reason};
use libtest_mimic::{Arguments, Trial};

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for scenario in all() {
        for target in [TargetKind::Local, TargetKind::Kube, TargetKind::Aks] {
            let name = format!("{}::{}", scenario.name, target.name());
            let skip = skip_reason(target);
            if let (Some(reason), false) = (&skip, args.list) {
                eprintln!("{name}: skipped: {reason}");
            }
            let ignored = skip.is_some();
            let scenario = scenario.clone();
            // Listed as ignored (nextest shows it skipped). Forced to run (`--run-ignored`), an
            // unselected target fails with the reason: a check that could not run never passes.
            let trial = Trial::test(name, move || match skip {
                Some(reason) => Err(format!("not run: {reason}").into()),
                None => run_trial(&scenario, target).map_err(Into::into),
            });
            trials.push(trial.with_ignored_flag(ignored));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
