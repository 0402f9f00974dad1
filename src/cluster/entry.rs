//! The shared log's record, typed: what an instance hands `log.lua`'s
//! `append` for one event ([`Append::to_args`]), and the stream entry every
//! mirror reads back ([`LogEntry::from_fields`]). The field names are the
//! script's; a unit test checks that the script writes exactly these.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use redis::Value;

use crate::hub::Draft;

/// The fields of a stream entry, as `log.lua` writes them.
mod field {
    pub const EPOCH: &str = "e";
    pub const KIND: &str = "k";
    pub const RUNTIME: &str = "r";
    pub const AGENT: &str = "a";
    pub const CONVERSATION: &str = "v";
    pub const GENERATION: &str = "g";
    pub const NODE: &str = "n";
    pub const REPLY_TO: &str = "q";
    pub const TIME: &str = "t";
    pub const APPEND_ID: &str = "i";
    /// The data's size: written, never read (the mirror has the data).
    #[cfg(test)]
    pub const SIZE: &str = "z";
    pub const DATA: &str = "d";
    /// Every field, in the script's order.
    #[cfg(test)]
    pub const ALL: [&str; 12] =
        [EPOCH, KIND, RUNTIME, AGENT, CONVERSATION, GENERATION, NODE, REPLY_TO, TIME, APPEND_ID, SIZE, DATA];
}

/// An event of a local runtime on its way into the shared log.
pub(super) struct Append {
    /// The runtime it came from or is about.
    pub(super) runtime: Arc<str>,
    /// Its connection's generation: the script appends it only while this
    /// instance holds that connection (the fence).
    pub(super) generation: u64,
    /// The event.
    pub(super) draft: Draft,
    /// The `request_id` it answers, when it is a reply frame.
    pub(super) reply_to: Option<String>,
}

impl Append {
    /// How many arguments [`Append::to_args`] gives.
    pub(super) const ARGS: usize = 9;

    /// What the script does with it: `on` records the runtime as held
    /// here, `off` as offline, `e` appends an event of a held runtime.
    pub(super) fn op(&self) -> &'static str {
        match &*self.draft.kind {
            "runtime_online" => "on",
            "runtime_offline" => "off",
            _ => "e",
        }
    }

    /// `append`'s arguments for this event, in the script's order: op,
    /// runtime, generation, kind, agent, conversation, reply-to, data, and
    /// `registration` (the runtime's registration JSON, read for `on` only).
    pub(super) fn to_args<'a>(&'a self, registration: &'a str) -> [Cow<'a, str>; Self::ARGS] {
        let text = |s: &'a Option<String>| Cow::Borrowed(s.as_deref().unwrap_or(""));
        [
            Cow::Borrowed(self.op()),
            Cow::Borrowed(&*self.runtime),
            Cow::Owned(self.generation.to_string()),
            Cow::Borrowed(&self.draft.kind),
            text(&self.draft.agent_id),
            text(&self.draft.conversation_id),
            text(&self.reply_to),
            Cow::Borrowed(&self.draft.data),
            Cow::Borrowed(if self.op() == "on" { registration } else { "" }),
        ]
    }
}

/// One entry of the shared log as a mirror reads it.
#[derive(Debug)]
pub(super) struct LogEntry {
    /// Its place in the log (the stream id is `<seq>-0`).
    pub(super) seq: u64,
    /// The log's epoch when it was appended.
    pub(super) epoch: String,
    /// The instance whose runtime socket it came from (for `instance_lost`:
    /// the lost instance).
    pub(super) node: String,
    /// The connection generation it came from or is about.
    pub(super) generation: u64,
    /// The `request_id` it answers.
    pub(super) reply_to: Option<String>,
    /// Engine time (Unix ms) when it was appended.
    pub(super) engine_ms: u64,
    /// `<node>:<n>`, `n` counting that instance's appends (`<node>:reap`
    /// for the reaper's).
    pub(super) append_id: String,
    /// The event.
    pub(super) draft: Draft,
}

/// A stream entry that is not the log's.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum EntryError {
    /// Its id is not `<seq>-0`.
    #[error("a log entry with the id {0:?}")]
    Id(String),
    /// A field that must be a number is not.
    #[error("a log entry whose field {0:?} is not a number")]
    Number(&'static str),
}

impl LogEntry {
    /// Reads the stream entry `id` with `fields`. Absent text fields read
    /// as empty; optional ones as `None` when empty.
    pub(super) fn from_fields(id: &str, fields: &HashMap<String, Value>) -> Result<Self, EntryError> {
        let text = |name: &str| match fields.get(name) {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => String::new(),
        };
        let optional = |name: &str| Some(text(name)).filter(|s| !s.is_empty());
        let number = |name: &'static str| match text(name) {
            t if t.is_empty() => Ok(0),
            t => t.parse::<u64>().map_err(|_| EntryError::Number(name)),
        };
        let seq =
            id.split_once('-').and_then(|(s, _)| s.parse::<u64>().ok()).ok_or_else(|| EntryError::Id(id.into()))?;
        Ok(Self {
            seq,
            epoch: text(field::EPOCH),
            node: text(field::NODE),
            generation: number(field::GENERATION)?,
            reply_to: optional(field::REPLY_TO),
            engine_ms: number(field::TIME)?,
            append_id: text(field::APPEND_ID),
            draft: Draft {
                kind: text(field::KIND),
                runtime_id: Some(Arc::from(text(field::RUNTIME))),
                agent_id: optional(field::AGENT),
                conversation_id: optional(field::CONVERSATION),
                data: text(field::DATA),
            },
        })
    }

    /// `n` of its append id, when `node` appended it (not the reaper).
    pub(super) fn append_number(&self) -> Option<u64> {
        let (node, n) = self.append_id.rsplit_once(':')?;
        if node != self.node {
            return None;
        }
        n.parse().ok()
    }
}

#[cfg(test)]
mod tests;
