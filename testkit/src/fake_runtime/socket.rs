//! The task that owns a fake runtime's socket: it sends what the handle
//! queues, answers commands at once (before reporting them, as a runtime
//! replies while the test looks on), and reports everything it sees.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::replies::Replies;

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the fake runtime saw on its socket.
#[derive(Debug)]
pub enum Seen {
    Frame(Value),
    /// A WebSocket ping control frame (the bridge's liveness check).
    Ping,
    Close(Option<(u16, String)>),
    /// The socket ended (with or without a close frame).
    Ended,
}

/// What the handle asks of the socket task.
pub enum Ctl {
    Send(Message),
    /// Stop reading: no more pongs, no replies (a hung runtime).
    Silence,
    /// Drop the TCP connection without a close frame.
    Drop,
}

pub async fn drive(
    mut socket: Socket,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
    seen: mpsc::UnboundedSender<Seen>,
    replies: Replies,
) {
    loop {
        tokio::select! {
            c = ctl.recv() => match c {
                Some(Ctl::Send(msg)) => { let _ = socket.send(msg).await; }
                Some(Ctl::Silence) => {
                    // Hold the socket open but never read it again.
                    while let Some(c) = ctl.recv().await {
                        if matches!(c, Ctl::Drop) { return; }
                    }
                    return;
                }
                Some(Ctl::Drop) | None => return,
            },
            msg = socket.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).expect("the bridge sends JSON");
                    for reply in replies.to(&frame) {
                        let _ = socket.send(Message::text(reply.to_string())).await;
                    }
                    let _ = seen.send(Seen::Frame(frame));
                }
                Some(Ok(Message::Ping(_))) => { let _ = seen.send(Seen::Ping); }
                Some(Ok(Message::Close(frame))) => {
                    let frame = frame.map(|CloseFrame { code, reason }| (u16::from(code), reason.to_string()));
                    let _ = seen.send(Seen::Close(frame));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => { let _ = seen.send(Seen::Ended); return; }
            }
        }
    }
}
