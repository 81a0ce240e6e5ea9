//! Ctrl-C and SIGTERM as a cancellation: what `edw` and the scenario trials share, so that an
//! interrupted run (a person's Ctrl-C, nextest's SIGTERM at its time limit, a CI job cancelled)
//! still runs its cleanup.

use tokio_util::sync::CancellationToken;

/// Cancels `cancel` on Ctrl-C or SIGTERM; the returned token tells whether that happened.
/// The handlers are registered before this returns (in the caller's runtime context), not when
/// a spawned task first runs: a signal that comes right after (on a busy machine, a run's first
/// lines are out before such a task is scheduled) still cancels instead of killing the process
/// with its cleanup undone.
pub fn cancel_on_interrupt(cancel: CancellationToken) -> CancellationToken {
    let interrupted = CancellationToken::new();
    let flag = interrupted.clone();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::spawn(async move {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    stop(&flag, &cancel);
                });
            }
            _ => {
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    stop(&flag, &cancel);
                });
            }
        }
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop(&flag, &cancel);
    });
    interrupted
}

fn stop(flag: &CancellationToken, cancel: &CancellationToken) {
    eprintln!("stopping (interrupted); cleaning up…");
    flag.cancel();
    cancel.cancel();
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A SIGTERM that comes before any spawned task has run (one thread, no await in between)
    /// cancels the run; it does not kill the process. (nextest runs each test in a process of
    /// its own, so the signal reaches this test only.)
    #[tokio::test(flavor = "current_thread")]
    async fn a_sigterm_right_after_registration_cancels_instead_of_killing() {
        let cancel = CancellationToken::new();
        let interrupted = cancel_on_interrupt(cancel.clone());
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        tokio::time::timeout(std::time::Duration::from_secs(10), interrupted.cancelled())
            .await
            .expect("the SIGTERM cancelled the run within 10 s");
        assert!(cancel.is_cancelled());
    }
}
