//! Feeds (`POST /feeds`): long-lived, read-only, revocable credentials for
//! `GET /events?feed=…`, for readers that take only a URL (n8n's SSE
//! Trigger, a browser's `EventSource`).
//!
//! A feed is `fd_<16 hex>` (its id, public) and a secret: the URL carries
//! `fd_<id hex>_<32 hex>`. A store keeps only an HMAC-SHA256 of the secret
//! ([`FeedRecord`]), so reading the store (or Redis) opens nothing. A feed
//! serves the filter it was made with, read as its maker may read: the
//! admin's reads everything within it; an end user's reads only what the
//! user's grants allow, and only until their token's `exp` (after it, or
//! once that token is revoked, the feed opens nothing). Deleting a feed ends
//! its open streams at once ([`FeedStreams`]; in a cluster, on every
//! instance).
//!
//! Bounded: at most [`MAX_FEEDS`] feeds in force, of them at most
//! [`MAX_FEEDS_PER_USER`] of one end user; beyond, a new feed is refused
//! (nothing is evicted: a URL that works must keep working until deleted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use utoipa::ToSchema;

use super::tickets::TicketUser;
use super::{StoreFuture, unix_now};
use crate::protocol::access::Role;

/// Most feeds in force at once (the admin's and every user's).
pub const MAX_FEEDS: usize = 1_000;

/// Most feeds in force of one end user (by `sub`).
pub const MAX_FEEDS_PER_USER: usize = 10;

/// How a feed (its id, and the credential the URL carries) starts.
pub const FEED_PREFIX: &str = "fd_";

/// Hex digits of a feed's id after [`FEED_PREFIX`] (64 random bits).
const ID_HEX: usize = 16;

/// Hex digits of a feed's secret (122 random bits: a v4 UUID's).
const SECRET_HEX: usize = 32;

/// The HMAC key of the stored hash: a fixed label (the secret is random;
/// the hash only keeps it out of the store).
const HASH_KEY: &[u8] = b"letta-bridge feed secret v1";

/// Which events a feed serves: `GET /events`' own filters, fixed when the
/// feed is made. Absent fields filter nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedFilter {
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
    /// Only these event types (e.g. `["turn_finished"]`): at most 64, of at
    /// most 128 characters each, no commas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
}

/// One feed, as a store keeps it (a shared store: as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedRecord {
    /// `fd_<16 hex>`.
    pub id: String,
    /// HMAC-SHA256 of the secret, base64url; never the secret.
    pub hash: String,
    /// Who made it ([`Role::principal`]): `admin` or `user:<sub>`.
    pub owner: String,
    /// What the maker called it.
    pub name: Option<String>,
    /// The events it serves.
    pub filter: FeedFilter,
    /// When it was made, in seconds since the Unix epoch.
    pub created_at: u64,
    /// The end user who made it: their grants, their token's `exp` and `jti`.
    pub user: Option<TicketUser>,
}

impl FeedRecord {
    /// A new feed of `role` for `filter`, and the credential its URL
    /// carries (`fd_<id>_<secret>`: shown once, never kept).
    pub fn new(role: &Role, filter: FeedFilter, name: Option<String>) -> (Self, String) {
        let id = format!("{FEED_PREFIX}{}", &uuid::Uuid::new_v4().simple().to_string()[..ID_HEX]);
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let credential = format!("{id}_{secret}");
        let record = Self {
            id,
            hash: hash(&secret),
            owner: role.principal().into_owned(),
            name,
            filter,
            created_at: unix_now(),
            user: role.user().map(|u| TicketUser::of(u)),
        };
        (record, credential)
    }

    /// When it stops opening streams (its maker's token's `exp`); `None`:
    /// when it is deleted.
    pub fn expires_at(&self) -> Option<u64> {
        self.user.as_ref().map(TicketUser::exp)
    }

    /// True once it opens nothing by itself (its maker's token expired).
    pub fn expired_at(&self, unix: u64) -> bool {
        self.expires_at().is_some_and(|exp| exp <= unix)
    }

    /// True when `secret` is this feed's (compared in constant time).
    pub fn verifies(&self, secret: &str) -> bool {
        hash(secret).as_bytes().ct_eq(self.hash.as_bytes()).into()
    }

    /// Whose streams it opens: the client role (reads everything) for the
    /// admin's feeds, the end user's for theirs; `None` when the user's
    /// record does not parse (the feed then opens nothing).
    pub fn role(&self) -> Option<Role> {
        match &self.user {
            None => Some(Role::Client),
            Some(user) => user.user().map(|u| Role::User(Arc::new(u))),
        }
    }

    /// True when an end user made it (their feeds count against [`MAX_FEEDS_PER_USER`]).
    pub fn is_users(&self) -> bool {
        self.user.is_some()
    }

    /// The record, as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("records serialise")
    }

    /// The record a shared store held; `None` when it is not one.
    pub fn from_json(json: &str) -> Option<Self> {
        serde_json::from_str(json).ok()
    }
}

/// The stored form of a feed's secret.
fn hash(secret: &str) -> String {
    jsonwebtoken::crypto::sign(secret.as_bytes(), &EncodingKey::from_secret(HASH_KEY), Algorithm::HS256)
        .expect("HMAC never fails")
}

/// The id and secret of a credential `fd_<16 hex>_<32 hex>`; `None` when
/// it is not one.
pub fn parse_credential(credential: &str) -> Option<(&str, &str)> {
    let (id, secret) = credential.split_at_checked(FEED_PREFIX.len() + ID_HEX)?;
    let secret = secret.strip_prefix('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (id.starts_with(FEED_PREFIX) && hex(&id[FEED_PREFIX.len()..], ID_HEX) && hex(secret, SECRET_HEX))
        .then_some((id, secret))
}

/// True when `id` has the shape of a feed's id (`fd_<16 hex>`).
pub fn is_feed_id(id: &str) -> bool {
    id.strip_prefix(FEED_PREFIX).is_some_and(|h| h.len() == ID_HEX && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Why a feed was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FeedsFull {
    /// [`MAX_FEEDS`] are in force.
    #[error("{MAX_FEEDS} feeds exist, the most this bridge keeps; delete one first (DELETE /feeds/{{id}})")]
    All,
    /// [`MAX_FEEDS_PER_USER`] of this user are in force.
    #[error(
        "this user has {MAX_FEEDS_PER_USER} feeds, the most one user may have; delete one first (DELETE /feeds/{{id}})"
    )]
    User,
}

/// Where feeds are kept, opened and deleted.
pub trait FeedStore: Send + Sync + 'static {
    /// Keeps `record`, unless [`MAX_FEEDS`] (or, for an end user's,
    /// [`MAX_FEEDS_PER_USER`] of theirs) are in force.
    fn create<'a>(&'a self, record: &'a FeedRecord) -> StoreFuture<'a, Result<(), FeedsFull>>;
    /// The feed `id`, while in force.
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<FeedRecord>>;
    /// The feeds in force that `owner` made (`None`: everyone's), newest first.
    fn list<'a>(&'a self, owner: Option<&'a str>) -> StoreFuture<'a, Vec<FeedRecord>>;
    /// Deletes `record`'s feed and ends its open streams (on every
    /// instance); `false` when it was gone already.
    fn delete<'a>(&'a self, record: &'a FeedRecord) -> StoreFuture<'a, bool>;
    /// This instance's open feed streams.
    fn streams(&self) -> &Arc<FeedStreams>;

    /// Opens a stream with `credential`; `None` when it is no feed's, its
    /// secret is wrong, or its maker's token expired.
    fn open<'a>(&'a self, credential: &'a str) -> StoreFuture<'a, Option<FeedHold>> {
        Box::pin(async move {
            let Some((id, secret)) = parse_credential(credential) else { return Ok(None) };
            // Watched before the look: a delete after it still ends this stream.
            let watch = self.streams().watch(id);
            let Some(record) = self.get(id).await? else { return Ok(None) };
            if !record.verifies(secret) || record.expired_at(unix_now()) {
                return Ok(None);
            }
            let Some(role) = record.role() else { return Ok(None) };
            Ok(Some(FeedHold { role, filter: record.filter, watch }))
        })
    }
}

/// A stream's hold on its feed: whose stream it is, its filter, and its end
/// when the feed is deleted.
pub struct FeedHold {
    role: Role,
    filter: FeedFilter,
    watch: FeedWatch,
}

impl FeedHold {
    /// Whose stream this is (the client role for the admin's feeds).
    pub fn role(&self) -> Role {
        self.role.clone()
    }

    /// The events the feed serves.
    pub fn filter(&self) -> &FeedFilter {
        &self.filter
    }

    /// Resolves once the feed is deleted.
    pub fn deleted(&self) -> WaitForCancellationFutureOwned {
        CancellationToken::clone(&self.watch.token).cancelled_owned()
    }
}

/// The open streams of this instance's feeds, by feed id: a delete ends
/// them. An entry lives while a stream of its feed is open.
#[derive(Default)]
pub struct FeedStreams {
    /// Short map operations only; never held across `.await`.
    open: Mutex<OpenStreams>,
}

/// Feed id → (its streams' end, how many are open).
type OpenStreams = HashMap<Box<str>, (Arc<CancellationToken>, usize)>;

/// One stream's place in [`FeedStreams`] (left when dropped).
struct FeedWatch {
    streams: Arc<FeedStreams>,
    id: Box<str>,
    token: Arc<CancellationToken>,
}

impl FeedStreams {
    /// None open yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A stream of feed `id` opens.
    fn watch(self: &Arc<Self>, id: &str) -> FeedWatch {
        let mut open = self.lock();
        let (token, count) = open.entry(id.into()).or_insert_with(|| (Arc::new(CancellationToken::new()), 0));
        *count += 1;
        FeedWatch { streams: self.clone(), id: id.into(), token: token.clone() }
    }

    /// Feed `id` was deleted: its open streams end.
    pub fn end(&self, id: &str) {
        if let Some((token, _)) = self.lock().remove(id) {
            token.cancel();
        }
    }

    /// The feeds with a stream open here.
    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().map(|k| k.to_string()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OpenStreams> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FeedWatch {
    fn drop(&mut self) {
        let mut open = self.streams.lock();
        // Only this stream's entry: after a delete, a new one may hold the id.
        if let Some((token, count)) = open.get_mut(&self.id)
            && Arc::ptr_eq(token, &self.token)
        {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.id);
            }
        }
    }
}

/// Feeds in this process's memory.
#[derive(Default)]
pub struct MemoryFeeds {
    /// Short map operations only; never held across `.await`.
    feeds: Mutex<HashMap<String, FeedRecord>>,
    streams: Arc<FeedStreams>,
}

impl MemoryFeeds {
    /// None yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Keeps `record` at `now` (Unix seconds), within the limits.
    pub fn insert_at(&self, record: &FeedRecord, now: u64) -> Result<(), FeedsFull> {
        let mut feeds = self.lock();
        feeds.retain(|_, f| !f.expired_at(now));
        if feeds.len() >= MAX_FEEDS {
            return Err(FeedsFull::All);
        }
        if record.is_users() && feeds.values().filter(|f| f.owner == record.owner).count() >= MAX_FEEDS_PER_USER {
            return Err(FeedsFull::User);
        }
        feeds.insert(record.id.clone(), record.clone());
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, FeedRecord>> {
        self.feeds.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FeedStore for Arc<MemoryFeeds> {
    fn create<'a>(&'a self, record: &'a FeedRecord) -> StoreFuture<'a, Result<(), FeedsFull>> {
        let done = self.insert_at(record, unix_now());
        Box::pin(async move { Ok(done) })
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<FeedRecord>> {
        let now = unix_now();
        let record = self.lock().get(id).filter(|f| !f.expired_at(now)).cloned();
        Box::pin(async move { Ok(record) })
    }

    fn list<'a>(&'a self, owner: Option<&'a str>) -> StoreFuture<'a, Vec<FeedRecord>> {
        let now = unix_now();
        let mut feeds: Vec<FeedRecord> = self
            .lock()
            .values()
            .filter(|f| !f.expired_at(now) && owner.is_none_or(|o| f.owner == o))
            .cloned()
            .collect();
        newest_first(&mut feeds);
        Box::pin(async move { Ok(feeds) })
    }

    fn delete<'a>(&'a self, record: &'a FeedRecord) -> StoreFuture<'a, bool> {
        let existed = self.lock().remove(&record.id).is_some();
        self.streams.end(&record.id);
        Box::pin(async move { Ok(existed) })
    }

    fn streams(&self) -> &Arc<FeedStreams> {
        &self.streams
    }
}

/// Sorts `feeds` newest first (ties by id, for a stable order).
pub fn newest_first(feeds: &mut [FeedRecord]) {
    feeds.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
}

#[cfg(test)]
mod tests;
