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
use super::target::{Allow, Target};
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
pub(crate) enum Outcome {
    /// A `2xx`.
    Delivered,
    /// A `410`: the hook is disabled.
    Gone,
    /// Anything else: tried again along the schedule.
    Failed,
}

/// How `result` ended, and the `last_status` and `last_error` it leaves on record.
pub(crate) fn outcome(result: &Result<StatusCode, String>) -> (Outcome, Option<u16>, Option<String>) {
    match result {
        Ok(status) => {
            let error = (!status.is_success()).then(|| format!("HTTP {status}"));
            let outcome = if status.is_success() {
                Outcome::Delivered
            } else if *status == StatusCode::GONE {
                Outcome::Gone
            } else {
                Outcome::Failed
            };
            (outcome, Some(status.as_u16()), error)
        }
        Err(e) => (Outcome::Failed, None, Some(e.clone())),
    }
}

/// Why a hook whose delivery `id` failed all `attempts` is disabled.
pub(crate) fn exhausted(id: &str, attempts: usize) -> String {
    format!("delivery {id} failed all {attempts} attempts of the retry schedule")
}

/// Why a hook of an end user whose token expired is disabled.
pub(crate) const EXPIRED: &str = "the end user's token that made it has expired";
/// Why a hook of an end user whose token was revoked is disabled.
pub(crate) const REVOKED: &str = "the end user's token that made it was revoked";
/// Why a hook whose receiver answered `410` is disabled.
pub(crate) const GONE: &str = "its receiver answered 410 Gone";

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
            disable(hook, "expired", EXPIRED.into());
            return true;
        }
        if hook.revoked.load(Ordering::Relaxed) {
            disable(hook, "revoked", REVOKED.into());
            return true;
        }
        let result = tokio::select! {
            r = attempt_once(hook, settings, id, body.clone()) => r,
            () = hook.stop.cancelled() => return false,
        };
        let (outcome, last_status, last_error) = outcome(&result);
        {
            let mut state = hook.lock();
            let Some(delivery) = state.deliveries.get_mut(id) else { return true };
            delivery.attempts += 1;
            delivery.last_status = last_status;
            delivery.last_error = last_error;
        }
        match outcome {
            Outcome::Delivered => {
                finish(hook, id, Status::Delivered);
                return true;
            }
            Outcome::Gone => {
                finish(hook, id, Status::Failed);
                disable(hook, "gone", GONE.into());
                return true;
            }
            Outcome::Failed => {}
        }
    }
    finish(hook, id, Status::Failed);
    let attempts = settings.schedule.len() + 1;
    disable(hook, "failing", exhausted(id, attempts));
    true
}

async fn attempt_once(hook: &Hook, settings: &Settings, id: &str, body: bytes::Bytes) -> Result<StatusCode, String> {
    attempt(&hook.target, &settings.allow, &hook.secret, id, body).await
}

/// One signed POST of `body` to `target` as delivery `id`, after the SSRF
/// guard resolved and checked the address.
pub(crate) async fn attempt(
    target: &Target,
    allow: &Allow,
    secret: &[u8],
    id: &str,
    body: bytes::Bytes,
) -> Result<StatusCode, String> {
    let addr = target.resolve(allow).await?;
    let timestamp = unix_now();
    let signature = sign::signature(secret, id, timestamp, &body);
    post(target, addr, &Signed { id, timestamp, signature: &signature }, body).await
}

fn finish(hook: &Hook, id: &str, status: Status) {
    if let Some(delivery) = hook.lock().deliveries.get_mut(id) {
        delivery.status = status;
    }
    count_finished(status);
}

/// Counts a delivery that ended (`delivered`, or `failed`).
pub(crate) fn count_finished(status: Status) {
    let outcome = if status == Status::Delivered { "delivered" } else { "failed" };
    ::metrics::counter!(metrics::WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// Counts a dropped delivery (a full queue).
pub(crate) fn count_dropped(n: u64) {
    ::metrics::counter!(metrics::WEBHOOK_DELIVERIES, "outcome" => "dropped").increment(n);
}

/// Disables `hook` (its pending deliveries stay, redeliverable) and reports it.
pub(super) fn disable(hook: &Hook, reason: &'static str, why: String) {
    report_disabled(&hook.id, reason, &why);
    hook.lock().disabled = Some(why);
}

/// Logs and counts a hook disabled for `reason`.
pub(crate) fn report_disabled(id: &str, reason: &'static str, why: &str) {
    tracing::warn!(webhook = %id, reason, "webhook disabled: {why}");
    ::metrics::counter!(metrics::WEBHOOKS_DISABLED, "reason" => reason).increment(1);
}

/// `wait` ±10 %, at random.
pub(crate) fn jittered(wait: Duration) -> Duration {
    let random = (uuid::Uuid::new_v4().as_u128() % 2001) as f64 / 1000.0 - 1.0;
    wait.mul_f64(1.0 + random / 10.0)
}
