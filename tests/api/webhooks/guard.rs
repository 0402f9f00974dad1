//! The SSRF guard, who may make hooks, what an end user's hook reads, and
//! cluster mode's `501` (tests/cluster).

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::user_access::alice;

#[tokio::test]
async fn internal_targets_are_refused_unless_the_allow_list_names_them() {
    let app = spawn_app().await;
    for url in [
        "http://127.0.0.1:9/",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest",
        "http://[::1]:9/",
        "http://localhost:9/",
    ] {
        let res = app.post_as(Some(ADMIN_TOKEN), "/webhooks", json!({"url": url, "events": ["turn.finished"]})).await;
        let problem = assert_problem(res, 422).await;
        assert!(problem["detail"].as_str().unwrap().contains("LETTA_BRIDGE_WEBHOOK_ALLOW"), "{url}: {problem}");
    }
    let allowed = spawn_app_with(|c| c.webhook_allow = vec!["127.0.0.1".into(), "::1".into()]).await;
    for url in ["http://127.0.0.1:9/", "http://[::1]:9/"] {
        let res =
            allowed.post_as(Some(ADMIN_TOKEN), "/webhooks", json!({"url": url, "events": ["turn.finished"]})).await;
        assert_eq!(res.status(), 201, "{url} is listed");
    }
    let res = allowed
        .post_as(Some(ADMIN_TOKEN), "/webhooks", json!({"url": "http://10.1.2.3/", "events": ["turn.finished"]}))
        .await;
    assert_problem(res, 422).await;
}

#[tokio::test]
async fn the_client_token_may_not_make_or_list_webhooks() {
    let app = spawn_hooks().await;
    let res = app.post("/webhooks", json!({"url": "http://127.0.0.1:9/", "events": ["turn.finished"]})).await;
    assert_problem(res, 403).await;
    assert_problem(app.get("/webhooks").await, 403).await;
    let bad =
        app.post_as(Some(ADMIN_TOKEN), "/webhooks", json!({"url": "ftp://x/", "events": ["turn.finished"]})).await;
    assert_problem(bad, 422).await;
    let none = app.post_as(Some(ADMIN_TOKEN), "/webhooks", json!({"url": "http://127.0.0.1:9/", "events": []})).await;
    assert_problem(none, 422).await;
}

#[tokio::test]
async fn a_users_hook_receives_only_what_their_grants_read_and_only_they_and_the_admin_see_it() {
    let app = users_app().await;
    let rt = app.runtime("dev-1").await;
    let mut receiver = Receiver::start("127.0.0.1", &[]).await;
    let hook = make(&app, &alice(), &receiver, json!(["update_queue"]), json!({})).await;
    rt.emit("update_queue", "agent-1", "conv-b", json!({"n": 1}));
    rt.emit("update_queue", "agent-2", "conv-a", json!({"n": 2}));
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 3}));
    let got = receiver.next().await;
    assert_eq!(got["body"]["data"]["n"], 3, "only Alice's conversation: {got}");
    assert!(receiver.quiet(Duration::from_millis(200)).await);
    let mine: Vec<Value> = app.get_as(Some(&alice()), "/webhooks").await.json().await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(listed(&app, &hook).await["owner"], "user:alice");
    let bob = crate::user_access::token(
        "bob",
        600,
        "bob-1",
        &["read"],
        json!([{"runtime": "dev-1", "agent_id": "agent-1", "conversation_id": "conv-b"}]),
    );
    let path = format!("/webhooks/{}", hook["id"].as_str().unwrap());
    assert_problem(app.http.delete(app.url(&path)).bearer_auth(&bob).send().await.unwrap(), 404).await;
    assert_eq!(app.http.delete(app.url(&path)).bearer_auth(alice()).send().await.unwrap().status(), 204);
}

#[tokio::test]
async fn a_users_hook_is_disabled_for_good_when_their_token_is_revoked() {
    let app = users_app().await;
    let rt = app.runtime("dev-1").await;
    let mut receiver = Receiver::start("127.0.0.1", &[]).await;
    let hook = make(&app, &alice(), &receiver, json!(["update_queue"]), json!({})).await;
    let revoke = json!({"jti": "alice-1", "exp": crate::user_access::now() + 600});
    assert_eq!(app.post_as(Some(ADMIN_TOKEN), "/revocations", revoke).await.status(), 204);
    until("the hook is disabled", || async { listed(&app, &hook).await["enabled"] == false }).await;
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 1}));
    assert!(receiver.quiet(Duration::from_millis(300)).await, "a revoked token's hook delivers nothing");
}

/// A bridge that takes end users' tokens and lets hooks reach the test's receiver.
async fn users_app() -> TestApp {
    spawn_app_with(|c| {
        c.user_token_secret = Some(crate::user_access::SECRET.into());
        c.webhook_allow = vec!["127.0.0.1".into()];
    })
    .await
}
