//! Command bodies from HTTP clients: never panic; every frame built from an
//! accepted body has a valid `type` and a string `request_id`.
#![no_main]

use letta_bridge::http::parse_json;
use letta_bridge::protocol::Command;
use letta_bridge::protocol::bodies::{AbortCommand, ApprovalCommand, InputCommand, SyncCommand, TypedCommand, typed_command};
use letta_bridge::protocol::frame::is_valid_type;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fn check(command: &Command) -> Map<String, Value> {
    let frame: Map<String, Value> = serde_json::from_str(&command.to_text()).expect("commands are JSON objects");
    assert!(frame.get("type").and_then(Value::as_str).is_some_and(is_valid_type));
    assert_eq!(frame.get("type").and_then(Value::as_str), Some(command.kind()));
    assert_eq!(frame.get("request_id").and_then(Value::as_str), Some(command.request_id()));
    frame
}

fn typed<C: TypedCommand + serde::de::DeserializeOwned>(data: &[u8]) {
    if let Ok(cmd) = parse_json::<C>(data) {
        if let Ok(command) = typed_command(&cmd) {
            assert_eq!(check(&command)["type"], C::TYPE);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    typed::<InputCommand>(data);
    typed::<SyncCommand>(data);
    typed::<AbortCommand>(data);
    typed::<ApprovalCommand>(data);
    if let Ok(map) = parse_json::<Map<String, Value>>(data) {
        if let Ok(command) = Command::free_form(map) {
            check(&command);
        }
    }
});
