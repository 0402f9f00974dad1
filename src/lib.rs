//! letta-bridge lets plain HTTP clients drive a Letta Code runtime.
//!
//! The runtime (`letta remote --backend local`, with `LETTA_BASE_URL` set to
//! this service) registers, opens a WebSocket and speaks its v2 JSON frames.
//! HTTP clients send commands with REST calls and read events as SSE.
//!
//! # Layout
//!
//! - [`config`]: settings from flags and `LETTA_BRIDGE_*` variables; token rules.
//! - [`auth`]: bearer tokens and roles, compared in constant time.
//! - [`protocol`]: v2 frames, no I/O: parsing runtime frames, typed command
//!   bodies, which commands are privileged, the bridge's own status events.
//! - [`hub`]: event ids `<epoch>-<seq>`, the bounded replay ring, subscriptions.
//! - [`runtime`]: runtimes keyed by device, the task owning each socket,
//!   replies awaited by `request_id`.
//! - [`http`]: axum handlers, one file per concern: commands (with
//!   `Idempotency-Key`; `turn` follows a turn for `?wait=completion`), events
//!   (SSE), status, the runtime's own endpoints,
//!   stream tickets, CORS/Origin checks, metrics, the console page, OpenAPI
//!   and the docs UI; extractors and the one error type.
//! - [`startup`]: binds (port 0 in tests; TLS optional) and runs until shutdown.
//! - [`telemetry`], [`shutdown`]: logging, signals.
//!
//! # Data flow
//!
//! One way only. Commands: HTTP handler → `runtime::Link` (bounded queue) →
//! the runtime's socket task → WebSocket. Events: WebSocket → socket task →
//! `hub::Hub::publish` (framed as SSE once) → each subscriber reads the ring
//! from its own cursor → SSE response. Replies also complete the HTTP request
//! waiting on their `request_id`. Dependencies point down: `http` →
//! `runtime`, `hub`, `protocol`; `runtime` → `hub`, `protocol`; `hub` → nothing.

pub mod auth;
pub mod config;
pub mod http;
pub mod hub;
pub mod protocol;
pub mod runtime;
pub mod shutdown;
pub mod startup;
pub mod telemetry;

pub use config::Config;
pub use startup::Application;
