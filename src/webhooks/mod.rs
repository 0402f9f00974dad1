//! Webhooks (`POST /webhooks`): the bridge posts events to URLs, signed to
//! Standard Webhooks v1 ([`sign`]), at least once, in order per hook
//! ([`worker`]), behind an SSRF guard ([`target`]). Embedded mode
//! ([`Webhooks`]): one task reads the event log and queues each event for
//! the hooks it matches ([`dispatch`]); one task per hook delivers. Both
//! are in the shutdown tree ([`Webhooks::close`]). Hooks and their
//! deliveries live in this process's memory: a restart forgets them (the
//! docs say so). In a cluster the hooks live in Redis and one instance at
//! a time, holding a lease, reads and delivers with the same matching
//! ([`dispatch::deliveries`]) and attempts ([`worker::attempt`]); when it
//! dies another takes over within about LETTA_BRIDGE_NODE_TTL, still at
//! least once (`src/cluster/webhooks/`). The door sees either through
//! [`WebhookStore`]. Who may make and manage hooks is decided in one place
//! ([`crate::protocol::Role::makes_webhooks`], `manages_webhook`).
//!
//! Bounded: at most [`MAX_HOOKS`] hooks, [`MAX_HOOKS_PER_USER`] of one end
//! user; each hook's queue as [`hook`] says.

pub(crate) mod dispatch;
mod hook;
mod send;
pub mod sign;
mod store;
pub mod target;
pub(crate) mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use hook::{Delivery, Hook, HookFilter, MAX_PENDING, MAX_RECORDED, Redelivery, Status};
pub use store::{HookFuture, HookInfo, MakeError, WebhookStore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hub::Hub;
use crate::protocol::Role;
use crate::store::{RevokedFuture, unix_now};
use target::{Allow, Target};

/// Most hooks at once.
pub const MAX_HOOKS: usize = 100;
/// Most hooks of one end user.
pub const MAX_HOOKS_PER_USER: usize = 10;
/// How a hook's id starts.
pub const HOOK_PREFIX: &str = "wh_";

/// The retry schedule of Standard Webhooks' example: the waits after the
/// first attempt (each jittered ±10 %).
pub const SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// How hooks deliver.
#[derive(Debug, Clone)]
pub struct Settings {
    /// LETTA_BRIDGE_WEBHOOK_ALLOW.
    pub allow: Allow,
    /// The waits between attempts ([`SCHEDULE`]; tests shorten it).
    pub schedule: Vec<Duration>,
}

/// A hook to make.
pub struct NewHook {
    /// Where to post.
    pub url: String,
    /// The event types.
    pub events: Vec<String>,
    /// Which events of them.
    pub filter: HookFilter,
}

/// The hooks of this instance, and their tasks (embedded mode).
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    /// A std mutex: held briefly, never across `.await`.
    hooks: Mutex<HashMap<String, Arc<Hook>>>,
    settings: Arc<Settings>,
    /// The log the reader reads.
    hub: Hub,
    /// True once the reader started: with the first hook (no hook, no reader of the log).
    reading: AtomicBool,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Webhooks {
    /// No hooks yet; the first one starts the reader of `hub`.
    pub fn new(hub: &Hub, settings: Settings) -> Self {
        let inner = Arc::new(Inner {
            hooks: Mutex::default(),
            settings: Arc::new(settings),
            hub: hub.clone(),
            reading: AtomicBool::new(false),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        });
        Self { inner }
    }

    fn hooks(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Hook>>> {
        self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every hook, for the dispatcher.
    fn snapshot(&self) -> Vec<Arc<Hook>> {
        self.hooks().values().cloned().collect()
    }

    /// Makes a hook for `role`; its secret (`whsec_…`) is answered once.
    /// `revoked` completes when the end user's token that makes it is
    /// revoked: the hook is then disabled for good.
    pub async fn create(
        &self,
        role: &Role,
        new: NewHook,
        revoked: Option<RevokedFuture>,
    ) -> Result<(Arc<Hook>, String), MakeError> {
        let target = Target::parse(&new.url).map_err(MakeError::Target)?;
        // Refused now rather than at its first delivery (each delivery checks again).
        target.resolve(&self.inner.settings.allow).await.map_err(MakeError::Target)?;
        let owner = role.principal().into_owned();
        let secret = sign::new_secret();
        let hook = Arc::new(Hook {
            id: format!("{HOOK_PREFIX}{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
            url: new.url,
            target,
            events: new.events,
            filter: new.filter,
            owner,
            user: role.user().cloned(),
            secret: secret.clone(),
            created_at: unix_now(),
            state: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            stop: self.inner.stop.child_token(),
            revoked: AtomicBool::new(false),
        });
        {
            let mut hooks = self.hooks();
            if hooks.len() >= MAX_HOOKS {
                return Err(MakeError::Full(format!("{MAX_HOOKS} webhooks exist: delete one first")));
            }
            if role.user().is_some() && hooks.values().filter(|h| h.owner == hook.owner).count() >= MAX_HOOKS_PER_USER {
                return Err(MakeError::Full(format!("you have {MAX_HOOKS_PER_USER} webhooks: delete one first")));
            }
            hooks.insert(hook.id.clone(), hook.clone());
        }
        if !self.inner.reading.swap(true, Ordering::AcqRel) {
            let hub = self.inner.hub.clone();
            self.inner.tasks.spawn(dispatch::run(hub, self.clone(), self.inner.stop.clone()));
        }
        self.inner.tasks.spawn(worker::run(hook.clone(), self.inner.settings.clone()));
        if let Some(revoked) = revoked {
            let hook = hook.clone();
            self.inner.tasks.spawn(async move {
                tokio::select! {
                    () = revoked => {
                        hook.revoked.store(true, Ordering::Relaxed);
                        worker::disable(&hook, "revoked", "the end user's token that made it was revoked".into());
                    }
                    () = hook.stop.cancelled() => {}
                }
            });
        }
        Ok((hook, sign::secret_text(&secret)))
    }

    /// The hooks `role` manages, newest first.
    pub fn list(&self, role: &Role) -> Vec<Arc<Hook>> {
        let mut hooks: Vec<_> = self.snapshot().into_iter().filter(|h| role.manages_webhook(&h.owner)).collect();
        hooks.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
        hooks
    }

    /// The hook `id`, if `role` manages it.
    pub fn get(&self, role: &Role, id: &str) -> Option<Arc<Hook>> {
        self.hooks().get(id).filter(|h| role.manages_webhook(&h.owner)).cloned()
    }

    /// Deletes hook `id` (if `role` manages it): its worker ends, its pending deliveries go.
    pub fn delete(&self, role: &Role, id: &str) -> bool {
        let mut hooks = self.hooks();
        if !hooks.get(id).is_some_and(|h| role.manages_webhook(&h.owner)) {
            return false;
        }
        if let Some(hook) = hooks.remove(id) {
            hook.stop.cancel();
        }
        true
    }

    /// Stops reading the log and delivering, within `grace`: pending
    /// deliveries are lost with the process (embedded mode keeps them in memory).
    pub async fn close(&self, grace: Duration) {
        self.inner.stop.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait()).await.is_err() {
            tracing::warn!(tasks = self.inner.tasks.len(), "webhook tasks did not end in time");
        }
    }
}

impl Hook {
    /// What the door shows of it.
    pub fn info(&self) -> HookInfo {
        HookInfo {
            id: self.id.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            filter: self.filter.clone(),
            owner: self.owner.clone(),
            created_at: self.created_at,
            disabled: self.disabled(),
            pending: self.pending(),
        }
    }
}

impl WebhookStore for Webhooks {
    fn create<'a>(
        &'a self,
        role: &'a Role,
        new: NewHook,
        revoked: Option<RevokedFuture>,
    ) -> HookFuture<'a, (HookInfo, String)> {
        Box::pin(async move { Webhooks::create(self, role, new, revoked).await.map(|(h, s)| (h.info(), s)) })
    }

    fn list<'a>(&'a self, role: &'a Role) -> HookFuture<'a, Vec<HookInfo>> {
        Box::pin(async move { Ok(Webhooks::list(self, role).iter().map(|h| h.info()).collect()) })
    }

    fn delete<'a>(&'a self, role: &'a Role, id: &'a str) -> HookFuture<'a, bool> {
        Box::pin(async move { Ok(Webhooks::delete(self, role, id)) })
    }

    fn deliveries<'a>(&'a self, role: &'a Role, id: &'a str) -> HookFuture<'a, Option<Vec<Delivery>>> {
        Box::pin(async move { Ok(self.get(role, id).map(|h| h.deliveries())) })
    }

    fn redeliver<'a>(&'a self, role: &'a Role, id: &'a str, delivery: &'a str) -> HookFuture<'a, Option<Redelivery>> {
        Box::pin(async move { Ok(self.get(role, id).map(|h| h.redeliver(delivery))) })
    }

    fn close(&self, grace: Duration) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Webhooks::close(self, grace))
    }
}
