//! Conformance with the real runtime: what letta-code sent and accepted in
//! the recording (tests/fixtures/letta-code-<version>/, by tests/record) is
//! checked against the bridge. The bridge must accept every request and
//! frame the runtime sends, and send commands in the shapes the runtime
//! accepted. A failure here is protocol drift: re-record
//! (`tests/fixtures/record.sh`) and compare.
//!
//! By concept: the handshake (registration, upgrade, pings, close codes),
//! the runtime's frames reaching subscribers, and the commands the bridge
//! sends and the replies that complete them.

use serde_json::{Value, json};

mod commands;
mod frames;
mod handshake;

/// A JSON type name, for shape comparisons.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The shape of a JSON value: objects by key, arrays by their first item,
/// scalars by type name.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(items) => json!([items.first().map(shape)]),
        other => json!(type_name(other)),
    }
}
