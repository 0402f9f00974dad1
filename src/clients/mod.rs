//! Letta's own clients (`AppServerClient`, the Agent SDK's transports,
//! `letta-client`, `letta computers list`) talk to the bridge as to Letta's
//! environment router: besides the REST discovery (`http::environments`),
//! each client holds a socket — a relay socket per connection, agent and
//! conversation (`seq` and `ack`, `control` and `stream` channels) or an
//! App-Server socket — that carries the runtime's v2 frames both ways.
//!
//! A socket is a reader of the event log (like `GET /events`) that sends
//! commands through [`crate::runtime::Runtimes::dispatch`], so it works on
//! any instance of a cluster, whichever holds the runtime.

mod delivery;
mod socket;

pub use delivery::{Channel, Delivery};
pub use socket::{ClientSocket, Context};

/// Describes the client sockets' metrics (call once at start).
pub fn describe_metrics() {
    use ::metrics::{describe_counter, describe_gauge};
    describe_gauge!(socket::SOCKETS, "Open client sockets of Letta's clients, by kind (relay, app_server)");
    describe_counter!(socket::FRAMES_IN, "Frames received from Letta's clients, by socket kind");
    describe_counter!(socket::FRAMES_OUT, "Frames sent to Letta's clients, by socket kind");
}
