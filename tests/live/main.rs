//! Live tests: the real Letta Code runtime (`letta remote`, pinned by
//! `.ci/letta-runtime`) against the bridge binary, driven through the
//! bridge's HTTP API only, with agent turns answered offline by a scripted
//! model server. Without the runtime installed they print `SKIPPED` (and
//! fail when `CI` is set).

// tests/support is shared with other test targets; each uses part of it.
#[allow(dead_code)]
#[path = "../support/bridge.rs"]
mod bridge;
#[allow(dead_code)]
#[path = "../support/letta.rs"]
mod letta;
#[allow(dead_code)]
#[path = "../support/model_server.rs"]
mod model_server;
#[allow(dead_code)]
#[path = "../support/process.rs"]
mod process;

mod harness;

mod connection;
mod turns;
