//! Webhooks (`POST /webhooks` and the rest): deliveries to a real receiver
//! that verifies every signature with the `standardwebhooks` package from
//! PyPI (receiver.py, run with .ci/cache/venv's Python), retries after
//! `500`s, `410` disabling a hook, order kept, redelivery, the SSRF guard,
//! and who may make hooks and what they read. The retry schedule is made
//! short through the config.

mod delivery;
mod guard;
mod receiver;
mod traces;

use std::time::Duration;

use serde_json::{Value, json};

pub use crate::helpers::*;
pub use receiver::Receiver;

/// How long a test waits for a delivery.
pub const WAIT: Duration = Duration::from_secs(10);

/// A bridge whose hooks may reach loopback receivers and retry at once.
pub async fn spawn_hooks() -> TestApp {
    spawn_app_with(|c| {
        c.webhook_allow = vec!["127.0.0.1".into(), "::1".into()];
        c.webhook_schedule = Some(vec![Duration::from_millis(20); 3]);
    })
    .await
}

/// Makes a hook with `token`; expects `201`, and has `receiver` trust its secret.
pub async fn make(app: &TestApp, token: &str, receiver: &Receiver, events: Value, filter: Value) -> Value {
    let res =
        app.post_as(Some(token), "/webhooks", json!({"url": receiver.url, "events": events, "filter": filter})).await;
    assert_eq!(res.status(), 201, "POST /webhooks");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let hook: Value = res.json().await.unwrap();
    assert_eq!(location, format!("/webhooks/{}", hook["id"].as_str().unwrap()), "Location names what DELETE takes");
    receiver.trust(&hook);
    hook
}

/// `GET /webhooks/{id}/deliveries` as the admin.
pub async fn deliveries(app: &TestApp, hook: &Value) -> Vec<Value> {
    let res = app.get_as(Some(ADMIN_TOKEN), &format!("/webhooks/{}/deliveries", hook["id"].as_str().unwrap())).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// The hook as `GET /webhooks` lists it.
pub async fn listed(app: &TestApp, hook: &Value) -> Value {
    let res = app.get_as(Some(ADMIN_TOKEN), "/webhooks").await;
    let hooks: Vec<Value> = res.json().await.unwrap();
    hooks.into_iter().find(|h| h["id"] == hook["id"]).expect("listed")
}

/// Polls `check` (of `GET` answers) until it holds, within [`WAIT`].
pub async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
