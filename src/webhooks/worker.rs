//! The task that delivers one hook's events, one at a time and in order:
//! the next delivery is attempted only once the one before it is
//! delivered or has failed (per-hook order). Each delivery is attempted
//! at once, then after each wait of the schedule (Standard Webhooks'
//! example: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each ±10 %). A `2xx`
//! delivers it; a `410` fails it and disables the hook; failing every
//! attempt disables the hook too, and says so in the log and in
//! `GET /webhooks`. Its time is tokio's (tests pause it).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;

use super::hook::{Hook, Status};
use super::send::{Signed, post};
use super::{Settings, sign};
use crate::metrics;
use crate::store::unix_now;

/// Runs `hook`'s deliveries until it is deleted or the bridge stops.
pub(super) async fn run(hook: Arc<Hook>, settings: Arc<Settings>) {
    loop {
        let next = {
            let mut state = hook.lock();
            if state.disabled.is_some() { None } else { state.queue.pop_front() }
        };
        let Some(id) = next else {
            tokio::select! {
                () = hook.wake.notified() => continue,
                () = hook.stop.cancelled() => return,
            }
        };
        if !deliver(&hook, &settings, &id).await {
            return;
        }
    }
}

/// How one attempt ended.
enum Outcome {
    Delivered,
    Gone,
    Failed,
}

/// Attempts delivery `id` along the schedule; false when the hook stopped meanwhile.
async fn deliver(hook: &Hook, settings: &Settings, id: &str) -> bool {
    let Some(body) = hook.lock().deliveries.get(id).map(|d| d.body.clone()) else { return true };
    for attempt in 0..=settings.schedule.len() {
        if attempt > 0 {
            let wait = jittered(settings.schedule[attempt - 1]);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = hook.stop.cancelled() => return false,
            }
        }
        if let Some(user) = &hook.user
            && user.exp < unix_now()
        {
            disable(hook, "expired", "the end user's token that made it has expired".into());
            return true;
        }
        if hook.revoked.load(Ordering::Relaxed) {
            disable(hook, "revoked", "the end user's token that made it was revoked".into());
            return true;
        }
        let result = tokio::select! {
            r = attempt_once(hook, settings, id, body.clone()) => r,
            () = hook.stop.cancelled() => return false,
        };
        let outcome = {
            let mut state = hook.lock();
            let Some(delivery) = state.deliveries.get_mut(id) else { return true };
            delivery.attempts += 1;
            match result {
                Ok(status) => {
                    delivery.last_status = Some(status.as_u16());
                    delivery.last_error = (!status.is_success()).then(|| format!("HTTP {status}"));
                    if status.is_success() {
                        Outcome::Delivered
                    } else if status == StatusCode::GONE {
                        Outcome::Gone
                    } else {
                        Outcome::Failed
                    }
                }
                Err(e) => {
                    delivery.last_status = None;
                    delivery.last_error = Some(e);
                    Outcome::Failed
                }
            }
        };
        match outcome {
            Outcome::Delivered => {
                finish(hook, id, Status::Delivered);
                return true;
            }
            Outcome::Gone => {
                finish(hook, id, Status::Failed);
                disable(hook, "gone", "its receiver answered 410 Gone".into());
                return true;
            }
            Outcome::Failed => {}
        }
    }
    finish(hook, id, Status::Failed);
    let attempts = settings.schedule.len() + 1;
    disable(hook, "failing", format!("delivery {id} failed all {attempts} attempts of the retry schedule"));
    true
}

/// One signed POST of `body`, after the SSRF guard resolved and checked the address.
async fn attempt_once(hook: &Hook, settings: &Settings, id: &str, body: bytes::Bytes) -> Result<StatusCode, String> {
    let addr = hook.target.resolve(&settings.allow).await?;
    let timestamp = unix_now();
    let signature = sign::signature(&hook.secret, id, timestamp, &body);
    post(&hook.target, addr, &Signed { id, timestamp, signature: &signature }, body).await
}

fn finish(hook: &Hook, id: &str, status: Status) {
    if let Some(delivery) = hook.lock().deliveries.get_mut(id) {
        delivery.status = status;
    }
    let outcome = if status == Status::Delivered { "delivered" } else { "failed" };
    ::metrics::counter!(metrics::WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// Disables `hook` (its pending deliveries stay, redeliverable) and reports it.
pub(super) fn disable(hook: &Hook, reason: &'static str, why: String) {
    tracing::warn!(webhook = %hook.id, reason, "webhook disabled: {why}");
    ::metrics::counter!(metrics::WEBHOOKS_DISABLED, "reason" => reason).increment(1);
    hook.lock().disabled = Some(why);
}

/// `wait` ±10 %, at random.
fn jittered(wait: Duration) -> Duration {
    let random = (uuid::Uuid::new_v4().as_u128() % 2001) as f64 / 1000.0 - 1.0;
    wait.mul_f64(1.0 + random / 10.0)
}
