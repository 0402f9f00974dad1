//! A streamed response as OpenAI's Responses API streams it: named events
//! with a `sequence_number` — the response created and in progress, its
//! message and text part added, one `response.output_text.delta` per piece
//! the agent writes, the text, part and message done, then
//! `response.completed` (`response.incomplete` when the agent ran out of
//! steps or tokens). An error after the start is one `error` event, which
//! OpenAI's SDKs raise. Reasoning is not streamed here.

use serde_json::{Value, json};

use super::super::error::OpenAiError;
use super::super::shapes::LettaTurn;
use super::super::stream::{Wire, event};
use super::super::turn::Finished;
use super::shapes::{OutputMessage, OutputText, ResponseObject};
use crate::runtime::Accepted;

/// One stream's state.
pub struct Events {
    /// The response so far (its id once the input is written).
    pub response: ResponseObject,
    /// `msg_<request id>`.
    pub message_id: String,
    /// Where the turn runs: the conversation (the rest comes from the input).
    pub letta: LettaTurn,
    /// The next event's `sequence_number`.
    pub sequence: u64,
}

impl Events {
    fn send(&mut self, kind: &str, mut fields: Value) -> Vec<u8> {
        fields["type"] = kind.into();
        fields["sequence_number"] = self.sequence.into();
        self.sequence += 1;
        event(Some(kind), &fields)
    }

    fn at(&self, extra: Value) -> Value {
        let mut at = json!({"item_id": self.message_id, "output_index": 0, "content_index": 0});
        at.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        at
    }
}

impl Wire for Events {
    fn started(&mut self, accepted: &Accepted) {
        self.response.id = format!("resp_{}", accepted.request_id);
        self.message_id = format!("msg_{}", accepted.request_id);
        self.letta.runtime_id = accepted.runtime_id.clone();
        self.letta.request_id = accepted.request_id.clone();
        self.letta.cursor = accepted.cursor.clone();
    }

    fn open(&mut self) -> Vec<u8> {
        let response = json!({"response": self.response});
        let mut out = self.send("response.created", response.clone());
        out.extend(self.send("response.in_progress", response));
        let item = OutputMessage::of(&self.message_id, None);
        out.extend(self.send("response.output_item.added", json!({"output_index": 0, "item": item})));
        let part = self.at(json!({"part": OutputText::of("")}));
        out.extend(self.send("response.content_part.added", part));
        out
    }

    fn piece(&mut self, text: &str, _reasoning: &str) -> Vec<u8> {
        if text.is_empty() {
            return Vec::new();
        }
        let delta = self.at(json!({"delta": text, "logprobs": []}));
        self.send("response.output_text.delta", delta)
    }

    fn end(&mut self, finished: &Finished, text: &str) -> Vec<u8> {
        let mut out = self.send("response.output_text.done", self.at(json!({"text": text, "logprobs": []})));
        out.extend(self.send("response.content_part.done", self.at(json!({"part": OutputText::of(text)}))));
        let item = OutputMessage::of(&self.message_id, Some(text));
        out.extend(self.send("response.output_item.done", json!({"output_index": 0, "item": item})));
        let letta = LettaTurn { stop_reason: finished.last.stop_reason.clone(), ..self.letta.clone() };
        let response = self.response.clone().finished(finished, &self.message_id, text, letta);
        let kind = if response.status == "incomplete" { "response.incomplete" } else { "response.completed" };
        out.extend(self.send(kind, json!({"response": response})));
        out
    }

    fn error(&mut self, e: OpenAiError) -> Vec<u8> {
        let error = e.into_body().error;
        // The Responses API's fields, and `error` as OpenAI's SDKs raise it.
        let fields = json!({"code": error.code, "message": error.message, "param": error.param, "error": error});
        self.send("error", fields)
    }
}
