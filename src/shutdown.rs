//! Waiting for SIGINT or SIGTERM. The handlers are installed when
//! [`Signals::install`] is called, before the service announces that it
//! listens: a signal sent right after that announcement is then a graceful
//! shutdown, never the default action (which would kill the process).

#[cfg(unix)]
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT and SIGTERM, listened for from the moment they were installed.
pub struct Signals {
    #[cfg(unix)]
    interrupt: Option<Signal>,
    #[cfg(unix)]
    terminate: Option<Signal>,
}

impl Signals {
    /// Installs the handlers now (call it inside the runtime, before serving).
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for {name}");
                    None
                }
            };
            Self {
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
    pub async fn recv(mut self) {
        #[cfg(unix)]
        {
            let wait = |s: Option<Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(self.interrupt.take()) => tracing::info!("SIGINT received; shutting down"),
                () = wait(self.terminate.take()) => tracing::info!("SIGTERM received; shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C received; shutting down");
        }
    }
}
