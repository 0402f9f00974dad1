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

use super::{Hook, HookFilter, Webhooks};
use crate::hub::{Event, Gap, Hub, Next, Start};
use crate::protocol::UserPrincipal;
use crate::protocol::scope::filter_admits;
use crate::protocol::turn::{Flats, Seen};
use crate::store::unix_now;

/// Reads `hub` from now on, until `stop` (embedded mode).
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
    let now = unix_now();
    let subscribers: Vec<Subscriber<'_>> = hooks.iter().map(|h| Subscriber::of(h)).collect();
    for queued in deliveries(|| hub.event_id(event.seq), event, &subscribers, flats, now) {
        hooks[queued.index].enqueue(&queued.kind, queued.body, now);
    }
}

/// What matching needs of a hook (in memory or from Redis).
pub(crate) struct Subscriber<'a> {
    /// Its event types.
    pub events: &'a [String],
    /// Its filter.
    pub filter: &'a HookFilter,
    /// The end user it reads as, if any.
    pub user: Option<&'a UserPrincipal>,
    /// True once that user's token was revoked.
    pub revoked: bool,
}

impl<'a> Subscriber<'a> {
    fn of(hook: &'a Hook) -> Self {
        Self {
            events: &hook.events,
            filter: &hook.filter,
            user: hook.user.as_deref(),
            revoked: hook.revoked.load(Ordering::Relaxed),
        }
    }
}

/// One delivery to queue, for `subscribers[index]`.
pub(crate) struct Queued {
    /// Which subscriber.
    pub index: usize,
    /// The event type.
    pub kind: String,
    /// The envelope.
    pub body: Bytes,
}

/// The deliveries `event` (id `event_id`) makes for `subscribers`: the raw
/// event and the flat one it completes, each for the subscribers reading
/// it, in that order. `flats` reads every event, matched or not.
pub(crate) fn deliveries(
    event_id: impl FnOnce() -> String,
    event: &Event,
    subscribers: &[Subscriber<'_>],
    flats: &mut Flats,
    now: u64,
) -> Vec<Queued> {
    let data = event.data();
    let seen = Seen {
        kind: &event.kind,
        runtime_id: event.runtime_id.as_deref(),
        agent_id: event.agent_id.as_deref(),
        conversation_id: event.conversation_id.as_deref(),
        data: &data,
    };
    let flat = flats.read(&seen);
    let mut out = Vec::new();
    if subscribers.is_empty() {
        return out;
    }
    let matching: Vec<usize> = (0..subscribers.len()).filter(|&i| reads(&subscribers[i], &seen, now)).collect();
    if matching.is_empty() {
        return out;
    }
    // Formatted only for an event some hook reads (most events: none).
    let event_id = &event_id();
    let raw = std::str::from_utf8(&data).ok().and_then(|s| RawValue::from_string(s.to_owned()).ok());
    let mut raw_body = None;
    for &index in &matching {
        if subscribers[index].events.iter().any(|t| **t == *event.kind)
            && let Some(raw) = &raw
        {
            let body = raw_body.get_or_insert_with(|| envelope(&event.kind, event_id, raw));
            out.push(Queued { index, kind: event.kind.to_string(), body: body.clone() });
        }
    }
    if let Some(flat) = flat {
        let kind = flat.kind();
        let json = serde_json::to_string(&flat).expect("flat events serialise");
        let raw = RawValue::from_string(json).expect("serde_json writes JSON");
        let body = envelope(kind, event_id, &raw);
        for &index in matching.iter().filter(|&&i| subscribers[i].events.iter().any(|t| t == kind)) {
            out.push(Queued { index, kind: kind.to_owned(), body: body.clone() });
        }
    }
    out
}

/// Does this subscriber read this event (its filter, its maker's grants and expiry)?
fn reads(hook: &Subscriber<'_>, seen: &Seen<'_>, now: u64) -> bool {
    let f = hook.filter;
    // The rule of feeds and `GET /events`.
    let want = [f.runtime.as_deref(), f.agent_id.as_deref(), f.conversation_id.as_deref()];
    if !filter_admits(want, seen.runtime_id, seen.agent_id, seen.conversation_id) {
        return false;
    }
    match hook.user {
        None => true,
        Some(user) => {
            !hook.revoked
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
