//! Command bodies from HTTP clients: never panic; every frame built from an
//! accepted body has a valid `type` and a string `request_id`.
#![no_main]

use letta_bridge::http::parse_json;
use letta_bridge::protocol::commands::{
    AbortCommand, ApprovalCommand, InputCommand, SyncCommand, TypedCommand, generic_frame, typed_frame,
};
use letta_bridge::protocol::frame::is_valid_type;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fn check(frame: &Map<String, Value>) {
    assert!(frame.get("type").and_then(Value::as_str).is_some_and(is_valid_type));
    assert!(frame.get("request_id").is_some_and(Value::is_string));
}

fn typed<C: TypedCommand + serde::de::DeserializeOwned>(data: &[u8]) {
    if let Ok(cmd) = parse_json::<C>(data) {
        if let Ok(frame) = typed_frame(&cmd) {
            check(&frame);
            assert_eq!(frame["type"], C::TYPE);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    typed::<InputCommand>(data);
    typed::<SyncCommand>(data);
    typed::<AbortCommand>(data);
    typed::<ApprovalCommand>(data);
    if let Ok(map) = parse_json::<Map<String, Value>>(data) {
        if let Ok(frame) = generic_frame(map) {
            check(&frame);
        }
    }
});
