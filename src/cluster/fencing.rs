//! Self-fencing: an instance that cannot reach the engine (its lease not
//! renewed for half of LETTA_BRIDGE_NODE_TTL, or its append queue full)
//! closes its runtime sockets so that the runtimes reconnect to an instance
//! that can, reports not ready, and takes runtimes again once the engine
//! answers. The append script's fence catches any write that still arrives
//! late.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::runtime::Handle;

/// Whether this instance has fenced itself, and the runtimes it closes.
pub(super) struct Fence {
    fenced: AtomicBool,
    runtimes: Handle,
}

impl Fence {
    pub(super) fn new(runtimes: Handle) -> Self {
        Self { fenced: AtomicBool::new(false), runtimes }
    }

    /// Closes every local runtime socket (once per fencing).
    pub(super) fn fence(&self, why: &str) {
        if !self.fenced.swap(true, Ordering::Relaxed) {
            tracing::error!(why, "fencing this instance: closing its runtime sockets");
            self.runtimes.fence();
        }
    }

    /// The engine answers again: runtimes may connect here again.
    pub(super) fn lift(&self) {
        if self.fenced.swap(false, Ordering::Relaxed) {
            tracing::info!("the engine answers again; this instance takes runtimes again");
        }
    }

    /// True while this instance has fenced itself.
    pub(super) fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Relaxed)
    }
}
