//! Webhooks in a cluster: hooks and their deliveries live in Redis
//! (`webhooks.lua`), so any instance makes, lists, deletes and redelivers
//! them ([`RedisWebhooks`], the [`WebhookStore`] of cluster mode), and
//! they survive a restart of every instance. One instance at a time, the
//! webhooks leader, holds a lease in Redis ([`leader`]): it reads the
//! shared log (its mirror) from a cursor kept in Redis, queues each
//! matching delivery on its hook's list, and delivers each hook's list in
//! order ([`deliver`]), keeping each delivery's attempts and next attempt
//! time in Redis. When it dies, another instance takes the lease within
//! about LETTA_BRIDGE_NODE_TTL and resumes from there: every event is
//! delivered once for the cluster, at least once (a delivery in flight
//! when its leader died is sent again, with the same `webhook-id`).
//! Matching, envelopes, signing, the SSRF guard and the attempt itself
//! are the embedded mode's ([`crate::webhooks`]).
//!
//! A hook's pending deliveries are a Redis list rather than a stream: its
//! head is the delivery being attempted (removed only once it ends, so a
//! new leader resumes it), a redelivery is pushed at its tail, and the
//! drop policy of a full list (1000, the oldest goes, marked `dropped`) is
//! one `LPOP`; a stream would need `XDEL`s and a second order for
//! redeliveries.

mod deliver;
mod leader;
mod records;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use self::records::{DeliveryRecord, HookRecord};
use super::Node;
use super::engine::Lua;
use crate::protocol::Role;
use crate::store::{RevokedFuture, TicketUser, unix_now};
use crate::webhooks::target::Target;
use crate::webhooks::{
    Delivery, HOOK_PREFIX, HookFuture, HookInfo, MAX_HOOKS, MAX_HOOKS_PER_USER, MakeError, NewHook, Redelivery,
    Settings, WebhookStore, sign,
};

pub(super) use leader::run as lead;

/// The cluster's hooks, in Redis.
pub(super) struct RedisWebhooks {
    node: Arc<Node>,
    settings: Arc<Settings>,
}

fn unavailable(e: redis::RedisError) -> MakeError {
    MakeError::Unavailable(e.to_string())
}

impl RedisWebhooks {
    pub(super) fn new(node: Arc<Node>, settings: Arc<Settings>) -> Self {
        Self { node, settings }
    }

    /// Every hook with why it is disabled and its pending count.
    async fn all(node: &Node) -> Result<Vec<(HookRecord, Option<String>, usize)>, redis::RedisError> {
        let reply: Vec<String> = node.engine.script(Lua::Webhooks, "list").run().await?;
        Ok(reply
            .chunks(3)
            .filter_map(|c| {
                let record = HookRecord::from_json(&c[0])?;
                let off = (!c[1].is_empty()).then(|| c[1].clone());
                Some((record, off, c[2].parse().unwrap_or(0)))
            })
            .collect())
    }

    /// Hook `id`, if `role` manages it.
    async fn get(&self, role: &Role, id: &str) -> Result<Option<HookRecord>, MakeError> {
        let json: Option<String> = self
            .node
            .engine
            .run(redis::cmd("HGET").arg(self.node.engine.key("hooks")).arg(id))
            .await
            .map_err(unavailable)?;
        Ok(json.as_deref().and_then(HookRecord::from_json).filter(|h| role.manages_webhook(&h.owner)))
    }
}

impl WebhookStore for RedisWebhooks {
    fn create<'a>(
        &'a self,
        role: &'a Role,
        new: NewHook,
        _: Option<RevokedFuture>,
    ) -> HookFuture<'a, (HookInfo, String)> {
        // A revocation is asked of the cluster's revocations at each attempt.
        Box::pin(async move {
            let target = Target::parse(&new.url).map_err(MakeError::Target)?;
            target.resolve(&self.settings.allow).await.map_err(MakeError::Target)?;
            let secret = sign::new_secret();
            let record = HookRecord {
                id: format!("{HOOK_PREFIX}{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
                url: new.url,
                events: new.events,
                filter: new.filter,
                owner: role.principal().into_owned(),
                user: role.user().map(|u| TicketUser::to_json(u)),
                secret: secret.clone(),
                created_at: unix_now(),
            };
            let per_owner = if role.user().is_some() { MAX_HOOKS_PER_USER } else { 0 };
            let call = self.node.engine.script(Lua::Webhooks, "create").arg(&record.id).arg(record.to_json());
            let call = call.arg(&record.owner).arg(MAX_HOOKS).arg(per_owner);
            let made: String = call.run().await.map_err(unavailable)?;
            match made.as_str() {
                "ok" => Ok((record.info(None, 0), sign::secret_text(&secret))),
                "full-owner" => {
                    Err(MakeError::Full(format!("you have {MAX_HOOKS_PER_USER} webhooks: delete one first")))
                }
                _ => Err(MakeError::Full(format!("{MAX_HOOKS} webhooks exist: delete one first"))),
            }
        })
    }

    fn list<'a>(&'a self, role: &'a Role) -> HookFuture<'a, Vec<HookInfo>> {
        Box::pin(async move {
            let mut hooks: Vec<HookInfo> = Self::all(&self.node)
                .await
                .map_err(unavailable)?
                .into_iter()
                .filter(|(h, _, _)| role.manages_webhook(&h.owner))
                .map(|(h, off, pending)| h.info(off, pending))
                .collect();
            hooks.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
            Ok(hooks)
        })
    }

    fn delete<'a>(&'a self, role: &'a Role, id: &'a str) -> HookFuture<'a, bool> {
        Box::pin(async move {
            let Some(hook) = self.get(role, id).await? else { return Ok(false) };
            let call = self.node.engine.script(Lua::Webhooks, "delete").arg(id).arg(&hook.owner);
            let deleted: i64 = call.run().await.map_err(unavailable)?;
            Ok(deleted == 1)
        })
    }

    fn deliveries<'a>(&'a self, role: &'a Role, id: &'a str) -> HookFuture<'a, Option<Vec<Delivery>>> {
        Box::pin(async move {
            if self.get(role, id).await?.is_none() {
                return Ok(None);
            }
            let call = self.node.engine.script(Lua::Webhooks, "deliveries").arg(id);
            let reply: Vec<String> = call.run().await.map_err(unavailable)?;
            Ok(Some(reply.iter().filter_map(|j| DeliveryRecord::from_json(j)).map(DeliveryRecord::delivery).collect()))
        })
    }

    fn redeliver<'a>(&'a self, role: &'a Role, id: &'a str, delivery: &'a str) -> HookFuture<'a, Option<Redelivery>> {
        Box::pin(async move {
            if self.get(role, id).await?.is_none() {
                return Ok(None);
            }
            let call = self.node.engine.script(Lua::Webhooks, "redeliver").arg(id).arg(delivery);
            let done: String = call.run().await.map_err(unavailable)?;
            Ok(Some(match done.as_str() {
                "queued" => Redelivery::Queued,
                "pending" => Redelivery::Pending,
                _ => Redelivery::Unknown,
            }))
        })
    }

    fn close(&self, _: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        // The leader's tasks are the cluster's: they end when it leaves.
        Box::pin(async {})
    }
}
