//! The Letta edge: everything Letta's own clients (`AppServerClient`, the
//! Agent SDK's transports, `letta-client`, `letta computers list`) see of
//! the bridge when they use it as their environment router, except HTTP
//! (the routes are `http::letta`'s): a runtime as an environment, the
//! messages that become `input` commands, and the sockets — a relay socket
//! per connection, agent and conversation (`seq` and `ack`, `control` and
//! `stream` channels) or an App-Server socket — that carry the runtime's v2
//! frames both ways: the frames the bridge itself sends on them, what each
//! socket gets of the event log, the task that owns each, and its commands.
//!
//! A socket is a reader of the event log (like `GET /events`) that sends
//! commands through [`crate::runtime::Runtimes::dispatch`], so it works on
//! any instance of a cluster, whichever holds the runtime. Wire names are
//! [`crate::protocol::wire`]'s.

mod commands;
mod delivery;
pub mod environment;
pub mod frames;
pub mod messages;
mod socket;
mod sockets;

pub use commands::MAX_IN_FLIGHT;
pub use delivery::{Channel, Delivery};
pub use socket::{ClientSocket, Closing, REAUTH_CLOSE};
pub use sockets::Sockets;
