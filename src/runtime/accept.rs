//! Taking a runtime's upgraded socket: make its connection the device's
//! current one and run the task that owns the socket until it ends.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};

use super::Runtimes;
use super::connection::Connection;

impl Runtimes {
    /// Serves `socket` as device `device_id`'s connection until it closes, is
    /// replaced by a newer one, or the bridge stops. The socket task is
    /// tracked, so that shutdown waits for its `runtime_offline`.
    pub async fn serve(
        &self,
        mut socket: WebSocket,
        device_id: &str,
        connection_name: Option<String>,
        revoked: impl Future<Output = ()> + Send,
    ) {
        if let Err(e) = self.accepts() {
            // 1013 "try again later": the runtime reconnects (elsewhere, through a balancer).
            tracing::warn!(error = %e, "refusing a runtime socket: this instance cannot reach the cluster's engine");
            let close =
                CloseFrame { code: 1013, reason: Utf8Bytes::from_static("bridge instance cannot reach its engine") };
            let _ = socket.send(Message::Close(Some(close))).await;
            return;
        }
        let connection = Connection::open(self, device_id, connection_name);
        // The credential taken away (a reload of the tokens file): the
        // socket closes with 1008, as if it had been refused.
        let revoke = connection.revoke_token();
        let run = connection.run(socket);
        self.inner
            .tasks
            .track_future(async move {
                tokio::pin!(run);
                tokio::select! {
                    () = &mut run => {}
                    () = revoked => {
                        revoke.cancel();
                        run.await;
                    }
                }
            })
            .await;
    }
}
