//! Runtimes other instances of a cluster hold, followed from the shared
//! log: commands to them go to that instance.

use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use super::super::target::Remote;
use super::{Live, Owner, Registry};

impl Registry {
    /// Another instance took `device_id`'s socket (read from the shared
    /// log): a local connection of the device is replaced, and commands go
    /// to that instance.
    pub(in crate::runtime) fn remote_online(&self, device_id: &str, node: &str, generation: u64, since: SystemTime) {
        let mut state = self.lock();
        let key = state.devices.get_key_value(device_id).map_or_else(|| Arc::from(device_id), |(k, _)| k.clone());
        let device = state.devices.entry(key.clone()).or_default();
        let remote = Remote { runtime_id: key, node: Arc::from(node), generation };
        let live =
            Live { owner: Owner::Remote(remote), since, last_pong: Arc::default(), replaced: CancellationToken::new() };
        if let Some(old) = device.live.replace(live) {
            old.replaced.cancel();
        }
        device.offline_since = None;
        device.seen = Some(SystemTime::now());
    }

    /// Another instance's connection of `device_id` ended (read from the
    /// shared log); a newer connection stays.
    pub(in crate::runtime) fn remote_offline(&self, device_id: &str, node: &str, generation: u64, at: SystemTime) {
        let mut state = self.lock();
        let Some(device) = state.devices.get_mut(device_id) else { return };
        if device.live.as_ref().is_some_and(|l| l.is(Some(node), generation)) {
            device.live = None;
            device.offline_since = Some(at);
            device.seen = Some(SystemTime::now());
        }
    }
}
