//! One hook's deliveries on the webhooks leader: the head of its list in
//! Redis is attempted (the embedded mode's signed attempt, SSRF guard and
//! outcome rules: [`crate::webhooks::worker`]) once it is due, and each
//! attempt's result is written back (fenced) before the next: attempts,
//! last status and error, the next attempt's time along the schedule, or
//! the delivery's end (and the hook disabled after a `410` or an exhausted
//! schedule). A new leader finds all of it where this one left it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::super::engine::Lua;
use super::leader::Term;
use super::records::{DeliveryRecord, HookRecord};
use crate::store::unix_now;
use crate::webhooks::Status;
use crate::webhooks::target::Target;
use crate::webhooks::worker::{
    EXPIRED, GONE, Outcome, REVOKED, attempt, count_finished, exhausted, jittered, outcome, report_disabled,
};

/// How long an idle task waits before it looks at its list again (a
/// redelivery asked on another instance is seen within it).
const POLL: Duration = Duration::from_secs(1);

/// Delivers `hook`'s list until `stop` (deleted, or the term ended).
pub(super) async fn run(term: Arc<Term>, hook: HookRecord, wake: Arc<Notify>, stop: CancellationToken) {
    let Ok(target) = Target::parse(&hook.url) else { return };
    let user = hook.user();
    loop {
        let wait = match head(&term, &hook.id).await {
            Ok(Some(delivery)) => {
                let due = delivery.next_at.saturating_sub(term.node.lease.engine_now_ms());
                if due == 0 {
                    tokio::select! {
                        done = step(&term, &hook, &target, user.as_ref(), delivery) => if done.is_err() { return },
                        () = stop.cancelled() => return,
                    }
                    continue;
                }
                Duration::from_millis(due).min(POLL)
            }
            Ok(None) | Err(_) => POLL,
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The delivery at the head of hook `id`'s list, unless the hook is disabled.
async fn head(term: &Term, id: &str) -> Result<Option<DeliveryRecord>, redis::RedisError> {
    let engine = &term.node.engine;
    let q = engine.key(&format!("wh:{id}:q"));
    let (first, off): (Option<String>, bool) = engine
        .pipe(redis::pipe().cmd("LINDEX").arg(q).arg(0).cmd("HEXISTS").arg(engine.key("hooks-off")).arg(id))
        .await?;
    let Some(first) = first.filter(|_| !off) else { return Ok(None) };
    let json: Option<String> = engine.run(redis::cmd("HGET").arg(engine.key(&format!("wh:{id}:d"))).arg(first)).await?;
    Ok(json.as_deref().and_then(DeliveryRecord::from_json))
}

/// One attempt of `delivery`, its result written back. An error: this
/// instance no longer leads (or Redis failed): the task ends.
async fn step(
    term: &Term,
    hook: &HookRecord,
    target: &Target,
    user: Option<&crate::protocol::UserPrincipal>,
    delivery: DeliveryRecord,
) -> Result<(), redis::RedisError> {
    if let Some(user) = user {
        if user.exp < unix_now() {
            return disable(term, &hook.id, "expired", EXPIRED).await;
        }
        if let Some(jti) = &user.jti
            && term.revocations.is_revoked(jti).await.unwrap_or(false)
        {
            return disable(term, &hook.id, "revoked", REVOKED).await;
        }
    }
    let result = attempt(target, &term.settings.allow, &hook.secret, &delivery.id, delivery.body.clone().into()).await;
    let attempts = delivery.attempts + 1;
    let (outcome, last_status, last_error) = outcome(&result);
    let schedule = &term.settings.schedule;
    let call = |mode| {
        let call = term.node.engine.script(Lua::Webhooks, mode).arg(&term.holder).arg(&hook.id).arg(&delivery.id);
        call.arg(attempts)
            .arg(last_status.map_or(String::new(), |s| s.to_string()))
            .arg(last_error.clone().unwrap_or_default())
    };
    let (status, off) = match outcome {
        Outcome::Delivered => (Status::Delivered, None),
        Outcome::Gone => (Status::Failed, Some(("gone", GONE.to_owned()))),
        Outcome::Failed if attempts as usize > schedule.len() => {
            (Status::Failed, Some(("failing", exhausted(&delivery.id, schedule.len() + 1))))
        }
        Outcome::Failed => {
            let wait = jittered(schedule[attempts as usize - 1]);
            let next_at = term.node.lease.engine_now_ms() + wait.as_millis() as u64;
            let _: i64 = call("attempted").arg(next_at).run().await?;
            return Ok(());
        }
    };
    let status_text = if status == Status::Delivered { "delivered" } else { "failed" };
    let why = off.as_ref().map_or(String::new(), |(_, why)| why.clone());
    let _: i64 = call("done").arg(status_text).arg(&why).run().await?;
    count_finished(status);
    if let Some((reason, why)) = off {
        report_disabled(&hook.id, reason, &why);
    }
    Ok(())
}

async fn disable(term: &Term, id: &str, reason: &'static str, why: &str) -> Result<(), redis::RedisError> {
    let _: i64 = term.node.engine.script(Lua::Webhooks, "disable").arg(&term.holder).arg(id).arg(why).run().await?;
    report_disabled(id, reason, why);
    Ok(())
}
