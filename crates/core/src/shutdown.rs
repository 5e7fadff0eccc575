//! A cloneable shutdown handle: cancelled once, on SIGTERM/SIGINT or by [`Shutdown::trigger`].
//!
//! Components `select!` on [`Shutdown::wait`] against their next await, stop taking new
//! work, finish what is in flight and return.

use tokio_util::sync::CancellationToken;

/// A shutdown signal shared by every task of a process.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A handle that nothing has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown of everyone holding a clone.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// True once triggered.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when shutdown has been triggered.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// Triggers this handle on the first SIGTERM or SIGINT; a second signal exits at once
    /// with status 130, for an operator who does not want to wait.
    pub fn trigger_on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("Shutdown signal received; finishing in-flight work.");
            this.trigger();
            wait_for_signal().await;
            tracing::warn!("Second signal received; exiting now.");
            std::process::exit(130);
        });
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still stops on the default action.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
