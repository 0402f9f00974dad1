//! A client socket's commands on their way to the runtime: a bounded set
//! polled by the socket's own task, not tasks of their own. They end with
//! the socket — one that closes drops the commands it was still sending —
//! and a client has at most [`MAX_IN_FLIGHT`] of them waiting at once (a
//! forward may wait up to [`crate::runtime::WRITE_WAIT`]); beyond that its
//! command is refused as busy, in the reply its library waits for.

use std::future::Future;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

/// Most commands of one socket on their way to the runtime at once.
pub const MAX_IN_FLIGHT: usize = 16;

/// Why a command was refused while [`MAX_IN_FLIGHT`] others are on their way.
pub fn busy() -> String {
    format!(
        "this socket already has {MAX_IN_FLIGHT} commands on their way to the runtime; send it again once their replies come"
    )
}

/// The commands of one socket in flight.
pub struct InFlight<F> {
    set: FuturesUnordered<F>,
}

impl<F: Future> InFlight<F> {
    /// None yet.
    pub fn new() -> Self {
        Self { set: FuturesUnordered::new() }
    }

    /// True while fewer than [`MAX_IN_FLIGHT`] are in flight.
    pub fn has_room(&self) -> bool {
        self.set.len() < MAX_IN_FLIGHT
    }

    /// Adds a command; check [`Self::has_room`] first.
    pub fn push(&mut self, command: F) {
        debug_assert!(self.has_room(), "MAX_IN_FLIGHT commands are already in flight");
        self.set.push(command);
    }

    /// The outcome of the next command to finish; pending while none is in flight.
    pub async fn finished(&mut self) -> F::Output {
        match self.set.next().await {
            Some(outcome) => outcome,
            None => std::future::pending().await,
        }
    }
}

impl<F: Future> Default for InFlight<F> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::FutureExt;
    use tokio::sync::oneshot;

    use super::*;

    /// Counts the commands dropped before they finished.
    struct Dropped(Arc<AtomicUsize>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_socket_holds_at_most_its_limit_of_commands_and_closing_it_drops_them() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut commands = InFlight::new();
        let mut done = Vec::new();
        for i in 0..MAX_IN_FLIGHT {
            assert!(commands.has_room(), "room for command {i}");
            let (finish, finished) = oneshot::channel::<()>();
            done.push(finish);
            let guard = Dropped(dropped.clone());
            commands.push(async move {
                let _guard = guard;
                let _ = finished.await;
                i
            });
        }
        assert!(!commands.has_room(), "the next one is refused as busy");
        assert!(busy().contains(&MAX_IN_FLIGHT.to_string()));
        assert!(commands.finished().now_or_never().is_none(), "none has finished");
        done.swap_remove(3).send(()).unwrap();
        assert_eq!(commands.finished().await, 3, "the one that finished");
        assert!(commands.has_room(), "its place is free again");
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        drop(commands);
        assert_eq!(dropped.load(Ordering::SeqCst), MAX_IN_FLIGHT, "the socket closed: its commands are gone");
    }

    #[test]
    fn an_empty_set_never_finishes() {
        let mut commands = InFlight::<std::future::Ready<()>>::new();
        assert!(commands.finished().now_or_never().is_none());
    }
}
