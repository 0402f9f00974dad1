//! `stream: true`: chunks as the agent writes, then the finish and `[DONE]`.

use serde_json::{Value, json};

use super::*;

/// Reads a streamed completion's `data:` payloads one at a time.
struct Chunks {
    res: reqwest::Response,
    buffer: String,
    /// Every payload read, for failure messages.
    seen: Vec<String>,
}

impl Chunks {
    fn new(res: reqwest::Response) -> Self {
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Self { res, buffer: String::new(), seen: Vec::new() }
    }

    /// The next `data:` payload (comments skipped); `None` at the end.
    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
                self.seen.push(data.to_owned());
                return Some(data.to_owned());
            }
            let chunk = tokio::time::timeout(WAIT, self.res.chunk()).await;
            let chunk = chunk.unwrap_or_else(|_| panic!("no chunk in time; seen {:?}", self.seen)).unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next payload, as JSON.
    async fn json(&mut self) -> Value {
        let data = self.next().await.unwrap_or_else(|| panic!("the stream ended; seen {:?}", self.seen));
        serde_json::from_str(&data).unwrap_or_else(|_| panic!("not JSON: {data}"))
    }
}

#[tokio::test]
async fn a_streamed_completion_sends_each_piece_as_it_comes_then_the_finish_usage_and_done() {
    let app = spawn_app().await;
    let mut rt = runtime_with_agent(&app, "dev-a", "default").await;
    let body = json!({"model": AGENT, "messages": [{"role": "user", "content": "hi"}], "stream": true,
        "stream_options": {"include_usage": true}});
    let res = chat(&app, CLIENT_TOKEN, &body, &[]).send();
    let (res, frame) = tokio::join!(res, rt.next_frame());
    let mut chunks = Chunks::new(res.unwrap());
    let first = chunks.json().await;
    let id = format!("chatcmpl-{}", frame["request_id"].as_str().unwrap());
    assert_eq!((first["object"].as_str(), first["id"].as_str()), (Some("chat.completion.chunk"), Some(id.as_str())));
    assert_eq!(first["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));

    // Each piece is sent before the next one exists: the stream is live.
    assistant(&rt, "default", "m-1", "Hel");
    assert_eq!(chunks.json().await["choices"][0]["delta"], json!({"content": "Hel"}));
    delta(&rt, "default", json!({"id": "r-1", "message_type": "reasoning_message", "reasoning": "hm"}));
    assert_eq!(chunks.json().await["choices"][0]["delta"], json!({"reasoning_content": "hm"}));
    // Tool activity sends nothing.
    delta(&rt, "default", json!({"id": "t-1", "message_type": "tool_call_message", "tool_call": {"name": "Read"}}));
    delta(&rt, "default", json!({"id": "t-2", "message_type": "tool_return_message", "tool_return": "ok"}));
    assistant(&rt, "default", "m-1", "lo");
    let piece = chunks.json().await;
    assert_eq!(piece["choices"][0]["delta"], json!({"content": "lo"}));
    assert_eq!(piece["choices"][0]["finish_reason"], Value::Null);
    assistant(&rt, "default", "m-2", "Bye.");
    assert_eq!(
        chunks.json().await["choices"][0]["delta"],
        json!({"content": "\n\nBye."}),
        "a new message after a blank line"
    );
    delta(
        &rt,
        "default",
        json!({"message_type": "usage_statistics", "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}),
    );
    finished(&rt, "default", "end_turn");

    let last = chunks.json().await;
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["choices"][0]["delta"], json!({}));
    let usage = chunks.json().await;
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}));
    assert_eq!(chunks.next().await.as_deref(), Some("[DONE]"));
    assert_eq!(chunks.next().await, None, "the stream ends after [DONE]");
}

#[tokio::test]
async fn a_turn_that_fails_after_the_stream_began_ends_it_with_one_error_event() {
    let app = spawn_app().await;
    let mut rt = runtime_with_agent(&app, "dev-a", "default").await;
    let body = json!({"model": AGENT, "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let (res, _) = tokio::join!(chat(&app, CLIENT_TOKEN, &body, &[]).send(), rt.next_frame());
    let mut chunks = Chunks::new(res.unwrap());
    chunks.json().await;
    assistant(&rt, "default", "m-1", "Part");
    chunks.json().await;
    let fields = json!({"turn_id": "turn-1", "stop_reason": "error", "run_id": "run-1", "error": "model exploded"});
    rt.emit("turn_finished", AGENT, "default", fields);
    let error = chunks.json().await;
    assert_eq!(error["error"]["code"], "turn_failed", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("model exploded"));
    assert_eq!(chunks.next().await, None);
}

#[tokio::test]
async fn a_stream_that_cannot_start_is_a_plain_error_answer() {
    let app = spawn_app().await;
    let rt = runtime_with_agent(&app, "dev-a", "default").await;
    let mut events = app.events("").await;
    rt.close();
    events.next_of("runtime_offline").await;
    let body = json!({"model": AGENT, "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let res = chat(&app, CLIENT_TOKEN, &body, &[]).send().await.unwrap();
    assert_eq!(res.headers()["retry-after"], "2");
    assert_openai_error(res, 503, "runtime_unavailable").await;
}
