//! How a chat completion request is read.

use serde_json::json;

use super::*;

fn code(body: Value) -> (String, Option<&'static str>) {
    let e = parse(body).expect_err("refused");
    assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
    let body = e.into_body().error;
    (body.code, body.param)
}

#[test]
fn the_last_user_message_is_what_goes_to_the_agent() {
    let asked = parse(json!({"model": "agent-1", "temperature": 0.2, "tools": [], "messages": [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url", "image_url": {"url": "x"}}]},
    ], "stream": true, "stream_options": {"include_usage": true}, "n": 1}))
    .unwrap();
    assert_eq!(asked.model, "agent-1");
    assert_eq!(asked.content, json!([{"type": "text", "text": "second"}]));
    assert!(asked.stream && asked.include_usage);
    let plain = parse(json!({"model": "a", "messages": [{"role": "user", "content": "hi"}], "stream": null})).unwrap();
    assert_eq!((plain.content, plain.stream), (json!("hi"), false));
}

#[test]
fn every_mistake_is_a_400_naming_its_field() {
    let hi = json!([{"role": "user", "content": "hi"}]);
    assert_eq!(code(json!([1])), ("invalid_type".into(), Some("body")));
    assert_eq!(code(json!({"messages": hi})), ("missing_required_parameter".into(), Some("model")));
    assert_eq!(code(json!({"model": 1, "messages": hi})), ("invalid_type".into(), Some("model")));
    assert_eq!(code(json!({"model": "", "messages": hi})), ("invalid_value".into(), Some("model")));
    assert_eq!(code(json!({"model": "a"})), ("missing_required_parameter".into(), Some("messages")));
    assert_eq!(code(json!({"model": "a", "messages": {}})), ("invalid_type".into(), Some("messages")));
    assert_eq!(code(json!({"model": "a", "messages": []})), ("invalid_value".into(), Some("messages")));
    assert_eq!(code(json!({"model": "a", "messages": [{"content": "x"}]})), ("invalid_value".into(), Some("messages")));
    let no_user = json!({"model": "a", "messages": [{"role": "system", "content": "x"}]});
    assert_eq!(code(no_user), ("invalid_value".into(), Some("messages")));
    let empty = json!({"model": "a", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]});
    assert_eq!(code(empty), ("invalid_value".into(), Some("messages")));
    let later_empty =
        json!({"model": "a", "messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": ""}]});
    assert_eq!(parse(later_empty).unwrap().content, json!("hi"), "the last user message with text");
    let number = json!({"model": "a", "messages": [{"role": "user", "content": 5}]});
    assert_eq!(code(number), ("invalid_type".into(), Some("messages")));
    assert_eq!(code(json!({"model": "a", "messages": hi, "stream": "yes"})), ("invalid_type".into(), Some("stream")));
    let options = json!({"model": "a", "messages": hi, "stream_options": {"include_usage": 1}});
    assert_eq!(code(options), ("invalid_type".into(), Some("stream_options")));
    assert_eq!(code(json!({"model": "a", "messages": hi, "n": 2})), ("invalid_value".into(), Some("n")));
}

#[test]
fn the_letta_headers_take_visible_ascii_ids_only() {
    let mut headers = HeaderMap::new();
    assert_eq!(header_id(&headers, RUNTIME_HEADER).unwrap(), None);
    headers.insert(RUNTIME_HEADER, "dev-1".parse().unwrap());
    assert_eq!(header_id(&headers, RUNTIME_HEADER).unwrap().as_deref(), Some("dev-1"));
    headers.insert(RUNTIME_HEADER, "two words".parse().unwrap());
    assert!(header_id(&headers, RUNTIME_HEADER).is_err());
    headers.insert(CONVERSATION_HEADER, "x".repeat(257).parse().unwrap());
    assert!(header_id(&headers, CONVERSATION_HEADER).is_err());
}
