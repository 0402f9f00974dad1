//! The runtime's v2 protocol, with no I/O: the frames it sends (`frame`),
//! where frames apply (`scope`), the rules of command frames (`commands`)
//! and the typed bodies of the command endpoints (`bodies`), who may send
//! which commands and fields (`access`), how a turn
//! unfolds in events (`turn`), the bridge's own status events (`bridge`),
//! the event schemas of the OpenAPI document (`events`), and every wire
//! name in one place (`wire`).

pub mod access;
pub mod bodies;
pub mod bridge;
pub mod commands;
pub mod events;
pub mod frame;
pub mod scope;
pub mod turn;
pub mod wire;

pub use access::{Refusal, Role, UserPrincipal};
pub use commands::{Command, CommandError};
pub use frame::{FrameError, RuntimeFrame, parse_runtime_frame};
pub use scope::Scope;
