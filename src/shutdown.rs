//! Waiting for SIGINT or SIGTERM, and SIGHUP when something reloads on it.
//! The handlers are installed when [`Signals::install`] is called, before
//! the service announces that it listens: a signal sent right after that
//! announcement is then a graceful shutdown (or a reload), never the default
//! action (which would kill the process).

#[cfg(unix)]
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT and SIGTERM (and SIGHUP, when asked for), listened for from the
/// moment they were installed.
pub struct Signals {
    #[cfg(unix)]
    interrupt: Option<Signal>,
    #[cfg(unix)]
    terminate: Option<Signal>,
    /// Only when something reloads on it: otherwise SIGHUP keeps its default
    /// action (the process ends, e.g. with the terminal it ran in).
    #[cfg(unix)]
    hangup: Option<Signal>,
}

impl Signals {
    /// Installs the handlers now (call it inside the runtime, before
    /// serving); SIGHUP's too when `hangup` is true.
    pub fn install(hangup: bool) -> Self {
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
                hangup: if hangup { listen(SignalKind::hangup(), "SIGHUP") } else { None },
            }
        }
        #[cfg(not(unix))]
        {
            let _ = hangup;
            Self {}
        }
    }

    /// Resolves on the first SIGINT (Ctrl-C) or SIGTERM; calls `on_hangup`
    /// at each SIGHUP before then (when installed).
    pub async fn recv(mut self, mut on_hangup: impl FnMut()) {
        #[cfg(unix)]
        {
            let mut interrupt = self.interrupt.take();
            let mut terminate = self.terminate.take();
            loop {
                tokio::select! {
                    () = wait(interrupt.as_mut()) => {
                        tracing::info!("SIGINT received; shutting down");
                        return;
                    }
                    () = wait(terminate.as_mut()) => {
                        tracing::info!("SIGTERM received; shutting down");
                        return;
                    }
                    () = wait(self.hangup.as_mut()) => {
                        tracing::info!("SIGHUP received; reloading");
                        on_hangup();
                    }
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &mut on_hangup;
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C received; shutting down");
        }
    }
}

/// The next delivery of `signal`; never, when it is not installed.
#[cfg(unix)]
async fn wait(signal: Option<&mut Signal>) {
    match signal {
        Some(s) => {
            // `None`: the signal stream ended (it does not); wait for good.
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}
