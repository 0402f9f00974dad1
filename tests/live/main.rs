//! Live tests: the real Letta Code runtime (`letta remote`, pinned by
//! `.ci/letta-runtime`) against the bridge binary, driven through the
//! bridge's HTTP API and by Letta's own unmodified clients (`clients`:
//! scenarios in `tests/clients/`; `users`: the same clients with end
//! users' tokens, two runtimes online), with agent turns answered offline by a
//! scripted model server. Without the runtime installed they print `SKIPPED` (and
//! fail when `CI` is set). The bridge, the runtime and the model server
//! come from the test kit (testkit/).

mod harness;
mod node;

mod approvals;
mod clients;
mod connection;
mod openai;
mod turns;
mod users;
