//! letta-bridge lets plain HTTP clients drive a Letta Code runtime.
//!
//! The runtime (`letta remote --backend local`, with `LETTA_BASE_URL` set to
//! this service) registers, opens a WebSocket and speaks its v2 JSON frames.
//! HTTP clients send commands with REST calls and read events as SSE.
//!
//! # Layout
//!
//! - [`config`]: settings from flags and `LETTA_BRIDGE_*` variables; token
//!   and origin rules (none generated in cluster mode); what start-up prints
//!   (generated tokens, the runtime's command line).
//! - [`auth`]: bearer tokens and roles, compared in constant time; the
//!   per-device runtime tokens of a file, re-read on SIGHUP.
//! - [`protocol`]: the runtime's v2 protocol, no I/O: parsing runtime
//!   frames, the one scope rule and the `sync` builder, command rules and
//!   typed bodies, who may send which commands and fields (the one
//!   privilege decision every door calls), how a turn unfolds in events,
//!   the bridge's own events, and every wire name (frame types, payload
//!   kinds, event names) as a constant in one place.
//! - [`hub`]: event ids `<epoch>-<seq>`, the bounded replay ring, and the
//!   one reader every subscriber reads it with (events, gaps and rebases
//!   under one lag policy).
//! - [`runtime`]: runtimes keyed by device, the task owning each socket, and
//!   commands end to end: routing, writing, awaiting a reply or a whole turn.
//!   Its seams: where events go ([`runtime::EventSink`]) and where a command
//!   goes ([`runtime::Target`]).
//! - [`letta`]: the Letta edge, for Letta's own clients, without HTTP: a
//!   runtime as an environment, messages as `input` commands, the frames
//!   the bridge sends them, and their sockets (relay sockets with
//!   `seq`/`ack`, App-Server sockets): what each gets of the event log, the
//!   task that owns each, and its commands, namespaced and bounded, to the
//!   runtime.
//! - [`store`]: idempotency answers and stream tickets, each behind a small
//!   interface with its in-memory implementation.
//! - [`http`]: axum handlers, one file per concern: commands (parse,
//!   authorise, dispatch, answer; with `Idempotency-Key`), events (SSE),
//!   status, the runtime's own endpoints, the Letta edge's routes (the
//!   environments API, the relay and App-Server socket upgrades), stream
//!   tickets, CORS/Origin checks, metrics, the console page, OpenAPI and
//!   the docs UI; extractors and the one error type.
//! - `cluster` (feature `cluster`, on by default): several instances on one
//!   Redis, behind the seams above — the shared log and its mirror, routing
//!   to the instance holding a runtime, leases, shared stores.
//! - [`listener`]: the one accept loop and way of serving a connection,
//!   plain or TLS, HTTP/1 (with WebSocket upgrades) or HTTP/2: counts
//!   connections, closes the ones that send no request head in time or sit
//!   idle, and makes room at the connection cap by closing the oldest idle
//!   one.
//! - [`startup`]: binds (port 0 in tests; TLS optional) and runs until shutdown.
//! - [`telemetry`], [`shutdown`]: logging, signals (SIGHUP reloads the
//!   runtime tokens file).
//!
//! # Data flow
//!
//! One way only. Commands: HTTP handler, or a client socket of Letta's →
//! [`runtime::Runtimes::dispatch`] →
//! the runtime's `Link` (bounded queue) → its socket task → WebSocket.
//! Events: WebSocket → socket task → [`runtime::EventSink`] (the hub,
//! framed as SSE once) → each subscriber reads the ring from its own cursor
//! ([`hub::Reader`]) → SSE response, a client socket of Letta's, or the
//! follower of a turn. Replies also complete the
//! command waiting on their `request_id`. Dependencies point down: `http` →
//! `letta`, `runtime`, `store`, `hub`, `protocol`; `letta` → `runtime`,
//! `hub`, `protocol`; `runtime` → `hub`, `protocol`; `hub` and `protocol` →
//! nothing of the crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
pub mod http;
pub mod hub;
pub mod letta;
pub mod listener;
pub mod protocol;
pub mod runtime;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use startup::Application;
