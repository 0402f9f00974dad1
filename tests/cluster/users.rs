//! End users' tokens in a cluster: a token minted once works on every
//! instance and reads only its grants there, a user's ticket opens on
//! another instance with its grants, and a revocation on one instance is
//! honoured by all within a second.

use std::time::{Duration, Instant};

use jsonwebtoken::{EncodingKey, Header};
use letta_bridge_testkit::Sse;
use serde_json::{Value, json};

use crate::harness::{Cluster, NODE_TTL, WAIT, admin, online_on};

/// The user token secret every instance of these clusters shares.
const SECRET: &str = "cluster-test-user-token-secret-000000001";

fn start(test: &str) -> Option<Cluster> {
    Cluster::start_args(test, 3, NODE_TTL, &["--user-token-secret", SECRET])
}

/// Alice's token (every action on `conv-a` of `agent-1` on `dev-u`), with `jti`.
fn alice(jti: &str) -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let claims = json!({"sub": "alice", "aud": "letta-bridge", "exp": exp, "jti": jti,
        "authorization_details": [{"type": "letta-bridge", "actions": ["read", "input", "approve", "abort", "sync"],
            "scopes": [{"runtime": "dev-u", "agent_id": "agent-1", "conversation_id": "conv-a"}]}]});
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

fn message(conversation: &str) -> Value {
    json!({"runtime": {"agent_id": "agent-1", "conversation_id": conversation},
           "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}})
}

async fn events_as(cluster: &Cluster, i: usize, token: &str) -> Sse {
    let b = cluster.at(i);
    Sse::open(b.http.get(b.url("/events")).bearer_auth(token)).await.waiting(WAIT)
}

#[tokio::test]
async fn a_user_token_minted_once_works_on_every_instance_and_reads_only_its_grants_there() {
    let Some(cluster) = start("users_everywhere") else { return };
    let token = alice("a-1");
    let (mut on2, mut on3) = (events_as(&cluster, 2, &token).await, events_as(&cluster, 3, &token).await);
    let mut rt = cluster.runtime(1, "dev-u").await;
    online_on(&mut [&mut on2, &mut on3], "dev-u").await;
    rt.emit("update_queue", "agent-1", "conv-b", json!({"n": 1}));
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 2}));
    for sse in [&mut on2, &mut on3] {
        assert_eq!(sse.next().await.data["n"], 2, "Bob's event is not Alice's: {}", sse.summary());
    }
    assert_eq!(cluster.at(3).post_as(&token, "/input", &message("conv-b")).await.status(), 403);
    assert_eq!(cluster.at(3).post_as(&token, "/input", &message("conv-a")).await.status(), 202);
    let sent = rt.next_frame().await;
    assert_eq!(sent["runtime"]["conversation_id"], "conv-a", "forwarded from instance 3; the refused one never");
}

#[tokio::test]
async fn a_users_ticket_opens_on_another_instance_with_its_grants() {
    let Some(cluster) = start("users_ticket") else { return };
    let token = alice("a-2");
    let res = cluster.at(1).post_as(&token, "/tickets", &json!({})).await;
    assert_eq!(res.status(), 201);
    let ticket: Value = res.json().await.unwrap();
    let b = cluster.at(2);
    let url = b.url(&format!("/events?ticket={}", ticket["ticket"].as_str().unwrap()));
    let mut sse = Sse::open(b.http.get(url)).await.waiting(WAIT);
    let rt = cluster.runtime(3, "dev-u").await;
    online_on(&mut [&mut sse], "dev-u").await;
    rt.emit("update_queue", "agent-1", "conv-b", json!({"n": 1}));
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 2}));
    assert_eq!(sse.next().await.data["n"], 2, "{}", sse.summary());
}

#[tokio::test]
async fn a_revocation_on_one_instance_is_honoured_on_all_within_a_second() {
    let Some(cluster) = start("users_revocation") else { return };
    let doomed = alice("doomed");
    let within = Duration::from_secs(1);
    let mut on2 = events_as(&cluster, 2, &doomed).await.waiting(within);
    let mut on3 = events_as(&cluster, 3, &doomed).await.waiting(within);
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let revoked_at = Instant::now();
    let res = cluster.at(1).post_as(admin(), "/revocations", &json!({"jti": "doomed", "exp": exp})).await;
    assert_eq!(res.status(), 204);
    for sse in [&mut on2, &mut on3] {
        let reauth = sse.next_of("reauth").await;
        assert_eq!(reauth.data["reason"], "token_revoked");
    }
    assert!(revoked_at.elapsed() < within, "both ended within a second: {:?}", revoked_at.elapsed());
    for i in 1..=3 {
        let b = cluster.at(i);
        let res = b.http.get(b.url("/runtimes")).bearer_auth(&doomed).send().await.unwrap();
        assert_eq!(res.status(), 401, "refused on instance {i}");
    }
    let kept = alice("kept");
    let b = cluster.at(3);
    assert_eq!(b.http.get(b.url("/runtimes")).bearer_auth(&kept).send().await.unwrap().status(), 200);
}
