//! The Responses API's answer: a `response` object whose one output item is
//! the agent's message, and the server-sent events of a streamed one.

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::super::shapes::{LettaTurn, finish_reason};
use super::super::turn::Finished;

/// A response: the agent's answer to the last user message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResponseObject {
    /// `resp_<request id>`.
    pub id: String,
    /// Always `response`.
    pub object: &'static str,
    /// Unix seconds.
    pub created_at: u64,
    /// `completed`; `incomplete` when the agent ran out of steps or tokens;
    /// `in_progress` in a stream's first events.
    pub status: &'static str,
    /// The agent id.
    pub model: String,
    /// The agent's message (none yet while in progress).
    pub output: Vec<OutputMessage>,
    /// Tokens the agent's model used over the turn, when the runtime reported them.
    #[schema(value_type = Option<ResponseUsage>)]
    pub usage: Option<ResponseUsage>,
    /// With `status: incomplete`: `{"reason": "max_output_tokens"}`.
    #[schema(value_type = Option<Object>)]
    pub incomplete_details: Option<serde_json::Value>,
    /// Always null (a failed turn is an error answer).
    #[schema(value_type = Option<Object>)]
    pub error: Option<()>,
    /// Where the turn ran (an extension); null while in progress.
    #[schema(value_type = Option<LettaTurn>)]
    pub letta: Option<LettaTurn>,
}

/// The agent's message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutputMessage {
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `msg_<request id>`.
    pub id: String,
    /// `completed`, or `in_progress` while streamed.
    pub status: &'static str,
    /// Always `assistant`.
    pub role: &'static str,
    /// One `output_text` part (none yet while in progress).
    pub content: Vec<OutputText>,
}

/// The text of the agent's message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutputText {
    /// Always `output_text`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The turn's assistant text.
    pub text: String,
    /// Always empty.
    #[schema(value_type = Vec<Object>)]
    pub annotations: Vec<()>,
}

/// Token counts, as the Responses API names them.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ResponseUsage {
    /// Tokens of the prompts.
    pub input_tokens: u64,
    /// Tokens generated.
    pub output_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
}

impl OutputText {
    /// A text part.
    pub fn of(text: &str) -> Self {
        Self { kind: "output_text", text: text.to_owned(), annotations: Vec::new() }
    }
}

impl OutputMessage {
    /// The message with `id`, in progress (no content) or done with `text`.
    pub fn of(id: &str, text: Option<&str>) -> Self {
        let status = if text.is_some() { "completed" } else { "in_progress" };
        let content = text.map(OutputText::of).into_iter().collect();
        Self { kind: "message", id: id.to_owned(), status, role: "assistant", content }
    }
}

impl ResponseObject {
    /// A response still in progress.
    pub fn started(id: &str, created_at: u64, model: &str) -> Self {
        Self {
            id: id.to_owned(),
            object: "response",
            created_at,
            status: "in_progress",
            model: model.to_owned(),
            output: Vec::new(),
            usage: None,
            incomplete_details: None,
            error: None,
            letta: None,
        }
    }

    /// The response of a finished turn whose text is `text`.
    pub fn finished(mut self, finished: &Finished, message_id: &str, text: &str, letta: LettaTurn) -> Self {
        let length = finish_reason(&finished.last.stop_reason) == "length";
        self.status = if length { "incomplete" } else { "completed" };
        self.incomplete_details = length.then(|| serde_json::json!({"reason": "max_output_tokens"}));
        self.output = vec![OutputMessage::of(message_id, Some(text))];
        self.usage = finished.usage.map(|u| ResponseUsage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
        });
        self.letta = Some(letta);
        self
    }
}

/// One server-sent event of a streamed response, as SSE parsers see it.
pub struct ResponseEvent;

impl PartialSchema for ResponseEvent {
    fn schema() -> RefOr<Schema> {
        let string = |desc: &str| ObjectBuilder::new().schema_type(Type::String).description(Some(desc)).build();
        let payload = ObjectBuilder::new()
            .property("type", string("The event's type again"))
            .property("sequence_number", ObjectBuilder::new().schema_type(Type::Integer))
            .property("response", Ref::from_schema_name(ResponseObject::name()))
            .property("delta", string("With `response.output_text.delta`: more of the text"))
            .required("type")
            .required("sequence_number");
        let data = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The event as one line of JSON"))
            .content_media_type("application/json")
            .content_schema(Some(Schema::Object(payload.build())));
        ObjectBuilder::new()
            .description(Some("One server-sent event: `response.created`, `response.in_progress`, `response.output_item.added`, `response.content_part.added`, `response.output_text.delta` (one per piece the agent writes), `response.output_text.done`, `response.content_part.done`, `response.output_item.done`, then `response.completed` (or `response.incomplete`); or `error`. `:` comments keep a quiet stream open."))
            .property("event", string("The event's type"))
            .property("data", data)
            .into()
    }
}

impl ToSchema for ResponseEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ResponseObject::name().into_owned(), ResponseObject::schema()));
        ResponseObject::schemas(schemas);
    }
}
