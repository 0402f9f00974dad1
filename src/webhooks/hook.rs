//! One webhook: what it was made with, and its deliveries — the queue of
//! pending ones and the record of past ones. A hook's queue is bounded
//! ([`MAX_PENDING`]): when it is full, the oldest pending delivery is
//! marked `dropped` (counted in `letta_bridge_webhook_deliveries_total{outcome="dropped"}`,
//! listed in its deliveries, redeliverable) and the new one queued, so a
//! slow receiver never slows the stream. The record keeps the last
//! [`MAX_RECORDED`] deliveries.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::target::Target;
use crate::metrics;
use crate::protocol::UserPrincipal;

/// Most pending deliveries of one hook.
pub const MAX_PENDING: usize = 1_000;
/// Most deliveries of one hook on record (pending ones included).
pub const MAX_RECORDED: usize = 2_000;

/// Which events a hook receives: absent fields filter nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookFilter {
    /// Only events of this runtime id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Only events of this agent (events without an agent, such as
    /// `runtime_online`, still pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Only events of this conversation (events without one still pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Queued, or being attempted.
    Pending,
    /// A receiver answered `2xx`.
    Delivered,
    /// Every attempt of the schedule failed, or the receiver answered `410`.
    Failed,
    /// Never attempted to the end: the hook's queue was full.
    Dropped,
}

/// One delivery: an event, signed and sent until it is delivered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// `msg_…`: the `webhook-id` header of every attempt.
    pub id: String,
    /// The event type (`turn.finished`, `approval.requested`, or a raw type).
    pub event_type: String,
    /// Where it is.
    pub status: Status,
    /// Attempts made.
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When it was made, in seconds since the Unix epoch.
    pub created_at: u64,
    /// The body sent.
    #[serde(skip)]
    pub body: Bytes,
}

/// What a redelivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// Queued again.
    Queued,
    /// Nothing: it is pending already.
    Pending,
    /// Nothing: no such delivery on record.
    Unknown,
}

/// A hook's state: guarded by one short lock, never held across `.await`.
#[derive(Default)]
pub(super) struct State {
    /// Not `None` once disabled: why.
    pub disabled: Option<String>,
    /// Ids of pending deliveries, oldest first.
    pub queue: VecDeque<String>,
    /// Deliveries on record, by id.
    pub deliveries: HashMap<String, Delivery>,
    /// Their ids, oldest first (what is forgotten first).
    pub recorded: VecDeque<String>,
}

/// One webhook.
pub struct Hook {
    /// `wh_…`.
    pub id: String,
    /// Where it posts.
    pub url: String,
    pub(super) target: Target,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Which of them.
    pub filter: HookFilter,
    /// Who made it ([`crate::protocol::Role::principal`]).
    pub owner: String,
    /// The end user it reads as, when an end user's token made it.
    pub(super) user: Option<Arc<UserPrincipal>>,
    pub(super) secret: Vec<u8>,
    /// When it was made, in seconds since the Unix epoch.
    pub created_at: u64,
    pub(super) state: Mutex<State>,
    /// Wakes its worker: a delivery was queued.
    pub(super) wake: Notify,
    /// Ends its worker (deleted, or shutdown).
    pub(super) stop: CancellationToken,
    /// Set once the end user's token that made it is revoked: it delivers nothing more.
    pub(super) revoked: AtomicBool,
}

impl Hook {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why it is disabled, if it is.
    pub fn disabled(&self) -> Option<String> {
        self.lock().disabled.clone()
    }

    /// Pending deliveries.
    pub fn pending(&self) -> usize {
        self.lock().queue.len()
    }

    /// Its deliveries on record, newest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        let state = self.lock();
        state.recorded.iter().rev().filter_map(|id| state.deliveries.get(id).cloned()).collect()
    }

    /// Queues a new delivery of `body` (an event of type `kind`), unless
    /// the hook is disabled; at a full queue the oldest pending is dropped.
    pub(super) fn enqueue(&self, kind: &str, body: Bytes, now: u64) {
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let mut state = self.lock();
        if state.disabled.is_some() {
            return;
        }
        if state.queue.len() >= MAX_PENDING
            && let Some(oldest) = state.queue.pop_front()
            && let Some(dropped) = state.deliveries.get_mut(&oldest)
        {
            dropped.status = Status::Dropped;
            ::metrics::counter!(metrics::WEBHOOK_DELIVERIES, "outcome" => "dropped").increment(1);
        }
        let delivery = Delivery {
            id: id.clone(),
            event_type: kind.to_owned(),
            status: Status::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            created_at: now,
            body,
        };
        state.deliveries.insert(id.clone(), delivery);
        state.recorded.push_back(id.clone());
        state.queue.push_back(id);
        forget_oldest(&mut state);
        drop(state);
        self.wake.notify_one();
    }

    /// Queues `delivery_id` again (`POST …/retry`), after the pending
    /// ones, and enables the hook again.
    pub fn redeliver(&self, delivery_id: &str) -> Redelivery {
        let mut state = self.lock();
        let Some(delivery) = state.deliveries.get_mut(delivery_id) else { return Redelivery::Unknown };
        if delivery.status == Status::Pending {
            return Redelivery::Pending;
        }
        delivery.status = Status::Pending;
        state.disabled = None;
        state.queue.push_back(delivery_id.to_owned());
        drop(state);
        self.wake.notify_one();
        Redelivery::Queued
    }
}

/// Forgets the oldest deliveries beyond [`MAX_RECORDED`] that are not pending.
fn forget_oldest(state: &mut State) {
    while state.recorded.len() > MAX_RECORDED {
        let Some(pos) =
            state.recorded.iter().position(|id| state.deliveries.get(id).is_none_or(|d| d.status != Status::Pending))
        else {
            return;
        };
        if let Some(id) = state.recorded.remove(pos) {
            state.deliveries.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> Hook {
        Hook {
            id: "wh_test".into(),
            url: "http://127.0.0.1/".into(),
            target: Target::parse("http://127.0.0.1/").unwrap(),
            events: vec!["turn.finished".into()],
            filter: HookFilter::default(),
            owner: "admin".into(),
            user: None,
            secret: vec![0; 32],
            created_at: 0,
            state: Mutex::default(),
            wake: Notify::new(),
            stop: CancellationToken::new(),
            revoked: AtomicBool::new(false),
        }
    }

    #[test]
    fn a_full_queue_drops_its_oldest_pending_delivery_and_keeps_the_newest() {
        let hook = hook();
        for n in 0..=MAX_PENDING {
            hook.enqueue("turn.finished", Bytes::from(n.to_string()), 0);
        }
        let state = hook.lock();
        assert_eq!(state.queue.len(), MAX_PENDING);
        let oldest = &state.deliveries[&state.recorded[0]];
        assert_eq!((oldest.status, &oldest.body[..]), (Status::Dropped, &b"0"[..]));
        let newest = &state.deliveries[state.queue.back().unwrap()];
        assert_eq!(&newest.body[..], MAX_PENDING.to_string().as_bytes());
    }

    #[test]
    fn a_disabled_hook_queues_nothing_and_a_redelivery_enables_it() {
        let hook = hook();
        hook.enqueue("turn.finished", Bytes::from_static(b"1"), 0);
        let id = hook.lock().queue.pop_front().unwrap();
        assert_eq!(hook.redeliver(&id), Redelivery::Pending, "still pending: not queued twice");
        hook.lock().deliveries.get_mut(&id).unwrap().status = Status::Failed;
        hook.lock().disabled = Some("gone".into());
        hook.enqueue("turn.finished", Bytes::from_static(b"2"), 0);
        assert_eq!(hook.pending(), 0, "disabled: nothing queued");
        assert_eq!(hook.redeliver(&id), Redelivery::Queued);
        assert_eq!((hook.disabled(), hook.pending()), (None, 1));
        assert_eq!(hook.redeliver("msg_unknown"), Redelivery::Unknown);
    }
}
