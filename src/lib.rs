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
//!   The core every door calls: `Runtimes::{dispatch, resolve, write_local,
//!   serve}`, with one error vocabulary ([`runtime::DispatchError`]); every
//!   event the log holds is applied in one place
//!   ([`runtime::Handle::on_applied`]: replies complete there). Its seams:
//!   where events go ([`runtime::EventSink`]), where a command goes
//!   ([`runtime::Target`]), the other instances ([`runtime::Peers`]), and
//!   the narrow [`runtime::Handle`] a backend calls back.
//! - [`letta`]: the Letta edge, for Letta's own clients, without HTTP: a
//!   runtime as an environment, messages as `input` commands, the frames
//!   the bridge sends them, and their sockets (relay sockets with
//!   `seq`/`ack`, App-Server sockets): what each gets of the event log, the
//!   task that owns each, and its commands, namespaced and bounded, to the
//!   runtime.
//! - [`store`]: idempotency answers, stream tickets, revoked user tokens,
//!   turns that outlive a request, feeds and per-credential rate buckets,
//!   each behind a small interface with its in-memory implementation.
//! - [`quota`]: per-credential limits (requests per second, open streams)
//!   for the client token and each end user, the one check every door's
//!   credential passes.
//! - [`http`]: axum handlers, one file per concern: commands (parse,
//!   authorise, dispatch, answer; with `Idempotency-Key`), events (SSE),
//!   status, the runtime's own endpoints, the Letta edge's routes (the
//!   environments API, the relay and App-Server socket upgrades), the
//!   OpenAI-compatible door (`/v1/chat/completions`, `/v1/responses`,
//!   `/v1/models`: a turn followed to its end or streamed as it grows,
//!   errors in OpenAI's shape), stream tickets, turns that outlive a
//!   request (`202` + `Location`, followed in the shutdown tree, polled at
//!   `/turns`), feeds (`GET /events` URLs for
//!   readers that take only a URL), CORS/Origin checks, metrics, the
//!   console page, OpenAPI (the 3.1 document shaped for importers, and its
//!   Swagger 2.0 rendering) and the docs UI; extractors and the one error
//!   type.
//! - [`backend`]: where events, runtimes and the stores live — in this
//!   process, or a cluster of instances on one Redis (`backend::cluster`,
//!   cargo feature `cluster`, on by default: the shared log as typed records
//!   and its mirror, routing to the instance holding a runtime, leases,
//!   fencing, shared stores, the primary a Redis Sentinel names and its
//!   failovers, behind the seams above). The one file that
//!   knows the feature; what `/status` shows of a cluster
//!   ([`backend::ClusterView`]).
//! - [`listener`]: the one accept loop and way of serving a connection,
//!   plain or TLS, HTTP/1 (with WebSocket upgrades) or HTTP/2: counts
//!   connections, closes the ones that send no request head in time or sit
//!   idle, makes room at the connection cap by closing the oldest idle
//!   one, and marks the connections accepted beyond the connect rate.
//! - [`metrics`]: every metric's name and description, in one place (each
//!   part records its own; `http` serves `/metrics`).
//! - [`startup`]: binds (port 0 in tests; TLS optional) and runs until shutdown.
//! - [`webhooks`]: hooks that post events to URLs, signed to Standard
//!   Webhooks v1: one reader of the log queues each event and its flat
//!   form (`turn.finished`, `approval.requested`) for the hooks it
//!   matches; one task per hook delivers in order along the retry
//!   schedule, behind the SSRF guard (LETTA_BRIDGE_WEBHOOK_ALLOW). In
//!   memory embedded; in a cluster the hooks and deliveries are in Redis
//!   (behind [`webhooks::WebhookStore`]) and one instance holding a lease
//!   reads and delivers, with the same matching and attempts.
//! - [`telemetry`]: logging, and traces when the `OTEL_*` variables ask
//!   for them (cargo feature `otel`, on by default): the spans the other
//!   modules open become OpenTelemetry spans exported over OTLP/HTTP
//!   through hyper's client, with the W3C `traceparent` read from
//!   requests, carried by forwarded commands and set on webhook
//!   deliveries; with traces off, nothing but a flag is checked.
//! - [`outbound`]: the service's own HTTP/1 requests (webhook deliveries,
//!   trace exports): one connection each, TLS with the system's roots.
//! - [`shutdown`]: signals (SIGHUP reloads the
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
//! follower of a turn (whose text as it grows a streaming OpenAI request
//! reads from a `watch`), or the webhooks' reader (each hook's bounded queue →
//! its delivery task → the receiver; in a cluster only the webhooks
//! leader reads, and the queues are lists in Redis). Each event the hub holds is then applied once
//! ([`runtime::Handle::on_applied`]): a reply completes the command waiting
//! on its `request_id`. In a cluster the sink appends to the shared log and
//! the mirror fills the hub and applies each event it reads, on every
//! instance; a command for another instance's runtime goes there and is
//! written with the same [`runtime::Runtimes::write_local`]. Dependencies
//! point down: `startup` → `backend`, `http`, `listener`; `http` → `backend` (the cluster
//! view), `webhooks`, `letta`, `quota`, `listener` (the connect-rate mark), `runtime`,
//! `store`, `hub`, `protocol`; `backend` →
//! `runtime`, `store`, `hub`, `protocol`, `config`, `webhooks`; `webhooks` → `hub`,
//! `store`, `protocol`, `outbound`, `metrics`; `letta` → `runtime`,
//! `hub`, `protocol`, `quota`; `quota` → `store`, `protocol`, `metrics`; `runtime` →
//! `hub`, `protocol`; `hub` and `protocol` → nothing of the crate;
//! `outbound` → `auth` (its TLS client). `telemetry` (→ `config`,
//! `outbound`) is called by `http`, `runtime`,
//! `backend` and `webhooks` to open spans and pass a `traceparent` on.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod backend;
pub mod config;
pub mod http;
pub mod hub;
pub mod letta;
pub mod listener;
pub mod metrics;
pub mod outbound;
pub mod protocol;
pub mod quota;
pub mod runtime;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhooks;

pub use config::Config;
pub use startup::Application;
