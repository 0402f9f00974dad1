//! Feeds in a cluster: a feed made on one instance serves on every other
//! (an end user's with their grants there too), and a delete on one
//! instance ends the feed's streams on the others at once and refuses
//! their reconnects everywhere.

use std::time::{Duration, Instant};

use jsonwebtoken::{EncodingKey, Header};
use letta_bridge_testkit::Sse;
use serde_json::{Value, json};

use crate::harness::{Cluster, NODE_TTL, WAIT, admin, online_on};

/// The user token secret every instance of these clusters shares.
const SECRET: &str = "cluster-test-feeds-user-token-secret-001";

/// Makes a feed on instance `i` with `token`.
async fn make(cluster: &Cluster, i: usize, token: &str, body: Value) -> Value {
    let res = cluster.at(i).post_as(token, "/feeds", &body).await;
    assert_eq!(res.status(), 201, "POST /feeds on instance {i}");
    res.json().await.unwrap()
}

/// Opens `feed`'s URL on instance `i`, with no header.
async fn open(cluster: &Cluster, i: usize, feed: &Value) -> reqwest::Response {
    let b = cluster.at(i);
    b.http.get(b.url(feed["url"].as_str().unwrap())).send().await.unwrap()
}

async fn stream(cluster: &Cluster, i: usize, feed: &Value) -> Sse {
    let res = open(cluster, i, feed).await;
    assert_eq!(res.status(), 200, "the feed opens on instance {i}");
    Sse::new(res).waiting(WAIT)
}

#[tokio::test]
async fn a_feed_made_on_one_instance_serves_its_filter_on_the_others() {
    let Some(cluster) = Cluster::start("feeds_everywhere", 3) else { return };
    let feed = make(&cluster, 1, admin(), json!({"filter": {"conversation_id": "conv-a"}})).await;
    let (mut on2, mut on3) = (stream(&cluster, 2, &feed).await, stream(&cluster, 3, &feed).await);
    let rt = cluster.runtime(1, "dev-f").await;
    online_on(&mut [&mut on2, &mut on3], "dev-f").await;
    rt.emit("update_queue", "agent-1", "conv-b", json!({"n": 1}));
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 2}));
    for sse in [&mut on2, &mut on3] {
        assert_eq!(sse.next().await.data["n"], 2, "only the feed's conversation: {}", sse.summary());
    }
    let listed: Value = cluster
        .at(3)
        .http
        .get(cluster.at(3).url("/feeds"))
        .bearer_auth(admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["id"], feed["id"], "listed on another instance: {listed}");
}

#[tokio::test]
async fn a_users_feed_made_on_one_instance_reads_only_their_grants_on_another() {
    let Some(cluster) = Cluster::start_args("feeds_users", 2, NODE_TTL, &["--user-token-secret", SECRET]) else {
        return;
    };
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let claims = json!({"sub": "alice", "aud": "letta-bridge", "exp": exp, "jti": "alice-f",
        "authorization_details": [{"type": "letta-bridge", "actions": ["read"],
            "scopes": [{"runtime": "dev-f", "agent_id": "agent-1", "conversation_id": "conv-a"}]}]});
    let alice =
        jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
    let feed = make(&cluster, 1, &alice, json!({})).await;
    assert_eq!(feed["expires_at"], exp);
    let mut on2 = stream(&cluster, 2, &feed).await;
    let rt = cluster.runtime(1, "dev-f").await;
    online_on(&mut [&mut on2], "dev-f").await;
    rt.emit("update_queue", "agent-1", "conv-b", json!({"n": 1}));
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 2}));
    assert_eq!(on2.next().await.data["n"], 2, "Bob's event is not Alice's: {}", on2.summary());
}

#[tokio::test]
async fn a_delete_on_one_instance_ends_the_feeds_streams_on_the_others_within_a_second() {
    let Some(cluster) = Cluster::start("feeds_delete", 3) else { return };
    let feed = make(&cluster, 1, admin(), json!({})).await;
    let other = make(&cluster, 2, admin(), json!({})).await;
    let within = Duration::from_secs(1);
    let mut on2 = stream(&cluster, 2, &feed).await.waiting(within);
    let mut on3 = stream(&cluster, 3, &feed).await.waiting(within);
    let mut kept = stream(&cluster, 3, &other).await.waiting(Duration::from_millis(300));
    let b = cluster.at(1);
    let deleted_at = Instant::now();
    let res = b.http.delete(b.url(&format!("/feeds/{}", feed["id"].as_str().unwrap()))).bearer_auth(admin());
    assert_eq!(res.send().await.unwrap().status(), 204);
    for sse in [&mut on2, &mut on3] {
        assert!(sse.ends().await, "the stream ended: {}", sse.summary());
    }
    assert!(deleted_at.elapsed() < within, "both ended within a second: {:?}", deleted_at.elapsed());
    assert!(!kept.ends().await, "another feed's stream goes on");
    for i in 1..=3 {
        assert_eq!(open(&cluster, i, &feed).await.status(), 401, "refused on instance {i}");
    }
}
