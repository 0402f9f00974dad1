//! Per-credential limits in a cluster: a user's rate is one budget across
//! the instances (its buckets are in Redis).

use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::harness::{Cluster, NODE_TTL};

/// The user token secret every instance of these clusters shares.
const SECRET: &str = "cluster-test-user-token-secret-000000002";

/// A token of `sub`'s (reading `conv-a` of `agent-1`).
fn token(sub: &str) -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let claims = json!({"sub": sub, "aud": "letta-bridge", "exp": exp,
        "authorization_details": [{"type": "letta-bridge", "actions": ["read"],
            "scopes": [{"agent_id": "agent-1", "conversation_id": "conv-a"}]}]});
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

async fn runtimes_as(cluster: &Cluster, i: usize, token: &str) -> reqwest::Response {
    let b = cluster.at(i);
    b.http.get(b.url("/runtimes")).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn a_user_who_spent_their_budget_on_one_instance_is_refused_by_the_other() {
    let extra = ["--user-token-secret", SECRET, "--user-rate", "1", "--user-burst", "3"];
    let Some(cluster) = Cluster::start_args("limits_shared", 2, NODE_TTL, &extra) else { return };
    let alice = token("alice");
    for _ in 0..3 {
        assert_eq!(runtimes_as(&cluster, 1, &alice).await.status(), 200);
    }
    let refused = runtimes_as(&cluster, 2, &alice).await;
    assert_eq!(refused.status(), 429, "the second instance knows what the first one counted");
    assert!(refused.headers().contains_key("retry-after"));
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:letta-bridge:rate-limited");
    assert_eq!(problem["limit"], "commands");
    assert_eq!(runtimes_as(&cluster, 2, &token("bob")).await.status(), 200, "Bob's budget is his own");
}
