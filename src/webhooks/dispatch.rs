//! The one reader of the event log for webhooks: each event, and the flat
//! event it completes (`turn.finished`, `approval.requested`), is queued
//! for every hook it matches — its types, its filter, and for an end
//! user's hook the user's grants (as their `GET /events` would read it).
//! Queuing never waits (each hook's queue drops its oldest when full), so
//! the log and the runtimes never wait for a receiver; a lag of this
//! reader behind the ring is logged, and its events are not delivered.
//!
//! The body of every delivery: `{"type", "timestamp", "event_id", "data"}`
//! (the spec's recommended envelope), `data` the event's JSON or the flat
//! payload; the body is built once per event and shared by its hooks.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::{Hook, Webhooks};
use crate::hub::{Event, Gap, Hub, Next, Start};
use crate::protocol::scope::filter_admits;
use crate::protocol::turn::{Flats, Seen};
use crate::store::unix_now;

/// Reads `hub` from now on, until `stop`.
pub(super) async fn run(hub: Hub, hooks: Webhooks, stop: CancellationToken) {
    let (mut reader, _) = hub.subscribe(Start::Live);
    let mut flats = Flats::default();
    loop {
        let next = tokio::select! {
            next = reader.next() => next,
            () = stop.cancelled() => return,
        };
        match next {
            Next::Events => {
                let hooks = hooks.snapshot();
                for event in reader.batch().drain(..) {
                    read(&hub, &event, &hooks, &mut flats);
                }
            }
            Next::Gap(Gap::Lagged { missed, .. }) => {
                tracing::warn!(missed, "webhooks fell behind the event log: these events are not delivered");
            }
            Next::Gap(Gap::Rebased { .. }) => flats = Flats::default(),
        }
    }
}

fn read(hub: &Hub, event: &Event, hooks: &[Arc<Hook>], flats: &mut Flats) {
    let data = event.data();
    let seen = Seen {
        kind: &event.kind,
        runtime_id: event.runtime_id.as_deref(),
        agent_id: event.agent_id.as_deref(),
        conversation_id: event.conversation_id.as_deref(),
        data: &data,
    };
    let flat = flats.read(&seen);
    if hooks.is_empty() {
        return;
    }
    let now = unix_now();
    let event_id = hub.event_id(event.seq);
    let matching: Vec<&Arc<Hook>> = hooks.iter().filter(|h| reads(h, &seen, now)).collect();
    if matching.is_empty() {
        return;
    }
    let raw = std::str::from_utf8(&data).ok().and_then(|s| RawValue::from_string(s.to_owned()).ok());
    let mut raw_body = None;
    for hook in &matching {
        if hook.events.iter().any(|t| **t == *event.kind)
            && let Some(raw) = &raw
        {
            let body = raw_body.get_or_insert_with(|| envelope(&event.kind, &event_id, raw));
            hook.enqueue(&event.kind, body.clone(), now);
        }
    }
    if let Some(flat) = flat {
        let kind = flat.kind();
        let json = serde_json::to_string(&flat).expect("flat events serialise");
        let raw = RawValue::from_string(json).expect("serde_json writes JSON");
        let body = envelope(kind, &event_id, &raw);
        for hook in matching.iter().filter(|h| h.events.iter().any(|t| t == kind)) {
            hook.enqueue(kind, body.clone(), now);
        }
    }
}

/// Does `hook` read this event (its filter, its maker's grants and expiry)?
fn reads(hook: &Hook, seen: &Seen<'_>, now: u64) -> bool {
    let f = &hook.filter;
    // The rule of feeds and `GET /events`.
    let want = [f.runtime.as_deref(), f.agent_id.as_deref(), f.conversation_id.as_deref()];
    if !filter_admits(want, seen.runtime_id, seen.agent_id, seen.conversation_id) {
        return false;
    }
    match &hook.user {
        None => true,
        Some(user) => {
            !hook.revoked.load(Ordering::Relaxed)
                && user.exp >= now
                && user.grants.reads_event(seen.kind, seen.runtime_id, seen.agent_id, seen.conversation_id)
        }
    }
}

/// `{"type","timestamp","event_id","data"}`.
fn envelope(kind: &str, event_id: &str, data: &RawValue) -> Bytes {
    #[derive(serde::Serialize)]
    struct Envelope<'a> {
        r#type: &'a str,
        timestamp: String,
        event_id: &'a str,
        data: &'a RawValue,
    }
    let timestamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    Bytes::from(serde_json::to_vec(&Envelope { r#type: kind, timestamp, event_id, data }).expect("serialises"))
}
