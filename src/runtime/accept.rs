//! Taking a runtime's upgraded socket: make its connection the device's
//! current one and run the task that owns the socket until it ends.

use axum::extract::ws::WebSocket;

use super::Runtimes;
use super::connection::Connection;

impl Runtimes {
    /// Serves `socket` as device `device_id`'s connection until it closes, is
    /// replaced by a newer one, or the bridge stops. The socket task is
    /// tracked, so that shutdown waits for its `runtime_offline`.
    pub async fn serve(&self, socket: WebSocket, device_id: &str, connection_name: Option<String>) {
        let connection = Connection::open(self, device_id, connection_name);
        self.inner.tasks.track_future(connection.run(socket)).await;
    }
}
