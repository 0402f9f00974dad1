//! A recording as the recorder keeps it, raw: what was sent, every frame
//! and request that followed, with when it came. `write` normalises it into
//! fixture files.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;

use crate::server::Captured;
use crate::session::Received;

/// One command sent and what followed it.
pub struct Step {
    pub send: Option<Value>,
    pub sent_at: Instant,
    pub frames: Vec<Received>,
    pub timed_out: bool,
    /// HTTP requests the runtime made to the server meanwhile.
    pub http: Vec<Captured>,
    /// Requests the model server got meanwhile (`METHOD uri`).
    pub model: Vec<String>,
    /// The tool results the model server got meanwhile (`role: "tool"` messages).
    pub tool_results: Vec<Value>,
}

pub struct Exchange {
    pub name: &'static str,
    pub about: &'static str,
    pub steps: Vec<Step>,
}

/// The server closed the socket: what the runtime did next.
pub struct Reconnection {
    pub name: &'static str,
    pub about: &'static str,
    pub close: (u16, &'static str),
    pub closed_at: Instant,
    /// What still came on the closed socket (the runtime's close reply).
    pub old_socket: Vec<Received>,
    /// HTTP requests until the next upgrade (included), in order.
    pub requests: Vec<Captured>,
    pub reconnected: bool,
    /// Frames on the new socket before any command.
    pub first_frames: Vec<Received>,
    /// Commands sent on the new socket.
    pub steps: Vec<Step>,
    /// Whether the runtime process was still running at the end.
    pub alive_after: bool,
}

pub struct Recording {
    pub started_at: Instant,
    pub connected_at: Instant,
    /// Health and registration, before the socket.
    pub http_before_socket: Vec<Captured>,
    pub upgrade: Captured,
    /// Frames in the first seconds after connecting, before any command.
    pub first_frames: Vec<Received>,
    pub exchanges: Vec<Exchange>,
    pub reconnections: Vec<Reconnection>,
    pub pings: Vec<Received>,
    pub control_pings: Vec<Instant>,
    /// What the server saw after the runtime was stopped by SIGTERM.
    pub after_stop: Vec<Received>,
    pub stopped_at: Instant,
    pub home: PathBuf,
    pub server: String,
    pub model_server: String,
    pub agent_id: String,
    pub conversation_id: String,
    pub finished_at: Instant,
}
