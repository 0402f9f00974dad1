//! What the scripted model answers: a [`Reply`] (text pieces, a pause
//! between them, an optional tool call and the answer once its result comes
//! back), its JSON form for scripts ([`Reply::from_json`]), and the
//! `Script` that picks the reply for each request (a plan of replies).

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value;

/// What the model answers to a chat completion.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Text pieces, one `chat.completion.chunk` each.
    pub pieces: Vec<String>,
    /// Pause before each piece (to keep a turn running, e.g. for an abort).
    pub delay: Duration,
    /// A tool call streamed after the text pieces.
    pub tool_call: Option<ToolCall>,
    /// The answer to the follow-up request that carries the tool's result;
    /// without one, that request gets this reply's text without the call
    /// (never the same call again, which would loop).
    pub then: Option<Box<Reply>>,
}

/// A function call the model makes (OpenAI `tool_calls`).
#[derive(Clone, Debug)]
pub struct ToolCall {
    /// The call's id: the runtime's `tool_call_id` (and its approval
    /// request's id is `perm-<id>`).
    pub id: String,
    /// The tool, e.g. `Bash`.
    pub name: String,
    /// The arguments as a JSON object.
    pub arguments: Value,
}

impl Reply {
    pub fn new<S: Into<String>>(pieces: impl IntoIterator<Item = S>) -> Self {
        Self {
            pieces: pieces.into_iter().map(Into::into).collect(),
            delay: Duration::ZERO,
            tool_call: None,
            then: None,
        }
    }

    /// A reply that only calls `name` with `arguments` (a JSON object).
    pub fn tool_call(id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Self {
        let call = ToolCall { id: id.into(), name: name.into(), arguments };
        Self { tool_call: Some(call), ..Self::new(Vec::<String>::new()) }
    }

    /// What the model answers once the tool's result (or its denial) comes back.
    pub fn then(mut self, reply: Reply) -> Self {
        self.then = Some(Box::new(reply));
        self
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The reply to a request: [`Reply::then`] when the request's last
    /// message is a tool's result and this reply called a tool.
    fn for_request(&self, body: &Value) -> Reply {
        match (&self.tool_call, carries_tool_result(body)) {
            (Some(_), true) => match &self.then {
                Some(then) => (**then).clone(),
                None => Reply { tool_call: None, then: None, ..self.clone() },
            },
            _ => self.clone(),
        }
    }

    /// The whole reply text, as the pieces reassemble.
    pub fn text(&self) -> String {
        self.pieces.concat()
    }

    /// A reply from its JSON form, for scripts:
    /// `{"text": ["piece", …], "delay_ms": 0, "tool_call": {"id", "name",
    /// "arguments": {…}}, "then": <reply>}`; every field is optional, and a
    /// string `text` is one piece.
    pub fn from_json(value: &Value) -> Result<Reply, String> {
        let Some(object) = value.as_object() else { return Err(format!("a reply is a JSON object, not {value}")) };
        if let Some(unknown) = object.keys().find(|k| !["text", "delay_ms", "tool_call", "then"].contains(&k.as_str()))
        {
            return Err(format!("unknown reply field {unknown:?} (text, delay_ms, tool_call, then)"));
        }
        let pieces = match &value["text"] {
            Value::Null => Vec::new(),
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .map(|p| p.as_str().map(str::to_owned).ok_or_else(|| format!("text pieces are strings, not {p}")))
                .collect::<Result<_, _>>()?,
            other => return Err(format!("text is a string or a list of strings, not {other}")),
        };
        let delay = match &value["delay_ms"] {
            Value::Null => Duration::ZERO,
            v => Duration::from_millis(v.as_u64().ok_or_else(|| format!("delay_ms is a whole number, not {v}"))?),
        };
        let tool_call = match &value["tool_call"] {
            Value::Null => None,
            call => {
                let field = |name: &str| {
                    call[name]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("tool_call.{name} is a string: {call}"))
                };
                let arguments = call["arguments"].clone();
                if !arguments.is_object() {
                    return Err(format!("tool_call.arguments is a JSON object: {call}"));
                }
                Some(ToolCall { id: field("id")?, name: field("name")?, arguments })
            }
        };
        let then = match &value["then"] {
            Value::Null => None,
            then => Some(Box::new(Reply::from_json(then)?)),
        };
        Ok(Reply { pieces, delay, tool_call, then })
    }
}

/// What the server answers: the current reply, and the plan's replies still
/// to come.
pub(super) struct Script {
    pub(super) current: Reply,
    pub(super) plan: VecDeque<Reply>,
}

impl Script {
    /// The reply to `body`: a new request takes the plan's next reply first.
    pub(super) fn reply_to(&mut self, body: &Value) -> Reply {
        if !carries_tool_result(body)
            && let Some(next) = self.plan.pop_front()
        {
            self.current = next;
        }
        self.current.for_request(body)
    }
}

/// True when the request's last message is a tool's result (a follow-up).
pub fn carries_tool_result(body: &Value) -> bool {
    body["messages"].as_array().and_then(|m| m.last()).is_some_and(|m| m["role"] == "tool")
}

/// The text of the request's last user message (empty when there is none).
pub fn last_user_text(body: &Value) -> String {
    let messages = body["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
    messages.iter().rev().find(|m| m["role"] == "user").map(|m| text_of(&m["content"])).unwrap_or_default()
}

/// A message's content as text: a string, or its text parts joined.
pub(super) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        other => other.to_string(),
    }
}
