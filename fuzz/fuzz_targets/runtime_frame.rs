//! Frames from the runtime: never panic, and whatever is accepted must be
//! safe to frame as one SSE `data:` line and still be the same JSON with
//! `runtime_id` added.
#![no_main]

use letta_bridge::protocol::frame::is_valid_type;
use letta_bridge::protocol::parse_runtime_frame;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Read back without building a tree: JSON allows numbers of any size (such
/// as `8e88555`), which pass through untouched even where serde_json's
/// `Value` would refuse them (found by this target).
#[derive(Deserialize)]
struct Spliced {
    runtime_id: String,
    #[serde(rename = "type")]
    kind: String,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(frame) = parse_runtime_frame(text, "dev-1") else { return };
    assert!(!frame.data.contains(['\n', '\r']), "data must be one line");
    assert!(is_valid_type(&frame.kind));
    serde_json::from_str::<IgnoredAny>(&frame.data).expect("accepted data is JSON");
    let back: Spliced = serde_json::from_str(&frame.data).expect("accepted data has runtime_id and type");
    assert_eq!(back.runtime_id, "dev-1");
    assert_eq!(back.kind, frame.kind);
});
