//! What end users' tokens (issue 21) may do and read, at every door: the
//! commands their grants allow, the events they see (live, replayed, after
//! a `reset`, through tickets), Letta's clients' paths, the end of a stream
//! at the token's `exp`, and revocation. Tokens are minted here, as an
//! app's backend mints them (HS256 with the bridge's user token secret).

mod commands;
mod events;
mod letta;
mod lifetime;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::*;

/// The HS256 secret the bridges of these tests verify user tokens with.
pub const SECRET: &str = "grants-test-user-token-secret-0000000001";

/// A bridge with user tokens on.
pub async fn spawn_with_users() -> TestApp {
    spawn_app_with(|c| c.user_token_secret = Some(SECRET.into())).await
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A user token for `sub`, expiring `life` seconds from now, with `jti`,
/// granting `actions` over `scopes`.
pub fn token(sub: &str, life: u64, jti: &str, actions: &[&str], scopes: Value) -> String {
    let claims = json!({"sub": sub, "aud": "letta-bridge", "exp": now() + life, "jti": jti,
        "authorization_details": [{"type": "letta-bridge", "actions": actions, "scopes": scopes}]});
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

/// Every action.
pub const ALL: &[&str] = &["read", "input", "approve", "abort", "sync"];

/// Alice's token: every action on `conv-a` of `agent-1` on `dev-1`, for ten minutes.
pub fn alice() -> String {
    token(
        "alice",
        600,
        "alice-1",
        ALL,
        json!([{"runtime": "dev-1", "agent_id": "agent-1", "conversation_id": "conv-a"}]),
    )
}

/// The runtime scope of a conversation of `agent-1`.
pub fn conv(conversation: &str) -> Value {
    json!({"agent_id": "agent-1", "conversation_id": conversation})
}

/// A new message for `conversation` of `agent-1`.
pub fn message(conversation: &str) -> Value {
    json!({"runtime": conv(conversation), "payload": {"kind": "create_message",
        "messages": [{"role": "user", "content": "hi"}]}})
}

/// GETs `/events{query}` with `token` as bearer.
pub async fn events_as(app: &TestApp, token: &str, query: &str, last_event_id: Option<&str>) -> Sse {
    let mut req = app.http.get(app.url(&format!("/events{query}"))).bearer_auth(token);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    Sse::open(req).await
}

/// A ticket minted with `token`.
pub async fn ticket(app: &TestApp, token: &str) -> String {
    let res = app.post_as(Some(token), "/tickets", json!({})).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    body["ticket"].as_str().unwrap().to_owned()
}

/// The conversations of the events `sse` read so far.
pub fn conversations(sse: &Sse) -> Vec<String> {
    sse.seen.iter().filter_map(|e| e.data["runtime"]["conversation_id"].as_str().map(str::to_owned)).collect()
}
