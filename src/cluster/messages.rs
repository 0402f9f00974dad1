//! What instances say to each other on their pub/sub channels
//! (`node:<id>:inbox`), as JSON: a command for a runtime the receiver
//! holds, the ack of one, and a ticket taken over.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::Scope;
use crate::protocol::commands::is_answered;
use crate::runtime::{CommandFrame, DispatchError, Remote};

/// One message on an instance's channel.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(super) enum Message {
    /// Write `text` to `runtime`'s connection `generation`, within `ms` milliseconds.
    Command {
        corr: u64,
        from: String,
        runtime: String,
        generation: u64,
        ms: u64,
        text: String,
        scope: Value,
        /// The command's `request_id` (absent from older instances' messages).
        #[serde(default)]
        request_id: String,
        /// The W3C `traceparent` of the sender's `forward` span, with
        /// traces on: the holder continues the trace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        traceparent: Option<String>,
    },
    /// What became of command `corr`: a write outcome by name
    /// ([`crate::runtime::WRITE_OUTCOMES`]).
    Ack { corr: u64, outcome: String },
    /// A stream of another instance took over the ticket `holder` held here.
    TicketTaken { holder: String },
}

impl Message {
    /// The command `frame` for `to`, from instance `from`, numbered `corr`,
    /// to be written within `ms` milliseconds, in the trace `traceparent`.
    pub(super) fn command(
        corr: u64,
        from: &str,
        to: &Remote,
        ms: u64,
        frame: CommandFrame,
        traceparent: Option<String>,
    ) -> Self {
        Self::Command {
            corr,
            from: from.to_owned(),
            runtime: to.runtime_id.to_string(),
            generation: to.generation,
            ms,
            text: frame.text,
            scope: frame.scope.map_or(Value::Null, |s| s.to_value()),
            request_id: frame.request_id,
            traceparent,
        }
    }

    /// The ack of command `corr` with the outcome of its write.
    pub(super) fn ack(corr: u64, outcome: &Result<(), DispatchError>) -> Self {
        Self::Ack { corr, outcome: DispatchError::write_outcome(outcome).to_owned() }
    }

    /// As sent on a channel.
    pub(super) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("messages serialise")
    }
}

/// The frame a command message carries.
pub(super) fn frame(text: String, scope: &Value, request_id: String) -> CommandFrame {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
    }
    let answered = serde_json::from_str::<Kind>(&text).is_ok_and(|k| is_answered(&k.kind));
    CommandFrame { request_id, text, scope: Scope::of_value(scope), answered }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn remote() -> Remote {
        Remote { runtime_id: Arc::from("dev-1"), node: Arc::from("n-b"), generation: 9 }
    }

    #[test]
    fn a_command_crosses_the_channel_with_its_frame_scope_and_request_id() {
        let scope = Scope { agent_id: None, conversation_id: "conv-1".into() };
        let sent = CommandFrame {
            request_id: "r1".into(),
            text: r#"{"type":"sync"}"#.into(),
            scope: Some(scope.clone()),
            answered: true,
        };
        let json = Message::command(7, "n-a", &remote(), 1500, sent, None).to_json();
        assert!(!json.contains("traceparent"), "no trace, no field: {json}");
        let Message::Command { corr, from, runtime, generation, ms, text, scope: value, request_id, traceparent } =
            serde_json::from_str(&json).unwrap()
        else {
            panic!("{json}")
        };
        assert_eq!(traceparent, None);
        assert_eq!((corr, from.as_str(), runtime.as_str(), generation, ms), (7, "n-a", "dev-1", 9, 1500));
        let got = frame(text, &value, request_id);
        assert_eq!((got.request_id.as_str(), got.text.as_str(), got.scope), ("r1", r#"{"type":"sync"}"#, Some(scope)));
        assert!(got.answered, "a sync is answered by its request_id: a draining socket waits for it");
        let unanswered = frame(r#"{"type":"change_device_state"}"#.into(), &Value::Null, "r2".into());
        assert!(!unanswered.answered);
    }

    #[test]
    fn a_command_in_a_trace_carries_its_traceparent_to_the_holder() {
        let sent = CommandFrame { request_id: "r1".into(), text: "{}".into(), scope: None, answered: false };
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let json = Message::command(8, "n-a", &remote(), 1500, sent, Some(parent.into())).to_json();
        let message: Message = serde_json::from_str(&json).unwrap();
        assert!(matches!(message, Message::Command { traceparent: Some(t), .. } if t == parent), "{json}");
    }

    #[test]
    fn a_command_of_an_instance_without_request_ids_still_reads() {
        let json = r#"{"t":"command","corr":1,"from":"n-a","runtime":"dev-1","generation":2,"ms":100,"text":"{}","scope":null}"#;
        let message: Message = serde_json::from_str(json).unwrap();
        assert!(matches!(message, Message::Command { request_id, .. } if request_id.is_empty()));
    }

    #[test]
    fn acks_and_takeovers_keep_their_wire_shape() {
        let late = Err(DispatchError::NotTaken("r1".into()));
        assert_eq!(Message::ack(3, &late).to_json(), r#"{"t":"ack","corr":3,"outcome":"late"}"#);
        assert_eq!(Message::ack(4, &Ok(())).to_json(), r#"{"t":"ack","corr":4,"outcome":"written"}"#);
        let taken = Message::TicketTaken { holder: "n-a:5".into() };
        assert_eq!(taken.to_json(), r#"{"t":"ticket_taken","holder":"n-a:5"}"#);
    }
}
