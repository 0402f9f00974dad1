//! Feeds in Redis (see [`RedisFeeds`]).

use std::sync::Arc;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::super::Node;
use super::super::engine::Lua;
use super::unavailable;
use crate::store::{
    FeedRecord, FeedStore, FeedStreams, FeedsFull, MAX_FEEDS, MAX_FEEDS_PER_USER, StoreError, StoreFuture, newest_first,
};

/// Feeds shared by the cluster, so that any instance serves them:
/// `feed:<id>` holds the record ([`FeedRecord`], the secret's hash only),
/// until it is deleted or, for an end user's, until their token's `exp` (a
/// TTL). The sorted set `feeds` indexes every feed by expiry, and
/// `feeds:owner:<sha-1 of the owner>` an end user's; the script that adds a
/// feed (`feeds.lua`) applies [`MAX_FEEDS`] and [`MAX_FEEDS_PER_USER`] there.
///
/// A delete is published on `feeds:deleted`, which every instance listens to: the
/// streams of the feed open there end within the publish's round trip. An
/// instance whose subscription was down looks again, when it is back, at
/// every feed it streams, and ends those deleted meanwhile.
pub(in crate::backend::cluster) struct RedisFeeds {
    node: Arc<Node>,
    streams: Arc<FeedStreams>,
}

/// What is published on the `feeds:deleted` channel.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(in crate::backend::cluster) struct FeedDeleted {
    /// The feed's id.
    pub id: String,
}

impl FeedDeleted {
    /// The message, as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("records serialise")
    }

    /// The message a publish carried; `None` when it is not one.
    pub fn from_json(json: &str) -> Option<Self> {
        serde_json::from_str(json).ok()
    }
}

impl RedisFeeds {
    /// The cluster's feeds, and this instance's listener (one of the
    /// cluster's tasks: it stops when the instance leaves).
    pub(in crate::backend::cluster) fn new(node: Arc<Node>) -> Arc<Self> {
        let this = Arc::new(Self { node: node.clone(), streams: FeedStreams::new() });
        node.tasks.spawn(this.clone().listen(node.stop.clone()));
        this
    }

    fn key(&self, id: &str) -> String {
        self.node.engine.key(&format!("feed:{id}"))
    }

    fn all(&self) -> String {
        self.node.engine.key("feeds")
    }

    fn owned_by(&self, owner: &str) -> String {
        self.node.engine.key(&format!("feeds:owner:{}", sha1_smol::Sha1::from(owner).digest()))
    }

    fn channel(&self) -> String {
        self.node.engine.key("feeds:deleted")
    }

    /// Ends the streams of every deleted feed published in the cluster, until `stop`.
    async fn listen(self: Arc<Self>, stop: CancellationToken) {
        let subscribe = async {
            loop {
                // Subscribed again on the new primary after a failover.
                let moved = self.node.engine.moved();
                match self.node.engine.pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(self.channel()).await {
                        Ok(()) => {
                            // Deleted while this instance was not listening.
                            self.end_deleted().await;
                            let mut messages = pubsub.on_message().take_until(moved);
                            while let Some(msg) = messages.next().await {
                                let Ok(payload) = msg.get_payload::<String>() else { continue };
                                if let Some(FeedDeleted { id }) = FeedDeleted::from_json(&payload) {
                                    self.streams.end(&id);
                                }
                            }
                        }
                        Err(e) => self.node.engine.failed(&e),
                    },
                    Err(e) => self.node.engine.failed(&e),
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            () = stop.cancelled() => {}
            () = subscribe => {}
        }
    }

    /// Ends the streams open here of feeds that are gone.
    async fn end_deleted(&self) {
        for id in self.streams.ids() {
            let exists = self.node.engine.run::<bool>(&redis::cmd("EXISTS").arg(self.key(&id)).to_owned()).await;
            if let Ok(false) = exists {
                self.streams.end(&id);
            }
        }
    }

    /// The records of `ids` still held (in the order given).
    async fn records(&self, ids: &[String]) -> Result<Vec<FeedRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(id)).collect();
        let json: Vec<Option<String>> =
            self.node.engine.run(&redis::cmd("MGET").arg(keys).to_owned()).await.map_err(unavailable)?;
        Ok(json.iter().flatten().filter_map(|j| FeedRecord::from_json(j)).collect())
    }
}

impl FeedStore for Arc<RedisFeeds> {
    fn create<'a>(&'a self, record: &'a FeedRecord) -> StoreFuture<'a, Result<(), FeedsFull>> {
        Box::pin(async move {
            let expires_ms = record.expires_at().map_or(0, |exp| exp.saturating_mul(1000));
            let per_owner = if record.is_users() { MAX_FEEDS_PER_USER } else { 0 };
            let kept: i64 = self
                .node
                .engine
                .script(Lua::Feeds, "create")
                .key(self.key(&record.id))
                .key(self.all())
                .key(self.owned_by(&record.owner))
                .arg(record.to_json())
                .arg(&record.id)
                .arg(expires_ms)
                .arg(MAX_FEEDS)
                .arg(per_owner)
                .run()
                .await
                .map_err(unavailable)?;
            Ok(match kept {
                1 => Err(FeedsFull::All),
                2 => Err(FeedsFull::User),
                // 3: the maker's token expired since it was checked; 0: kept.
                _ => Ok(()),
            })
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<FeedRecord>> {
        Box::pin(async move {
            let json: Option<String> =
                self.node.engine.run(&redis::cmd("GET").arg(self.key(id)).to_owned()).await.map_err(unavailable)?;
            Ok(json.as_deref().and_then(FeedRecord::from_json).filter(|r| r.id == id))
        })
    }

    fn list<'a>(&'a self, owner: Option<&'a str>) -> StoreFuture<'a, Vec<FeedRecord>> {
        Box::pin(async move {
            // The admin's feeds are in no owner's set: theirs are read from every feed.
            let index = match owner {
                Some(owner) if owner.starts_with("user:") => self.owned_by(owner),
                _ => self.all(),
            };
            let ids: Vec<String> = self
                .node
                .engine
                .run(&redis::cmd("ZRANGE").arg(index).arg(0).arg(-1).to_owned())
                .await
                .map_err(unavailable)?;
            let now = crate::store::unix_now();
            let mut feeds: Vec<FeedRecord> = self
                .records(&ids)
                .await?
                .into_iter()
                .filter(|f| !f.expired_at(now) && owner.is_none_or(|o| f.owner == o))
                .collect();
            newest_first(&mut feeds);
            Ok(feeds)
        })
    }

    fn delete<'a>(&'a self, record: &'a FeedRecord) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let message = FeedDeleted { id: record.id.clone() }.to_json();
            let mut pipe = redis::pipe();
            pipe.atomic();
            pipe.cmd("DEL").arg(self.key(&record.id));
            pipe.cmd("ZREM").arg(self.all()).arg(&record.id).ignore();
            pipe.cmd("ZREM").arg(self.owned_by(&record.owner)).arg(&record.id).ignore();
            pipe.cmd("PUBLISH").arg(self.channel()).arg(message).ignore();
            let (deleted,): (i64,) = self.node.engine.pipe(&pipe).await.map_err(unavailable)?;
            // This instance's streams end at once, whatever pub/sub does.
            self.streams.end(&record.id);
            Ok(deleted > 0)
        })
    }

    fn streams(&self) -> &Arc<FeedStreams> {
        &self.streams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_delete_reads_back_as_sent() {
        let sent = FeedDeleted { id: "fd_0123456789abcdef".into() };
        assert_eq!(FeedDeleted::from_json(&sent.to_json()), Some(sent));
        assert_eq!(FeedDeleted::from_json("{\"id\":1}"), None);
    }
}
