//! The runtime's v2 protocol: frames it sends (`frame`), commands we send
//! (`commands`), and the bridge's own status events (`bridge`). No I/O here.

pub mod bridge;
pub mod commands;
pub mod events;
pub mod frame;

pub use frame::{FrameError, RuntimeFrame, parse_runtime_frame};
