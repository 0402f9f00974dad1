//! Every frame the runtime sent in the recording, sent again by the fake
//! runtime, reaches subscribers as it was sent.

use letta_bridge_testkit::replay::{realise, replay};
use serde_json::{Value, json};

use crate::helpers::*;

/// Events only the bridge publishes (PROTOCOL.md §4).
const BRIDGE_EVENTS: &[&str] = &["runtime_online", "runtime_offline", "reset", "lagged"];

/// Every frame of every recorded exchange, in recorded order, each made to
/// answer its recorded command (placeholders realised).
fn every_recorded_frame(next_seq: &dyn Fn() -> u64) -> Vec<Value> {
    let mut frames = Vec::new();
    for name in fixtures::exchanges() {
        for i in 0..fixtures::step_count(name) {
            let command = realise(fixtures::recorded_command(name, i));
            frames.extend(replay(name, i, &command, next_seq));
        }
    }
    frames
}

#[tokio::test]
async fn every_recorded_runtime_frame_reaches_subscribers_unchanged_but_for_runtime_id() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-conf").await;
    rt.quiet();
    let mut sse = app.events("").await;
    let seq = std::sync::atomic::AtomicU64::new(0);
    let frames = every_recorded_frame(&|| seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
    assert!(frames.len() > 50, "the recording has {} frames", frames.len());
    for frame in &frames {
        rt.send(frame.clone());
    }
    for (n, frame) in frames.iter().enumerate() {
        let event = loop {
            let e = sse.next().await;
            if !BRIDGE_EVENTS.contains(&e.event.as_str()) {
                break e;
            }
        };
        assert_eq!(event.event, frame["type"].as_str().unwrap(), "frame {n}: the SSE event type is the frame type");
        let mut data = event.data.as_object().unwrap().clone();
        assert_eq!(data.remove("runtime_id"), Some(json!("dev-conf")), "frame {n}: runtime_id added");
        assert_eq!(Value::Object(data), *frame, "frame {n} ({}) reached subscribers changed", frame["type"]);
    }
}

#[tokio::test]
async fn a_recorded_turn_reaches_subscribers_as_the_scripted_reply_and_its_end() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-conf").await;
    rt.play_recorded_turns();
    let mut sse = app.events("").await;
    let body = json!({"runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"},
                      "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}});
    let reply: Value = app.post("/input?wait=true", body).await.json().await.unwrap();
    assert_eq!((reply["type"].as_str(), reply["disposition"].as_str()), (Some("input_accepted"), Some("started")));
    let mut text = String::new();
    let finished = loop {
        let e = sse.next().await;
        if e.event == "stream_delta" && e.data["delta"]["message_type"] == "assistant_message" {
            assert_eq!(e.data["runtime"], json!({"agent_id": "agent-1", "conversation_id": "conv-1"}));
            text.push_str(e.data["delta"]["content"][0]["text"].as_str().unwrap());
        }
        if e.event == "turn_finished" {
            break e;
        }
    };
    assert_eq!(text, "Hello from the scripted model.", "the model's pieces as the runtime streamed them");
    assert_eq!(finished.data["stop_reason"], "end_turn");
}
