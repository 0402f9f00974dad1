//! The shared log's record, typed: what an instance hands `log.lua`'s
//! `append` for one event ([`Append::to_args`]), and the stream entries every
//! mirror reads back ([`LogEntry::read`]). The field names are the
//! script's; a unit test checks that the script writes exactly these.
//!
//! Every instance decodes every entry of the cluster, so the reply is taken
//! apart by hand: each field's bytes are moved into the entry, with no map
//! of field names and no copy (the redis crate's `StreamReadReply` built a
//! `HashMap<String, Value>` per entry and cloned every value: 20 % of a
//! mirror's CPU, BENCHMARKS.md "The mirror's cut").

use std::borrow::Cow;
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
    pub const DATA: &str = "d";
    /// Every field, in the script's order (entries of earlier versions also
    /// have `z`, the data's size, which nothing read). Empty `AGENT`,
    /// `CONVERSATION` and `REPLY_TO` are left out.
    #[cfg(test)]
    pub const ALL: [&str; 11] =
        [EPOCH, KIND, RUNTIME, AGENT, CONVERSATION, GENERATION, NODE, REPLY_TO, TIME, APPEND_ID, DATA];
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
    /// The entries of an `XREAD` reply (one stream; RESP2 or RESP3), in
    /// the log's order; an entry that is not the log's is an `Err` in its
    /// place. `Nil` (the block timed out) reads as none.
    pub(super) fn read(reply: Value) -> Vec<Result<Self, EntryError>> {
        let streams = match reply {
            Value::Array(streams) => streams.into_iter().filter_map(|s| pair(s).map(|(_, e)| e)).collect(),
            Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
            _ => Vec::new(),
        };
        streams
            .into_iter()
            .flat_map(|entries| match entries {
                Value::Array(entries) => entries,
                _ => Vec::new(),
            })
            .map(|entry| match pair(entry) {
                Some((id, Value::Array(fields))) => Self::from_fields(&text(id), fields),
                Some((id, _)) => Self::from_fields(&text(id), Vec::new()),
                None => Err(EntryError::Id(String::new())),
            })
            .collect()
    }

    /// Reads the stream entry `id` with `fields` (names and values in
    /// turn). Absent text fields read as empty; optional ones as `None`
    /// when empty.
    pub(super) fn from_fields(id: &str, fields: Vec<Value>) -> Result<Self, EntryError> {
        let seq =
            id.split_once('-').and_then(|(s, _)| s.parse::<u64>().ok()).ok_or_else(|| EntryError::Id(id.into()))?;
        let mut read = Fields::default();
        let mut fields = fields.into_iter();
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            let slot = match name {
                Value::BulkString(name) => read.slot(&name),
                Value::SimpleString(name) => read.slot(name.as_bytes()),
                _ => None,
            };
            if let Some(slot) = slot {
                *slot = text(value);
            }
        }
        let optional = |s: String| Some(s).filter(|s| !s.is_empty());
        let number = |name: &'static str, t: &str| match t {
            "" => Ok(0),
            t => t.parse::<u64>().map_err(|_| EntryError::Number(name)),
        };
        Ok(Self {
            seq,
            generation: number(field::GENERATION, &read.generation)?,
            engine_ms: number(field::TIME, &read.time)?,
            epoch: read.epoch,
            node: read.node,
            reply_to: optional(read.reply_to),
            append_id: read.append_id,
            draft: Draft {
                kind: read.kind,
                runtime_id: Some(Arc::from(read.runtime)),
                agent_id: optional(read.agent),
                conversation_id: optional(read.conversation),
                data: read.data,
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

/// The fields of one entry as read, empty when absent.
#[derive(Default)]
struct Fields {
    epoch: String,
    kind: String,
    runtime: String,
    agent: String,
    conversation: String,
    generation: String,
    node: String,
    reply_to: String,
    time: String,
    append_id: String,
    data: String,
}

impl Fields {
    /// Where the field `name` goes; `None` for one the mirror does not read.
    fn slot(&mut self, name: &[u8]) -> Option<&mut String> {
        let name = std::str::from_utf8(name).ok()?;
        Some(match name {
            field::EPOCH => &mut self.epoch,
            field::KIND => &mut self.kind,
            field::RUNTIME => &mut self.runtime,
            field::AGENT => &mut self.agent,
            field::CONVERSATION => &mut self.conversation,
            field::GENERATION => &mut self.generation,
            field::NODE => &mut self.node,
            field::REPLY_TO => &mut self.reply_to,
            field::TIME => &mut self.time,
            field::APPEND_ID => &mut self.append_id,
            field::DATA => &mut self.data,
            _ => return None,
        })
    }
}

/// The two halves of a two-element array (a stream and its entries, an
/// entry's id and its fields).
fn pair(value: Value) -> Option<(Value, Value)> {
    let Value::Array(items) = value else { return None };
    let mut items = items.into_iter();
    Some((items.next()?, items.next()?))
}

/// A text value, moved out of the reply (copied only when it is not UTF-8,
/// which the bridge never writes).
fn text(value: Value) -> String {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        }
        Value::SimpleString(s) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
