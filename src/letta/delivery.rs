//! Which of a runtime's events a client socket gets, and how.
//!
//! Every socket reads the same event log as `GET /events` (same order) and
//! decides for itself, from the log alone — so the rules hold on every
//! instance of a cluster:
//! - only its runtime's frames; never the bridge's own events;
//! - a reply (`input_accepted`, `*_response`) only when it answers this
//!   socket's command: each socket sends its commands' `request_id`s under a
//!   prefix of its own, and gets its replies back with the prefix removed,
//!   so two clients both sending `sync-1` each get only their own reply.
//!   The prefix's form is reserved ([`socket_namespace`]): no other caller
//!   can send an id in a socket's namespace and take its replies;
//! - a request of the runtime meant for one client (`control_request`, an
//!   approval; `external_tool_call_request`, a client's tool) only on the
//!   socket that owns the conversation: the one whose `input` or
//!   `runtime_start` the runtime last accepted there (read from the replies
//!   in the log); to every socket while nobody owns it, and after a gap in
//!   what the socket read (it may have missed a change of owner, and an
//!   approval request withheld from its owner would stall its turn);
//! - on a relay `control` channel no `stream_delta` (they go to `stream`);
//! - on relay sockets a per-socket `seq`, first in the object (also on
//!   the bridge's own refusals; not on `pong`, which is bookkeeping);
//! - the frame as the runtime sent it: without the `runtime_id` the log
//!   adds for `GET /events`;
//! - on a socket of an end user's token, of the rest only what the user may
//!   read ([`crate::protocol::access::grants::Grants::reads_event`]): the
//!   events of their granted conversations. Replies to the socket's own
//!   commands pass: each was authorised before it was sent.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::hub::Event;
use crate::protocol::access::UserPrincipal;
use crate::protocol::bridge::RESERVED_EVENTS;
use crate::protocol::commands::{is_reply, socket_namespace};
use crate::protocol::wire;

/// Most conversations whose owner a socket remembers (the oldest go first).
const MAX_OWNERS: usize = 256;

/// Which relay channel a socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// An App-Server socket, or a relay socket without `channel`: everything.
    Both,
    /// Commands and everything but `stream_delta`.
    Control,
    /// Everything, `stream_delta` included.
    Stream,
}

/// One socket's delivery rules.
pub struct Delivery {
    runtime_id: Arc<str>,
    /// `{"runtime_id":"<id>",`: what the log puts before the runtime's
    /// frame for `GET /events` (`protocol::frame`), taken off here.
    spliced: String,
    /// `c<32 hex>:`, this socket's request-id namespace.
    prefix: String,
    channel: Channel,
    /// Relay sockets number their frames (`seq`); App-Server sockets do not.
    sequenced: bool,
    seq: u64,
    /// (agent, conversation) → the prefix of the socket that owns it.
    owners: HashMap<(Box<str>, Box<str>), Box<str>>,
    /// The end user whose token opened the socket, if one did.
    user: Option<Arc<UserPrincipal>>,
}

impl Delivery {
    /// The rules of a socket of runtime `runtime_id` with namespace `prefix`.
    pub fn new(runtime_id: Arc<str>, prefix: String, channel: Channel, sequenced: bool) -> Self {
        let id = serde_json::to_string(&*runtime_id).expect("strings serialise");
        let spliced = format!("{{\"runtime_id\":{id},");
        Self { runtime_id, spliced, prefix, channel, sequenced, seq: 0, owners: HashMap::new(), user: None }
    }

    /// The rules of a socket an end user's token opened: only what `user` may read.
    pub fn of_user(mut self, user: Option<Arc<UserPrincipal>>) -> Self {
        self.user = user;
        self
    }

    /// This socket's request-id namespace.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The frame to send for `event`, if this socket gets it.
    pub fn frame(&mut self, event: &Event) -> Option<String> {
        if event.runtime_id.as_deref() != Some(&*self.runtime_id) || RESERVED_EVENTS.contains(&&*event.kind) {
            return None;
        }
        let kind = &*event.kind;
        if is_reply(kind) {
            return self.reply(event);
        }
        if let Some(user) = &self.user
            && !user.grants.reads_event(
                kind,
                Some(&self.runtime_id),
                event.agent_id.as_deref(),
                event.conversation_id.as_deref(),
            )
        {
            return None;
        }
        if matches!(kind, wire::CONTROL_REQUEST | wire::EXTERNAL_TOOL_CALL_REQUEST) && !self.owns(event) {
            return None;
        }
        if kind == wire::STREAM_DELTA && self.channel == Channel::Control {
            return None;
        }
        let data = event.data();
        let text = std::str::from_utf8(&data).ok()?;
        match text.strip_prefix(self.spliced.as_str()) {
            Some(members) => Some(self.object(members)),
            None => Some(self.numbered(text)),
        }
    }

    /// A reply: to the socket whose command it answers, with its own id.
    fn reply(&mut self, event: &Event) -> Option<String> {
        let mut frame: Map<String, Value> = serde_json::from_slice(&event.data()).ok()?;
        frame.remove("runtime_id");
        let request_id = frame.get("request_id").and_then(Value::as_str)?.to_owned();
        let succeeded = frame.get("accepted").or_else(|| frame.get("success")).and_then(Value::as_bool) == Some(true);
        let takes_over = succeeded && matches!(&*event.kind, wire::INPUT_ACCEPTED | wire::RUNTIME_START_RESPONSE);
        let owner = socket_namespace(&request_id);
        if takes_over && let Some(scope) = scope_of(event, &frame) {
            match owner {
                Some(prefix) => self.own(scope, prefix),
                // A command of an HTTP client: nobody owns the conversation.
                None => {
                    self.owners.remove(&scope);
                }
            }
        }
        if owner != Some(self.prefix.as_str()) {
            return None;
        }
        frame.insert("request_id".into(), request_id[self.prefix.len()..].into());
        if self.sequenced {
            self.seq += 1;
            let mut numbered = Map::with_capacity(frame.len() + 1);
            numbered.insert("seq".into(), self.seq.into());
            numbered.extend(frame);
            frame = numbered;
        }
        serde_json::to_string(&frame).ok()
    }

    /// After a gap in what this socket read: who owns each conversation is
    /// unknown until the next accepted `input` or `runtime_start` says, so
    /// every socket gets the runtime's requests meanwhile.
    pub fn forget_owners(&mut self) {
        self.owners.clear();
    }

    fn owns(&self, event: &Event) -> bool {
        let (Some(agent), Some(conversation)) = (&event.agent_id, &event.conversation_id) else { return true };
        match self.owners.get(&(agent.clone(), conversation.clone())) {
            Some(owner) => **owner == *self.prefix,
            None => true,
        }
    }

    fn own(&mut self, scope: (Box<str>, Box<str>), prefix: &str) {
        if self.owners.len() >= MAX_OWNERS && !self.owners.contains_key(&scope) {
            self.owners.clear();
        }
        self.owners.insert(scope, prefix.into());
    }

    /// `text` (a JSON object) with this socket's next `seq` first on relay
    /// sockets; unchanged on App-Server sockets.
    pub fn numbered(&mut self, text: &str) -> String {
        match text.trim_start().strip_prefix('{') {
            Some(members) => self.object(members),
            None => text.to_owned(),
        }
    }

    /// The object of `members` (what follows its `{`), numbered on relay sockets.
    fn object(&mut self, members: &str) -> String {
        if !self.sequenced {
            return format!("{{{members}");
        }
        self.seq += 1;
        let separator = if members.trim_start().starts_with('}') { "" } else { "," };
        format!("{{\"seq\":{}{separator}{members}", self.seq)
    }
}

/// The conversation a reply is about: the event's scope, or the
/// `runtime` object of a `runtime_start_response`.
fn scope_of(event: &Event, frame: &Map<String, Value>) -> Option<(Box<str>, Box<str>)> {
    if let (Some(a), Some(c)) = (&event.agent_id, &event.conversation_id) {
        return Some((a.clone(), c.clone()));
    }
    let runtime = frame.get("runtime")?;
    let field = |k: &str| runtime.get(k).and_then(Value::as_str).map(Box::from);
    Some((field("agent_id")?, field("conversation_id")?))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use super::*;
    use crate::hub::Draft;

    fn event(kind: &str, data: Value) -> Event {
        let runtime_id: Arc<str> = Arc::from("dev");
        let draft = Draft {
            kind: kind.into(),
            runtime_id: Some(runtime_id),
            agent_id: Some("a".into()),
            conversation_id: Some("c".into()),
            data: data.to_string(),
        };
        Event::new("ep", 1, draft, Instant::now())
    }

    fn socket(prefix: &str, channel: Channel, sequenced: bool) -> Delivery {
        Delivery::new(Arc::from("dev"), prefix.into(), channel, sequenced)
    }

    const MINE: &str = "c0123456789abcdef0123456789abcdef:";
    const THEIRS: &str = "cfedcba9876543210fedcba9876543210:";

    #[test]
    fn replies_go_only_to_the_socket_that_asked_with_its_own_id() {
        let mut mine = socket(MINE, Channel::Both, false);
        let mut theirs = socket(THEIRS, Channel::Both, false);
        let reply = event("sync_response", json!({"type": "sync_response", "request_id": format!("{MINE}sync-1")}));
        let got: Value = serde_json::from_str(&mine.frame(&reply).unwrap()).unwrap();
        assert_eq!(got["request_id"], "sync-1");
        assert!(theirs.frame(&reply).is_none());
        let http = event("sync_response", json!({"type": "sync_response", "request_id": "req-1"}));
        assert!(mine.frame(&http).is_none(), "an HTTP client's reply is not a socket's");
    }

    #[test]
    fn an_approval_request_goes_to_the_socket_whose_input_started_the_turn() {
        let mut mine = socket(MINE, Channel::Both, false);
        let mut theirs = socket(THEIRS, Channel::Both, false);
        let ask = event("control_request", json!({"type": "control_request", "request_id": "perm-1"}));
        assert!(mine.frame(&ask).is_some() && theirs.frame(&ask).is_some(), "nobody owns it yet: everyone");
        let accepted = event(
            "input_accepted",
            json!({"type": "input_accepted", "request_id": format!("{THEIRS}input-1"), "accepted": true}),
        );
        mine.frame(&accepted);
        theirs.frame(&accepted);
        assert!(mine.frame(&ask).is_none());
        assert!(theirs.frame(&ask).is_some());
    }

    #[test]
    fn after_a_gap_approval_requests_go_to_every_socket_until_an_owner_is_known_again() {
        let mut mine = socket(MINE, Channel::Both, false);
        let accepted = |prefix: &str| {
            let id = format!("{prefix}input-1");
            event("input_accepted", json!({"type": "input_accepted", "request_id": id, "accepted": true}))
        };
        let ask = event("control_request", json!({"type": "control_request", "request_id": "perm-1"}));
        mine.frame(&accepted(THEIRS));
        assert!(mine.frame(&ask).is_none(), "theirs");
        mine.forget_owners();
        assert!(mine.frame(&ask).is_some(), "unknown after a gap: everyone's");
        mine.frame(&accepted(THEIRS));
        assert!(mine.frame(&ask).is_none(), "theirs again");
    }

    #[test]
    fn relay_sockets_number_frames_and_the_control_channel_gets_no_deltas() {
        let mut control = socket(MINE, Channel::Control, true);
        let mut stream = socket(THEIRS, Channel::Stream, true);
        let delta = event("stream_delta", json!({"type": "stream_delta", "delta": {}}));
        assert!(control.frame(&delta).is_none());
        let got: Value = serde_json::from_str(&stream.frame(&delta).unwrap()).unwrap();
        assert_eq!((got["seq"].as_u64(), got["type"].as_str()), (Some(1), Some("stream_delta")));
        let status = event("update_loop_status", json!({"type": "update_loop_status"}));
        let got: Value = serde_json::from_str(&control.frame(&status).unwrap()).unwrap();
        assert_eq!(got["seq"], 1);
        assert!(control.frame(&status).unwrap().starts_with("{\"seq\":2,"));
    }

    #[test]
    fn frames_go_out_as_the_runtime_sent_them_without_the_logs_runtime_id() {
        // As the log holds a runtime's frame: `runtime_id` spliced in first.
        let logged = |kind: &str, data: &str| {
            let draft = Draft {
                kind: kind.into(),
                runtime_id: Some(Arc::from("dev")),
                agent_id: Some("a".into()),
                conversation_id: Some("c".into()),
                data: data.into(),
            };
            Event::new("ep", 2, draft, Instant::now())
        };
        let spliced = logged("update_queue", r#"{"runtime_id":"dev","type":"update_queue","queue":[]}"#);
        let mut app_server = socket(MINE, Channel::Both, false);
        assert_eq!(app_server.frame(&spliced).unwrap(), r#"{"type":"update_queue","queue":[]}"#);
        let mut relay = socket(MINE, Channel::Both, true);
        assert_eq!(relay.frame(&spliced).unwrap(), r#"{"seq":1,"type":"update_queue","queue":[]}"#);
        let data = format!(r#"{{"runtime_id":"dev","type":"sync_response","request_id":"{MINE}sync-1"}}"#);
        let reply = logged("sync_response", &data);
        let got: Value = serde_json::from_str(&app_server.frame(&reply).unwrap()).unwrap();
        assert_eq!(got, json!({"type": "sync_response", "request_id": "sync-1"}));
    }

    #[test]
    fn an_end_users_socket_gets_only_its_granted_conversations_and_its_own_replies() {
        let claim = json!([{"type": "letta-bridge", "actions": ["read"],
            "scopes": [{"runtime": "dev", "agent_id": "a", "conversation_id": "c"}]}]);
        let grants = crate::protocol::access::grants::Grants::from_claim(Some(&claim)).unwrap();
        let alice = Arc::new(UserPrincipal { sub: "alice".into(), exp: u64::MAX, jti: None, grants });
        let mut mine = socket(MINE, Channel::Both, false).of_user(Some(alice));
        assert!(mine.frame(&event("update_queue", json!({"type": "update_queue"}))).is_some(), "conversation c");
        let bobs =
            Event::new("ep", 2, Draft { conversation_id: Some("bob".into()), ..draft("update_queue") }, Instant::now());
        assert!(mine.frame(&bobs).is_none(), "Bob's conversation");
        let device = Draft { agent_id: None, conversation_id: None, ..draft("update_device_status") };
        assert!(mine.frame(&Event::new("ep", 3, device, Instant::now())).is_none(), "device-level");
        let reply = Draft { agent_id: None, conversation_id: None, ..draft("app_server_info_response") };
        let reply = Draft {
            data: json!({"type": "app_server_info_response", "request_id": format!("{MINE}i")}).to_string(),
            ..reply
        };
        assert!(mine.frame(&Event::new("ep", 4, reply, Instant::now())).is_some(), "its own command's reply");
    }

    fn draft(kind: &str) -> Draft {
        Draft {
            kind: kind.into(),
            runtime_id: Some(Arc::from("dev")),
            agent_id: Some("a".into()),
            conversation_id: Some("c".into()),
            data: json!({"type": kind}).to_string(),
        }
    }

    #[test]
    fn only_the_sockets_runtime_and_no_bridge_events() {
        let mut mine = socket(MINE, Channel::Both, false);
        assert!(mine.frame(&event("runtime_online", json!({"type": "runtime_online"}))).is_none());
        let mut other = Delivery::new(Arc::from("elsewhere"), MINE.into(), Channel::Both, false);
        assert!(other.frame(&event("update_queue", json!({}))).is_none());
    }
}
