//! The answers of the OpenAI-compatible door, in OpenAI's shapes: a
//! `chat.completion`, the `chat.completion.chunk`s of a stream, `usage`,
//! and how a turn's stop reason reads as a `finish_reason`.

use serde::Serialize;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::error::ErrorBody;

use crate::protocol::turn::TokenUsage;

/// `finish_reason` for a turn's `stop_reason`: `length` when the agent ran
/// out of steps or tokens, `stop` otherwise (an ended turn, a cancelled one).
pub fn finish_reason(stop_reason: &str) -> &'static str {
    let length = ["max_steps", "max_tokens", "max_tokens_exceeded", "context_window_overflow"];
    if length.iter().any(|l| stop_reason.starts_with(l)) { "length" } else { "stop" }
}

/// A chat completion: the agent's answer to the last user message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-<request id>`.
    pub id: String,
    /// Always `chat.completion`.
    #[schema(pattern = "^chat\\.completion$")]
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The agent id.
    pub model: String,
    /// One choice.
    pub choices: Vec<Choice>,
    /// Tokens the agent's model used over the turn, when the runtime reported them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub usage: Option<Usage>,
    /// Where the turn ran (an extension; OpenAI's clients ignore it).
    pub letta: LettaTurn,
}

/// The one choice of a completion.
#[derive(Debug, Serialize, ToSchema)]
pub struct Choice {
    /// Always 0.
    pub index: u32,
    /// The agent's answer.
    pub message: AssistantMessage,
    /// `stop`, or `length` (the agent ran out of steps or tokens).
    pub finish_reason: &'static str,
    /// Always null.
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<()>,
}

/// The agent's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// The turn's assistant text (separate messages a blank line apart).
    pub content: String,
    /// The agent's reasoning, when its model reasoned (an extension, as
    /// DeepSeek's and vLLM's APIs name it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reasoning_content: Option<String>,
    /// Always null.
    #[schema(value_type = Option<String>)]
    pub refusal: Option<()>,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Usage {
    /// Tokens of the prompts.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
}

impl From<TokenUsage> for Usage {
    fn from(u: TokenUsage) -> Self {
        Self { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens }
    }
}

/// Where a turn ran and how it ended, in the bridge's words.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LettaTurn {
    /// The runtime.
    pub runtime_id: String,
    /// The conversation.
    pub conversation_id: String,
    /// The `input`'s `request_id`.
    pub request_id: String,
    /// The turn's `stop_reason` (`end_turn`, …).
    pub stop_reason: String,
    /// Event id just before the message was sent: `GET /events` with
    /// `Last-Event-ID` set to it replays the turn.
    pub cursor: String,
}

/// One event of a streamed completion.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletionChunk {
    /// The same for every chunk of the stream.
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The agent id.
    pub model: String,
    /// One choice; none in the last chunk that carries `usage`.
    pub choices: Vec<ChunkChoice>,
    /// With `stream_options.include_usage`: in the last chunk, else null.
    #[schema(value_type = Option<Usage>)]
    pub usage: Option<Usage>,
}

/// The one choice of a chunk.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkChoice {
    /// Always 0.
    pub index: u32,
    /// What the agent added.
    pub delta: Delta,
    /// Null until the last chunk of the answer.
    #[schema(value_type = Option<String>)]
    pub finish_reason: Option<&'static str>,
    /// Always null.
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<()>,
}

/// What a chunk adds.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Delta {
    /// `assistant`, in the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub role: Option<&'static str>,
    /// More of the answer's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub content: Option<String>,
    /// More of the agent's reasoning (an extension, as DeepSeek's and
    /// vLLM's APIs name it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reasoning_content: Option<String>,
}

/// One server-sent event of a streamed completion, as SSE parsers see it:
/// `data` is a `chat.completion.chunk` as JSON, an error after the stream
/// began, or the last one, `[DONE]`.
pub struct ChunkEvent;

impl PartialSchema for ChunkEvent {
    fn schema() -> RefOr<Schema> {
        let chunk = AnyOfBuilder::new()
            .item(Ref::from_schema_name(ChatCompletionChunk::name()))
            .item(Ref::from_schema_name(ErrorBody::name()));
        let json = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/json")
            .content_schema(Some(Schema::AnyOf(chunk.build())));
        let done = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["[DONE]"]));
        let data = AnyOfBuilder::new().item(json).item(done).description(Some(
            "A `chat.completion.chunk` (or an error) as one line of JSON; the last event's is `[DONE]`",
        ));
        ObjectBuilder::new()
            .description(Some("One server-sent event: `data:` only; `:` comments keep a quiet stream open."))
            .property("data", data)
            .into()
    }
}

impl ToSchema for ChunkEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ChatCompletionChunk::name().into_owned(), ChatCompletionChunk::schema()));
        ChatCompletionChunk::schemas(schemas);
        schemas.push((ErrorBody::name().into_owned(), ErrorBody::schema()));
        ErrorBody::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_read_as_stop_unless_the_agent_ran_out_of_room() {
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("cancelled"), "stop");
        assert_eq!(finish_reason("max_steps"), "length");
        assert_eq!(finish_reason("max_tokens_exceeded"), "length");
        assert_eq!(finish_reason("context_window_overflow_in_system_prompt"), "length");
    }
}
