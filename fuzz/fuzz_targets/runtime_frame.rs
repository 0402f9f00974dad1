//! Frames from the runtime: never panic, and whatever is accepted must be
//! safe to frame as one SSE `data:` line and readable back as JSON.
#![no_main]

use letta_bridge::protocol::frame::is_valid_type;
use letta_bridge::protocol::parse_runtime_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(frame) = parse_runtime_frame(text, "dev-1") else { return };
    assert!(!frame.data.contains(['\n', '\r']), "data must be one line");
    assert!(is_valid_type(&frame.kind));
    let value: serde_json::Value = serde_json::from_str(&frame.data).expect("accepted data reads back as JSON");
    assert_eq!(value["runtime_id"], "dev-1");
    assert_eq!(value["type"], frame.kind.as_str());
});
