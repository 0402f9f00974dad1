//! A streamed chat completion as OpenAI's Chat Completions API streams it:
//! a first chunk with the role, a `chat.completion.chunk` per piece, a last
//! chunk with `finish_reason` (and one with `usage` when asked), then
//! `data: [DONE]`; an error after the start is one `data: {"error": …}`
//! event, as OpenAI's SDKs read it.

use super::error::OpenAiError;
use super::shapes::{ChatCompletionChunk, ChunkChoice, Delta, Usage, finish_reason};
use super::stream::{Wire, event};
use super::turn::Finished;
use crate::runtime::Accepted;

/// What every chunk of a stream repeats, and what the request asked.
pub struct Chunks {
    /// `chatcmpl-<request id>`, once known.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The agent id.
    pub model: String,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

impl Chunks {
    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Usage>) -> Vec<u8> {
        let chunk = ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        };
        event(None, &chunk)
    }

    fn delta(&self, delta: Delta, finish_reason: Option<&'static str>) -> Vec<u8> {
        self.chunk(vec![ChunkChoice { index: 0, delta, finish_reason, logprobs: None }], None)
    }
}

impl Wire for Chunks {
    fn started(&mut self, accepted: &Accepted) {
        self.id = format!("chatcmpl-{}", accepted.request_id);
    }

    fn open(&mut self) -> Vec<u8> {
        self.delta(Delta { role: Some("assistant"), content: Some(String::new()), ..Delta::default() }, None)
    }

    fn piece(&mut self, text: &str, reasoning: &str) -> Vec<u8> {
        let some = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        self.delta(Delta { content: some(text), reasoning_content: some(reasoning), role: None }, None)
    }

    fn end(&mut self, finished: &Finished, _text: &str) -> Vec<u8> {
        let mut out = self.delta(Delta::default(), Some(finish_reason(&finished.last.stop_reason)));
        if self.include_usage {
            out.extend(self.chunk(Vec::new(), finished.usage.map(Into::into)));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        out
    }

    fn error(&mut self, e: OpenAiError) -> Vec<u8> {
        event(None, &e.into_body())
    }
}
