//! The registry's bounds: devices kept without an open socket are
//! forgotten after `forget_after`, and at most [`MAX_OFFLINE_DEVICES`] are
//! kept at once.

use std::time::SystemTime;

use super::{Device, Registry, State};

/// Most devices kept without an open socket (registered and never
/// connected, or offline), besides the time bound of `forget_after`: a new
/// device beyond it is refused (registration `503`, a direct socket closed
/// `1013`) until old ones are forgotten. Devices already known are never
/// refused, and neither are devices other instances of a cluster report.
pub const MAX_OFFLINE_DEVICES: usize = 10_000;

/// A new device cannot be recorded: [`MAX_OFFLINE_DEVICES`] are kept.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the bridge keeps {MAX_OFFLINE_DEVICES} runtimes without an open socket (registered and never connected, or offline) and takes no new device until some are forgotten (LETTA_BRIDGE_FORGET_OFFLINE_AFTER); retry later"
)]
pub struct RegistryFull;

impl State {
    /// Devices without an open socket.
    fn offline(&self) -> usize {
        self.devices.values().filter(|d| d.live.is_none()).count()
    }
}

impl Registry {
    /// Forgets devices offline (or never connected) for `forget_after`: at
    /// most once per quarter of it, on a registration or a connection, so
    /// the scan costs nothing per event.
    pub(super) fn sweep(&self, state: &mut State) {
        let now = SystemTime::now();
        let due = now.duration_since(state.swept).is_ok_and(|d| d >= self.forget_after / 4);
        if due {
            self.sweep_now(state, now);
        }
    }

    /// Forgets devices offline (or never connected) for `forget_after`, now.
    fn sweep_now(&self, state: &mut State, now: SystemTime) {
        state.swept = now;
        let forget = self.forget_after;
        let stale = |d: &Device| {
            d.live.is_none() && d.seen.is_some_and(|seen| now.duration_since(seen).is_ok_and(|age| age >= forget))
        };
        let before = state.devices.len();
        state.devices.retain(|_, d| !stale(d));
        if state.devices.len() < before {
            let devices = &state.devices;
            state.connections.retain(|_, device| devices.contains_key(device));
            tracing::debug!(forgotten = before - state.devices.len(), "forgot runtimes offline for {forget:?}");
        }
    }

    /// Whether `device_id` may be recorded: it is known, or fewer than
    /// [`MAX_OFFLINE_DEVICES`] devices are without a socket (after
    /// forgetting the stale ones, when that many are).
    pub(in crate::runtime) fn has_room(&self, device_id: &str) -> Result<(), RegistryFull> {
        let mut state = self.lock();
        self.room(&mut state, device_id)
    }

    pub(super) fn room(&self, state: &mut State, device_id: &str) -> Result<(), RegistryFull> {
        if state.devices.contains_key(device_id) || state.offline() < MAX_OFFLINE_DEVICES {
            return Ok(());
        }
        self.sweep_now(state, SystemTime::now());
        if state.offline() < MAX_OFFLINE_DEVICES { Ok(()) } else { Err(RegistryFull) }
    }
}
