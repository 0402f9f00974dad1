//! The rules of feeds in one process: credentials, limits, deletion.

use futures_util::FutureExt;
use serde_json::json;

use super::*;
use crate::protocol::access::UserPrincipal;
use crate::protocol::access::grants::Grants;

fn alice(exp: u64) -> Role {
    let claim = json!([{"type": "letta-bridge", "actions": ["read"],
        "scopes": [{"runtime": "dev-1", "agent_id": "a", "conversation_id": "c"}]}]);
    let grants = Grants::from_claim(Some(&claim)).unwrap();
    Role::User(Arc::new(UserPrincipal { sub: "alice".into(), exp, jti: Some("j-1".into()), grants }))
}

fn filter() -> FeedFilter {
    FeedFilter { runtime: Some("dev-1".into()), types: Some(vec!["turn_finished".into()]), ..FeedFilter::default() }
}

#[tokio::test]
async fn a_feeds_credential_opens_it_and_its_record_keeps_only_a_hash() {
    let feeds = MemoryFeeds::new();
    let (record, credential) = FeedRecord::new(&Role::Admin, filter(), Some("n8n".into()));
    assert!(is_feed_id(&record.id) && credential.starts_with(&format!("{}_", record.id)));
    let secret = &credential[record.id.len() + 1..];
    assert!(!record.to_json().contains(secret), "the secret is never kept");
    feeds.create(&record).await.unwrap().unwrap();
    let hold = feeds.open(&credential).await.unwrap().expect("opens");
    assert_eq!(hold.role(), Role::Client, "the admin's feed reads as the client does, within its filter");
    assert_eq!(hold.filter(), &filter());
}

#[tokio::test]
async fn a_wrong_secret_or_a_malformed_credential_opens_nothing() {
    let feeds = MemoryFeeds::new();
    let (record, credential) = FeedRecord::new(&Role::Admin, FeedFilter::default(), None);
    feeds.create(&record).await.unwrap().unwrap();
    let wrong = format!("{}_{}", record.id, "0".repeat(32));
    for bad in [wrong.as_str(), &record.id, "fd_", "", &credential[..credential.len() - 1], &format!("{credential}0")] {
        assert!(feeds.open(bad).await.unwrap().is_none(), "{bad:?} opens nothing");
    }
    assert!(parse_credential(&credential.replace("fd_", "tk_")).is_none());
    assert!(parse_credential(&credential.to_uppercase().replace("FD_", "fd_")).is_some(), "hex of either case");
}

#[tokio::test]
async fn deleting_a_feed_ends_its_open_streams_and_it_opens_nothing_after() {
    let feeds = MemoryFeeds::new();
    let (record, credential) = FeedRecord::new(&Role::Admin, FeedFilter::default(), None);
    let (other, other_credential) = FeedRecord::new(&Role::Admin, FeedFilter::default(), None);
    feeds.create(&record).await.unwrap().unwrap();
    feeds.create(&other).await.unwrap().unwrap();
    let (first, second) =
        (feeds.open(&credential).await.unwrap().unwrap(), feeds.open(&credential).await.unwrap().unwrap());
    let kept = feeds.open(&other_credential).await.unwrap().unwrap();
    let (mut first_end, mut kept_end) = (Box::pin(first.deleted()), Box::pin(kept.deleted()));
    assert!((&mut first_end).now_or_never().is_none());
    assert!(feeds.delete(&record).await.unwrap());
    assert!(first_end.now_or_never().is_some() && second.deleted().now_or_never().is_some(), "both streams end");
    assert!((&mut kept_end).now_or_never().is_none(), "another feed's stream goes on");
    assert!(feeds.open(&credential).await.unwrap().is_none(), "a reconnect is refused");
    assert!(!feeds.delete(&record).await.unwrap(), "gone already");
    drop((first, second, kept));
    assert!(feeds.streams().ids().is_empty(), "no entry outlives its streams");
}

#[tokio::test]
async fn a_users_feed_opens_as_that_user_until_the_tokens_exp() {
    let feeds = MemoryFeeds::new();
    let now = unix_now();
    let (record, credential) = FeedRecord::new(&alice(now + 600), FeedFilter::default(), None);
    assert_eq!((record.owner.as_str(), record.expires_at()), ("user:alice", Some(now + 600)));
    feeds.create(&record).await.unwrap().unwrap();
    assert_eq!(feeds.open(&credential).await.unwrap().unwrap().role(), alice(now + 600), "grants and all");
    let (expired, credential) = FeedRecord::new(&alice(now - 1), FeedFilter::default(), None);
    feeds.lock().insert(expired.id.clone(), expired);
    assert!(feeds.open(&credential).await.unwrap().is_none(), "not after the token's exp");
    assert_eq!(feeds.list(Some("user:alice")).await.unwrap(), [record], "an expired feed is not listed");
}

#[test]
fn the_store_refuses_feeds_beyond_its_limits_and_forgets_none() {
    let feeds = MemoryFeeds::new();
    let now = unix_now();
    for _ in 0..MAX_FEEDS_PER_USER {
        feeds.insert_at(&FeedRecord::new(&alice(now + 600), FeedFilter::default(), None).0, now).unwrap();
    }
    let one_more = FeedRecord::new(&alice(now + 600), FeedFilter::default(), None).0;
    assert_eq!(feeds.insert_at(&one_more, now), Err(FeedsFull::User));
    for _ in MAX_FEEDS_PER_USER..MAX_FEEDS {
        feeds.insert_at(&FeedRecord::new(&Role::Admin, FeedFilter::default(), None).0, now).unwrap();
    }
    let admins = FeedRecord::new(&Role::Admin, FeedFilter::default(), None).0;
    assert_eq!(feeds.insert_at(&admins, now), Err(FeedsFull::All));
    assert_eq!(feeds.lock().len(), MAX_FEEDS, "none was evicted");
    feeds.insert_at(&admins, now + 600).expect("room once the user's feeds expired with the token");
}

#[test]
fn a_shared_stores_record_reads_back_as_written() {
    let (record, _) = FeedRecord::new(&alice(unix_now() + 60), filter(), Some("zap".into()));
    assert_eq!(FeedRecord::from_json(&record.to_json()), Some(record));
    assert_eq!(FeedRecord::from_json("{\"id\":1}"), None);
}
