//! Feeds (`POST /feeds`, `GET /feeds`, `DELETE /feeds/{id}`, `GET
//! /events?feed=`): who may make and manage them, what their URL reads
//! (the filter, the maker's grants, resumes), where it is refused, that a
//! delete ends its streams, the limits, and that no URL reaches the log.

mod make;
mod reading;

use serde_json::{Value, json};

pub use crate::helpers::*;
pub use crate::user_access::{ALL, alice, now, spawn_with_users, token};

/// Makes a feed with `token` (`POST /feeds` with `body`); expects a `201`.
pub async fn make(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.post_as(Some(token), "/feeds", body).await;
    assert_eq!(res.status(), 201, "POST /feeds");
    res.json().await.unwrap()
}

/// Opens a feed's `url` (as answered, plus `extra` query), with no header.
pub async fn open(app: &TestApp, feed: &Value, extra: &str) -> reqwest::Response {
    let url = feed["url"].as_str().expect("a url");
    app.http.get(app.url(&format!("{url}{extra}"))).send().await.unwrap()
}

/// The same, expecting a stream.
pub async fn stream(app: &TestApp, feed: &Value, extra: &str) -> Sse {
    let res = open(app, feed, extra).await;
    assert_eq!(res.status(), 200, "GET {}", res.url());
    Sse::new(res)
}

/// Every event of `conv-a`, of `agent-1` on `dev-1` (Alice's grant).
pub fn conv_a() -> Value {
    json!({"filter": {"runtime": "dev-1", "agent_id": "agent-1", "conversation_id": "conv-a"}})
}

/// The credential in a feed's `url`.
pub fn credential(feed: &Value) -> String {
    feed["url"].as_str().unwrap().strip_prefix("/events?feed=").expect("/events?feed=…").to_owned()
}
