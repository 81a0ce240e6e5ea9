//! Ctrl-C and SIGTERM as a cancellation: what `edw` and the scenario trials share, so that an
//! interrupted run (a person's Ctrl-C, nextest's SIGTERM at its time limit, a CI job cancelled)
//! still runs its cleanup.

use tokio_util::sync::CancellationToken;

/// Cancels `cancel` on Ctrl-C or SIGTERM; the returned token tells whether that happened.
pub fn cancel_on_interrupt(cancel: CancellationToken) -> CancellationToken {
    let interrupted = CancellationToken::new();
    let flag = interrupted.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    flag.cancel();
                    cancel.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("stopping (interrupted); cleaning up…");
        flag.cancel();
        cancel.cancel();
    });
    interrupted
}
