//! Registrations: which device a connection id belongs to, and what the
//! device said of itself when it registered.

use std::sync::Arc;
use std::time::SystemTime;

use super::super::peers::Registration;
use super::{Registry, RegistryFull, State};

impl Registry {
    /// Records a registration of a device this instance accepted, unless it
    /// is new and [`Registry::has_room`] says no; see [`Registry::register`].
    pub(in crate::runtime) fn register_bounded(
        &self,
        registration: Registration,
        id: Option<String>,
    ) -> Result<String, RegistryFull> {
        let mut state = self.lock();
        self.room(&mut state, &registration.device_id)?;
        Ok(self.record(&mut state, registration, id))
    }

    /// Records a registration; returns the device's connection id: `id`
    /// when given (a cluster assigns it), else the one it had, else a new one.
    pub(in crate::runtime) fn register(&self, registration: Registration, id: Option<String>) -> String {
        let mut state = self.lock();
        self.record(&mut state, registration, id)
    }

    fn record(&self, state: &mut State, registration: Registration, id: Option<String>) -> String {
        self.sweep(state);
        let key: Arc<str> = Arc::from(registration.device_id.as_str());
        let device = state.devices.entry(key.clone()).or_default();
        device.connection_name = registration.connection_name.or(device.connection_name.take());
        device.version = registration.version;
        device.os = registration.os;
        device.node_version = registration.node_version;
        device.seen = Some(SystemTime::now());
        if let Some(id) = id {
            device.connection_id = Some(id);
        }
        let id = device.connection_id.get_or_insert_with(|| format!("conn-{}", uuid::Uuid::new_v4())).clone();
        state.connections.insert(id.clone(), key);
        id
    }

    /// The device a registration's connection id belongs to.
    pub(in crate::runtime) fn device_of_connection(&self, connection_id: &str) -> Option<Arc<str>> {
        self.lock().connections.get(connection_id).cloned()
    }
}
