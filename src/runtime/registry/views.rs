//! The registry as others read it: one runtime, all of them, a page, a
//! local connection's `runtime_online`; and the time formats they use.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::target::{KnownScope, RuntimeInfo, RuntimePage};
use super::{Device, Link, Registry};
use crate::protocol::bridge::RuntimeOnline;

impl Registry {
    /// One runtime, as this registry knows it.
    pub(in crate::runtime) fn info(&self, device_id: &str) -> Option<RuntimeInfo> {
        let state = self.lock();
        state.devices.get_key_value(device_id).map(|(id, d)| d.info(id))
    }

    /// All known runtimes, sorted by id.
    pub(in crate::runtime) fn list(&self) -> Vec<RuntimeInfo> {
        let state = self.lock();
        let mut list: Vec<RuntimeInfo> = state.devices.iter().map(|(id, d)| d.info(id)).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// At most `limit` runtimes with ids after `after`, sorted by id; and
    /// whether more follow.
    pub(in crate::runtime) fn page(&self, after: Option<&str>, limit: usize) -> RuntimePage {
        let state = self.lock();
        let mut ids: Vec<&Arc<str>> =
            state.devices.keys().filter(|id| after.is_none_or(|after| &***id > after)).collect();
        ids.sort_unstable();
        let more = ids.len() > limit;
        let runtimes = ids.into_iter().take(limit).map(|id| state.devices[id].info(id)).collect();
        RuntimePage { runtimes, more }
    }

    /// The scopes seen on each known runtime (of this instance, and in a
    /// cluster of every instance: the log's events are noted everywhere),
    /// by runtime id and then as first seen.
    pub(in crate::runtime) fn scopes_seen(&self) -> Vec<KnownScope> {
        let state = self.lock();
        let mut ids: Vec<&Arc<str>> = state.devices.keys().collect();
        ids.sort_unstable();
        let mut known = Vec::new();
        for id in ids {
            let device = &state.devices[id];
            let online = device.live.is_some();
            let scopes = device.scopes.list().into_iter();
            known.extend(scopes.map(|scope| KnownScope { runtime_id: id.to_string(), online, scope }));
        }
        known
    }

    /// The `runtime_online` of a local connection, while it is current.
    pub(in crate::runtime) fn online_event(&self, link: &Link) -> Option<RuntimeOnline> {
        let state = self.lock();
        let (key, device) = state.devices.get_key_value(&link.runtime_id)?;
        device.live.as_ref().filter(|l| l.is(None, link.generation))?;
        Some(device.online_event(key))
    }
}

impl Device {
    /// Its `runtime_online` (it must be live).
    pub(super) fn online_event(&self, id: &Arc<str>) -> RuntimeOnline {
        RuntimeOnline {
            kind: "runtime_online",
            runtime_id: id.to_string(),
            connection_name: self.connection_name.clone(),
            version: self.version.clone(),
            online_since: rfc3339(self.live.as_ref().map_or_else(SystemTime::now, |l| l.since)),
        }
    }

    fn info(&self, id: &str) -> RuntimeInfo {
        let pong = self.live.as_ref().map(|l| l.last_pong.load(Ordering::Relaxed)).filter(|ms| *ms > 0);
        RuntimeInfo {
            id: id.to_owned(),
            online: self.live.is_some(),
            connection_id: self.connection_id.clone(),
            connection_name: self.connection_name.clone(),
            online_since: self.live.as_ref().map(|l| rfc3339(l.since)),
            last_pong_at: pong.map(|ms| rfc3339(UNIX_EPOCH + Duration::from_millis(ms))),
            offline_since: self.offline_since.map(rfc3339),
            version: self.version.clone(),
            os: self.os.clone(),
            node_version: self.node_version.clone(),
            instance: None,
        }
    }
}

/// `SystemTime` as RFC 3339 with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Now as Unix milliseconds.
pub fn unix_millis_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
