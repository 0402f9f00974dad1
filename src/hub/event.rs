//! One published event: routing metadata plus its SSE bytes, framed once at
//! publish time and shared (`Bytes`) by every subscriber that sends it.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

/// What a publisher hands the hub; the hub gives it an id.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The SSE `event:` name (the frame's `type`); must be a safe token.
    pub kind: String,
    /// The runtime it came from or is about.
    pub runtime_id: Option<Arc<str>>,
    /// Its scope's agent, for filters.
    pub agent_id: Option<String>,
    /// Its scope's conversation, for filters.
    pub conversation_id: Option<String>,
    /// Compact single-line JSON.
    pub data: String,
}

/// A published event, immutable and shared.
#[derive(Debug)]
pub struct Event {
    /// Its place in the log (the `<seq>` of its id).
    pub seq: u64,
    /// The SSE `event:` name.
    pub kind: Box<str>,
    /// The runtime it came from or is about.
    pub runtime_id: Option<Arc<str>>,
    /// Its scope's agent, for filters.
    pub agent_id: Option<Box<str>>,
    /// Its scope's conversation, for filters.
    pub conversation_id: Option<Box<str>>,
    pub(crate) at: Instant,
    sse: Bytes,
    data_start: usize,
}

impl Event {
    pub(crate) fn new(epoch: &str, seq: u64, draft: Draft, at: Instant) -> Self {
        debug_assert!(!draft.data.contains(['\n', '\r']), "event data must be one line");
        debug_assert!(!draft.kind.contains(['\n', '\r']), "event names must be one line");
        let mut buf = BytesMut::with_capacity(draft.data.len() + draft.kind.len() + epoch.len() + 40);
        buf.put_slice(b"id: ");
        buf.put_slice(epoch.as_bytes());
        buf.put_u8(b'-');
        write!(buf, "{seq}").expect("writing to BytesMut cannot fail");
        buf.put_slice(b"\nevent: ");
        buf.put_slice(draft.kind.as_bytes());
        buf.put_slice(b"\ndata: ");
        let data_start = buf.len();
        buf.put_slice(draft.data.as_bytes());
        buf.put_slice(b"\n\n");
        Self {
            seq,
            kind: draft.kind.into_boxed_str(),
            runtime_id: draft.runtime_id,
            agent_id: draft.agent_id.map(String::into_boxed_str),
            conversation_id: draft.conversation_id.map(String::into_boxed_str),
            at,
            sse: buf.freeze(),
            data_start,
        }
    }

    /// The complete SSE frame (`id:`, `event:`, `data:`, blank line).
    pub fn sse(&self) -> &Bytes {
        &self.sse
    }

    /// The event's JSON, without copying.
    pub fn data(&self) -> Bytes {
        self.sse.slice(self.data_start..self.sse.len() - 2)
    }

    /// Bytes this event holds in the ring.
    pub fn size(&self) -> usize {
        self.sse.len()
    }
}

/// A per-subscriber SSE frame (not in the ring): `reset` or `lagged`.
pub fn control_frame(id: &str, kind: &str, data: &impl serde::Serialize) -> Bytes {
    let json = serde_json::to_string(data).expect("control events serialise");
    Bytes::from(format!("id: {id}\nevent: {kind}\ndata: {json}\n\n"))
}

/// A resume position: `<epoch>-<seq>`; seq 0 means "before the first event".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor<'a> {
    /// The run of the log it belongs to.
    pub epoch: &'a str,
    /// The last event seen.
    pub seq: u64,
}

impl<'a> Cursor<'a> {
    /// Parses `<epoch>-<seq>`; `None` when malformed.
    pub fn parse(s: &'a str) -> Option<Self> {
        let (epoch, seq) = s.rsplit_once('-')?;
        if epoch.is_empty() || epoch.len() > 64 || !epoch.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        if seq.is_empty() || seq.len() > 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self { epoch, seq: seq.parse().ok()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(kind: &str, data: &str) -> Draft {
        Draft { kind: kind.into(), runtime_id: None, agent_id: None, conversation_id: None, data: data.into() }
    }

    #[test]
    fn an_event_is_framed_once_as_sse() {
        let e = Event::new("ep", 7, draft("stream_delta", r#"{"a":1}"#), Instant::now());
        assert_eq!(&e.sse()[..], b"id: ep-7\nevent: stream_delta\ndata: {\"a\":1}\n\n");
        assert_eq!(&e.data()[..], br#"{"a":1}"#);
    }

    #[test]
    fn cursors_parse_strictly() {
        assert_eq!(Cursor::parse("ab12-0"), Some(Cursor { epoch: "ab12", seq: 0 }));
        assert_eq!(Cursor::parse("ab12-18446744073709551615").map(|c| c.seq), Some(u64::MAX));
        for bad in ["", "-", "ab-", "-1", "ab-1x", "ab-+1", "a b-1", "ab-99999999999999999999", "ab12"] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
    }
}
