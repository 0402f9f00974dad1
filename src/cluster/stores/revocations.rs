//! Revoked end-user tokens in Redis (see [`RedisRevocations`]).

use std::sync::Arc;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::super::Node;
use super::unavailable;
use crate::store::{MemoryRevocations, RevocationStore, RevokedFuture, StoreFuture, unix_now};

/// Revocations shared by the cluster: `revoked:<sha-1 of the jti>` exists
/// until the token's `exp` (a TTL of its remaining life), so every instance
/// refuses the token, however it learns of it; and each revocation is
/// published on `revocations`, which every instance listens to and copies
/// into its memory ([`MemoryRevocations`]), where the streams opened with
/// the token wait for it: they end within the publish's round trip.
///
/// A token is refused when this instance's copy or Redis says it is
/// revoked (one `EXISTS` per request of a user token with a `jti`). A
/// stream on an instance whose subscription was down at the moment of the
/// publish ends at its token's `exp` instead. Memory is bounded as in one
/// process ([`crate::store::MAX_REVOCATIONS`]); Redis holds each
/// revocation no longer than its token lives.
pub(in crate::backend::cluster) struct RedisRevocations {
    node: Arc<Node>,
    local: Arc<MemoryRevocations>,
}

/// What is published on the `revocations` channel.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(in crate::backend::cluster) struct Revoked {
    /// The token's `jti`.
    pub jti: String,
    /// Its `exp`, in seconds since the Unix epoch.
    pub exp: u64,
}

impl Revoked {
    /// The message, as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("records serialise")
    }

    /// The message a publish carried; `None` when it is not one.
    pub fn from_json(json: &str) -> Option<Self> {
        serde_json::from_str(json).ok()
    }
}

impl RedisRevocations {
    /// The cluster's revocations, and this instance's listener (one of the
    /// cluster's tasks: it stops when the instance leaves).
    pub(in crate::backend::cluster) fn new(node: Arc<Node>) -> Arc<Self> {
        let local = MemoryRevocations::new();
        node.tasks.spawn(listen(node.clone(), local.clone(), node.stop.clone()));
        Arc::new(Self { node, local })
    }

    fn key(&self, jti: &str) -> String {
        self.node.engine.key(&format!("revoked:{}", sha1_smol::Sha1::from(jti).digest()))
    }
}

/// Copies every revocation published in the cluster into `local` until `stop`.
async fn listen(node: Arc<Node>, local: Arc<MemoryRevocations>, stop: CancellationToken) {
    let channel = node.engine.key("revocations");
    let subscribe = async {
        loop {
            // Subscribed again on the new primary after a failover.
            let moved = node.engine.moved();
            match node.engine.pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        let mut messages = pubsub.on_message().take_until(moved);
                        while let Some(msg) = messages.next().await {
                            let Ok(payload) = msg.get_payload::<String>() else { continue };
                            let Some(Revoked { jti, exp }) = Revoked::from_json(&payload) else { continue };
                            if let Err(e) = local.insert_at(&jti, exp, unix_now()) {
                                tracing::warn!(error = %e, "a revocation of the cluster could not be kept in memory");
                            }
                        }
                    }
                    Err(e) => node.engine.failed(&e),
                },
                Err(e) => node.engine.failed(&e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        () = stop.cancelled() => {}
        () = subscribe => {}
    }
}

impl RevocationStore for Arc<RedisRevocations> {
    fn revoke<'a>(&'a self, jti: &'a str, exp: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let now = unix_now();
            if exp <= now {
                return Ok(());
            }
            self.local.insert_at(jti, exp, now)?;
            let ttl_ms = (exp - now) * 1000;
            let message = Revoked { jti: jti.to_owned(), exp }.to_json();
            let mut pipe = redis::pipe();
            pipe.cmd("SET").arg(self.key(jti)).arg(exp).arg("PX").arg(ttl_ms).ignore();
            pipe.cmd("PUBLISH").arg(self.node.engine.key("revocations")).arg(message).ignore();
            let _: () = self.node.engine.pipe(&pipe).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn is_revoked<'a>(&'a self, jti: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if self.local.contains_at(jti, unix_now()) {
                return Ok(true);
            }
            let exists: bool =
                self.node.engine.run(&redis::cmd("EXISTS").arg(self.key(jti)).to_owned()).await.map_err(unavailable)?;
            Ok(exists)
        })
    }

    fn revoked(&self, jti: &str) -> RevokedFuture {
        self.local.watch(jti)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_revocation_reads_back_as_sent() {
        let sent = Revoked { jti: "j-1".into(), exp: 1_767_225_600 };
        assert_eq!(Revoked::from_json(&sent.to_json()), Some(sent));
        assert_eq!(Revoked::from_json("{\"jti\":1}"), None);
    }
}
