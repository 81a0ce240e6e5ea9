//! nextest entry point for the scenario catalogue: one trial per scenario per target
//! (`flow::burst::local`, `flow::burst::kube`, `flow::burst::aks`).

use edw_scenarios::{catalogue, run_trial, skip_reason};
use harness::target::TargetKind;
use libtest_mimic::{Arguments, Trial};

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for scenario in catalogue() {
        for target in [TargetKind::Local, TargetKind::Kube, TargetKind::Aks] {
            let name = format!("{}::{}", scenario.name, target.name());
            let skip = skip_reason(target);
            if let (Some(reason), false) = (&skip, args.list) {
                eprintln!("{name}: skipped: {reason}");
            }
            let scenario = scenario.clone();
            let ignored = skip.is_some();
            // Run anyway (`--run-ignored`), an unselected target reports itself ignored with
            // the reason: it never passes.
            let trial = Trial::ignorable_test(name, move || match skip {
                Some(reason) => Ok(Completion::ignored_with(reason)),
                None => run_trial(&scenario, target)
                    .map(|()| Completion::Completed)
                    .map_err(Into::into),
            });
            trials.push(trial.with_ignored_flag(ignored));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
