//! The seam between the webhook door (`src/http/webhooks.rs`) and where
//! hooks live: this process's memory ([`super::Webhooks`], embedded mode)
//! or Redis (the cluster's hooks, delivered by one instance at a time).
//! A handful of calls, each answering plain records ([`HookInfo`],
//! [`Delivery`]), so that the door is the same in both modes.

use std::pin::Pin;
use std::time::Duration;

use super::{Delivery, HookFilter, NewHook, Redelivery};
use crate::protocol::Role;
use crate::store::RevokedFuture;

/// A boxed future of the store.
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, MakeError>> + Send + 'a>>;

/// Why a call did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    /// A URL that is no hook URL, or one the SSRF guard refuses (422).
    #[error("{0}")]
    Target(String),
    /// Too many hooks (409).
    #[error("{0}")]
    Full(String),
    /// The shared store (Redis) did not answer (503).
    #[error("{0}")]
    Unavailable(String),
}

/// A hook as the door shows it (never its secret).
#[derive(Debug, Clone)]
pub struct HookInfo {
    /// `wh_…`.
    pub id: String,
    /// Where it posts.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Which of them.
    pub filter: HookFilter,
    /// Who made it ([`Role::principal`]).
    pub owner: String,
    /// When it was made, in seconds since the Unix epoch.
    pub created_at: u64,
    /// Why it is disabled, if it is.
    pub disabled: Option<String>,
    /// Deliveries waiting (in a cluster, the one being attempted included).
    pub pending: usize,
}

/// Where hooks live.
pub trait WebhookStore: Send + Sync + 'static {
    /// Makes a hook for `role`; its secret (`whsec_…`) is answered once.
    /// `revoked` completes when the end user's token that makes it is
    /// revoked (embedded mode watches it; a cluster asks its revocations).
    fn create<'a>(
        &'a self,
        role: &'a Role,
        new: NewHook,
        revoked: Option<RevokedFuture>,
    ) -> HookFuture<'a, (HookInfo, String)>;
    /// The hooks `role` manages, newest first.
    fn list<'a>(&'a self, role: &'a Role) -> HookFuture<'a, Vec<HookInfo>>;
    /// Deletes hook `id` if `role` manages it (false: no such hook of theirs).
    fn delete<'a>(&'a self, role: &'a Role, id: &'a str) -> HookFuture<'a, bool>;
    /// Hook `id`'s deliveries on record, newest first (`None`: no such hook of `role`'s).
    fn deliveries<'a>(&'a self, role: &'a Role, id: &'a str) -> HookFuture<'a, Option<Vec<Delivery>>>;
    /// Queues `delivery` of hook `id` again (`None`: no such hook of `role`'s).
    fn redeliver<'a>(&'a self, role: &'a Role, id: &'a str, delivery: &'a str) -> HookFuture<'a, Option<Redelivery>>;
    /// Stops delivering, within `grace`.
    fn close(&self, grace: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}
