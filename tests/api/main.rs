//! Integration tests: the service on port 0, driven by real HTTP, SSE and
//! WebSocket clients, with a fake Letta Code runtime.

mod access_log;
mod approvals;
mod auth;
mod bad_input;
mod browser;
mod cli;
mod clients;
mod commands;
mod conformance;
mod connections;
mod device_tokens;
mod docs;
mod environments;
mod events;
mod faults;
mod guidance;
mod helpers;
mod http2;
mod limits;
mod newer_runtime;
mod openapi;
mod ops;
mod pending;
mod privileges;
mod readme;
mod registration_limits;
mod registry;
mod relay_auth;
mod reliability;
mod resync;
mod runtimes;
mod shutdown;
mod sockets;
mod tls;
mod turns;
