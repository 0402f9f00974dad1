//! The one test kit of letta-bridge: every test target (`tests/api`,
//! `tests/live`, `tests/record`) and every test script (`tests/e2e`,
//! `tests/contract`, through the `fake-runtime` binary) takes its fake
//! runtime, SSE reader and child processes from here, so each exists once.
//!
//! # Layout
//!
//! - [`fixtures`]: the recorded runtime fixtures (`tests/fixtures/letta-code-<version>/`,
//!   written by `tests/record`), parsed once, with what the runtime's frames look like
//!   (its runtime scope test, its event envelope); and the hand-made frames of a newer
//!   runtime (`tests/fixtures/synthetic-newer/`, named `newer/<file>`).
//! - [`replay`]: a recorded step replayed as the answer to a live command: the live
//!   command's values in place of the recorded ones, fresh envelopes; recorded
//!   requests (the registration body) with stand-ins for their placeholders.
//! - [`fake_runtime`]: [`FakeRuntime`], a Letta Code runtime over a real WebSocket that
//!   answers commands with the recorded frames ([`fake_runtime::replies_to`]); the
//!   `fake-runtime` binary (`src/bin/fake_runtime.rs`) is the same for scripts.
//! - [`sse`]: [`Sse`], the reader of `GET /events` as a browser reads it.
//! - [`process`]: [`process::Guarded`], a child process that cannot outlive the test.
//! - [`bridge`]: [`bridge::BridgeProcess`], the bridge binary as a child process (the
//!   caller names the binary, e.g. `env!("CARGO_BIN_EXE_letta-bridge")`).
//! - [`letta`]: the real runtime (`letta remote`) as a child process.
//! - [`model_server`]: a scripted OpenAI-compatible model server for offline agent turns
//!   (text, or a tool call and the reply once its result comes back).
//! - [`redis`]: a real `redis-server` on a Unix socket, killed and restarted at will.
//! - [`sentinel`]: Redis that fails over: a primary, a replica and three Sentinels on
//!   loopback ports.
//! - [`nginx`]: nginx balancing over several bridges, from the repository's nginx config.
//! - [`otlp`]: an OTLP/HTTP trace receiver, for the bridge's exported spans.
//!
//! The kit does not depend on the `letta-bridge` crate: the in-process
//! `spawn_app()` lives with the tests that need it (`tests/api/helpers.rs`).
//! Data flows from the fixtures through [`replay`] into the fake runtime's
//! answers; everything else drives the bridge from outside, as its clients do.

use std::time::Duration;

pub mod bridge;
pub mod fake_runtime;
pub mod fixtures;
pub mod letta;
pub mod model_server;
pub mod nginx;
pub mod otlp;
pub mod process;
pub mod redis;
pub mod replay;
pub mod sentinel;
pub mod sse;

pub use fake_runtime::{FakeRuntime, Seen};
pub use sse::{Sse, SseEvent};

/// How long any single expectation on an in-process bridge may take before
/// the test fails (the fake runtime's reads, the SSE reader's default).
pub const WAIT: Duration = Duration::from_secs(5);
