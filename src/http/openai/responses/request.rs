//! What `POST /v1/responses` takes (OpenAI's Responses API, the fields the
//! bridge reads): `input` as text, or as items whose last `user` message
//! with text is sent, as with chat completions. Every mistake is a `400`.

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::super::error::OpenAiError;
use super::super::request::{flag, last_user, missing, model, wrong_type};

/// A request of the Responses API (any field not listed is accepted and
/// ignored: `instructions`, `previous_response_id`, `tools`, sampling).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // a schema only: the body is read by `parse`
pub struct ResponseRequest {
    /// The agent id (`GET /v1/models` lists them).
    #[schema(min_length = 1)]
    model: String,
    /// Text, or input items; only the last `user` message with text is sent
    /// (the agent keeps its own history). Its schema: `openapi::shapes`.
    input: Value,
    /// `true`: answer with `text/event-stream` events as the agent writes.
    stream: Option<bool>,
}

/// A request, read.
#[derive(Debug, PartialEq)]
pub struct Asked {
    /// The agent.
    pub model: String,
    /// What goes to the agent: text, or text parts.
    pub content: Value,
    /// Stream the answer.
    pub stream: bool,
}

/// Reads a request body; a `400` naming the field at fault otherwise.
pub fn parse(value: Value) -> Result<Asked, OpenAiError> {
    let Value::Object(body) = value else {
        return Err(OpenAiError::invalid("body", "invalid_type", "the body must be a JSON object"));
    };
    let model = model(&body)?;
    let content = match body.get("input") {
        None | Some(Value::Null) => return Err(missing("input")),
        Some(Value::String(text)) if !text.is_empty() => Value::String(text.clone()),
        Some(Value::String(_)) => return Err(OpenAiError::invalid("input", "invalid_value", "`input` is empty")),
        Some(Value::Array(items)) => last_user(items, "input", true)?,
        Some(_) => return Err(wrong_type("input", "text, or an array of input items")),
    };
    Ok(Asked { model, content, stream: flag(&body, "stream", "stream")? })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn input_is_text_or_the_last_user_message_with_text_among_the_items() {
        let text = parse(json!({"model": "a", "input": "hi", "instructions": "x"})).unwrap();
        assert_eq!((text.content, text.stream), (json!("hi"), false));
        let items = json!({"model": "a", "stream": true, "input": [
            {"role": "user", "content": "first"},
            {"type": "function_call_output", "call_id": "c", "output": "x"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second"}]},
            {"role": "assistant", "content": "ok"}]});
        let asked = parse(items).unwrap();
        assert_eq!(asked.content, json!([{"type": "text", "text": "second"}]));
        assert!(asked.stream);
    }

    #[test]
    fn every_mistake_is_a_400_naming_its_field() {
        let param = |body: Value| parse(body).unwrap_err().into_body().error.param;
        assert_eq!(param(json!({"input": "hi"})), Some("model"));
        assert_eq!(param(json!({"model": "a"})), Some("input"));
        assert_eq!(param(json!({"model": "a", "input": ""})), Some("input"));
        assert_eq!(param(json!({"model": "a", "input": 3})), Some("input"));
        assert_eq!(param(json!({"model": "a", "input": [{"role": "system", "content": "x"}]})), Some("input"));
        assert_eq!(param(json!({"model": "a", "input": "hi", "stream": 1})), Some("stream"));
    }
}
