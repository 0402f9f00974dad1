//! Per-credential limits: the client token and each end user get their
//! own rate of requests and their own count of open streams; beyond them,
//! `429` + `Retry-After` naming the limit, counted by reason. The admin
//! token is exempt. And a connect rate per instance, which the runtime's
//! own paths get past.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;
use crate::user_access::{ALL, SECRET, token};

/// A user token for `sub` (every action everywhere).
fn user(sub: &str) -> String {
    token(sub, 600, &format!("{sub}-1"), ALL, serde_json::json!([{"agent_id": "agent-1", "conversation_id": "conv-1"}]))
}

/// The value of `letta_bridge_rate_limited_total{reason}` (0 when absent).
async fn rate_limited(app: &TestApp, reason: &str) -> u64 {
    let text = app.get_as(Some(ADMIN_TOKEN), "/metrics").await.text().await.unwrap();
    let needle = format!("letta_bridge_rate_limited_total{{reason=\"{reason}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(needle.as_str())).map_or(0, |v| v.trim().parse().unwrap())
}

/// Asserts a `429` of the limit `limit`, with `Retry-After`.
async fn assert_limited(res: reqwest::Response, limit: &str) -> Value {
    assert!(res.headers().contains_key("retry-after"), "429 without Retry-After: {:?}", res.headers());
    let problem = assert_problem(res, 429).await;
    assert_eq!(problem["type"], "urn:letta-bridge:rate-limited");
    assert_eq!(problem["limit"], limit, "{problem}");
    problem
}

#[tokio::test]
async fn requests_beyond_a_credentials_rate_get_429_with_retry_after_naming_the_limit_and_are_counted() {
    let app = spawn_app_with(|c| {
        c.client_rate = Some(1);
        c.client_burst = Some(2);
    })
    .await;
    let before = rate_limited(&app, "commands").await;
    assert_eq!(app.get("/runtimes").await.status(), 200);
    assert_ne!(app.post("/sync", serde_json::json!({})).await.status(), 429, "counted, then no runtime");
    let refused = app.get("/runtimes").await;
    assert_eq!(refused.headers()["retry-after"], "1");
    let problem = assert_limited(refused, "commands").await;
    assert!(problem["detail"].as_str().unwrap().contains("LETTA_BRIDGE_CLIENT_RATE"), "{problem}");
    assert_limited(app.post("/sync", serde_json::json!({})).await, "commands").await;
    assert_eq!(app.get_as(Some(ADMIN_TOKEN), "/runtimes").await.status(), 200, "the admin token is exempt");
    assert!(rate_limited(&app, "commands").await >= before + 2);
}

#[tokio::test]
async fn one_user_at_their_limit_does_not_limit_another_or_the_client_token() {
    let app = spawn_app_with(|c| {
        c.user_token_secret = Some(SECRET.into());
        c.user_rate = 1;
        c.user_burst = 2;
    })
    .await;
    let (alice, bob) = (user("alice"), user("bob"));
    for _ in 0..2 {
        assert_eq!(app.get_as(Some(&alice), "/runtimes").await.status(), 200);
    }
    assert_limited(app.get_as(Some(&alice), "/runtimes").await, "commands").await;
    // A new token of Alice's is still Alice: the limit is on the `sub`.
    let again =
        token("alice", 600, "alice-2", ALL, serde_json::json!([{"agent_id": "agent-1", "conversation_id": "conv-1"}]));
    assert_limited(app.get_as(Some(&again), "/runtimes").await, "commands").await;
    assert_eq!(app.get_as(Some(&bob), "/runtimes").await.status(), 200, "Bob has his own budget");
    assert_eq!(app.get("/runtimes").await.status(), 200, "the client token has no limit of its own by default");
}

#[tokio::test]
async fn streams_beyond_a_credentials_limit_get_429_and_its_place_is_freed_when_a_stream_ends() {
    let app = spawn_app_with(|c| {
        c.user_token_secret = Some(SECRET.into());
        c.client_streams = Some(1);
        c.user_streams = 1;
        c.keepalive = Duration::from_millis(50);
    })
    .await;
    let before = rate_limited(&app, "streams").await;
    let first = app.events("").await;
    assert_limited(app.get("/events").await, "streams").await;
    let alices = crate::user_access::events_as(&app, &user("alice"), "", None).await;
    assert_limited(app.get_as(Some(&user("alice")), "/events").await, "streams").await;
    let admin = app.http.get(app.url("/events")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(admin.status(), 200, "the admin token is exempt");
    assert!(rate_limited(&app, "streams").await >= before + 2);
    drop((first, alices));
    // The place is freed once the server notices the stream ended (at its next keepalive).
    tokio::time::timeout(WAIT, async {
        while app.get("/events").await.status() != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the place of a stream that ended was freed");
}

#[tokio::test]
async fn a_command_over_a_letta_socket_beyond_the_rate_is_refused_in_a_frame() {
    let app = spawn_app_with(|c| {
        c.client_rate = Some(1);
        c.client_burst = Some(1);
    })
    .await;
    let _rt = app.runtime("dev-1").await;
    // The upgrade spent the one token; the command finds none.
    let mut ws = app.app_server().await;
    let scope = serde_json::json!({"agent_id": "agent-1", "conversation_id": "conv-1"});
    ws.send(serde_json::json!({"type": "sync", "request_id": "r-1", "runtime": scope})).await;
    let refused = ws.next_matching("a refusal of r-1", |f| f["request_id"] == "r-1").await;
    assert!(refused.to_string().contains("LETTA_BRIDGE_CLIENT_RATE"), "{refused}");
}

#[tokio::test]
async fn connections_beyond_the_connect_rate_get_429_but_a_runtime_and_the_probes_still_get_in() {
    let app = spawn_app_with(|c| {
        c.connect_rate = 1;
        c.connect_burst = 1;
    })
    .await;
    let before = rate_limited(&app, "connect").await;
    let mut refused = 0;
    for _ in 0..4 {
        let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
        let res = fresh.get(app.url("/runtimes")).bearer_auth(CLIENT_TOKEN).send().await.unwrap();
        if res.status() == 429 {
            assert_eq!(res.headers()["connection"], "close");
            assert_limited(res, "connect").await;
            refused += 1;
        }
    }
    assert!(refused >= 2, "at most one token came back meanwhile: {refused} refused");
    // The probes pass too: a flood must not make the instance look dead.
    for probe in ["/healthz", "/readyz"] {
        let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
        assert_eq!(fresh.get(app.url(probe)).send().await.unwrap().status(), 200, "{probe}");
    }
    // The runtime's own paths pass on connections beyond the rate.
    let mut rt = app.runtime("dev-over-the-rate").await;
    rt.send(serde_json::json!({"type": "ping"}));
    assert_eq!(rt.next_frame().await["type"], "pong");
    assert!(rate_limited(&app, "connect").await >= before + 2);
}

#[tokio::test]
async fn the_openai_door_passes_the_same_check_and_answers_429_in_openais_shape() {
    let app = spawn_app_with(|c| {
        c.user_token_secret = Some(SECRET.into());
        c.user_rate = 1;
        c.user_burst = 1;
    })
    .await;
    let alice = user("alice");
    assert_eq!(
        app.get_as(Some(&alice), "/runtimes").await.status(),
        200,
        "a request of the REST door spends the burst"
    );
    let ask = crate::openai::ask("hi");
    let refused = crate::openai::chat(&app, &alice, &ask, &[]).send().await.unwrap();
    assert!(refused.headers().contains_key("retry-after"), "{:?}", refused.headers());
    let error = crate::openai::assert_openai_error(refused, 429, "rate_limit_exceeded").await;
    assert_eq!(error["type"], "requests", "OpenAI's type for a request-rate limit");
    assert!(error["message"].as_str().unwrap().contains("LETTA_BRIDGE_USER_RATE"), "{error}");
}

#[tokio::test]
async fn a_streamed_openai_completion_holds_a_stream_place_of_its_credential() {
    use crate::openai::{chat, runtime_with_agent};
    let app = spawn_app_with(|c| c.client_streams = Some(1)).await;
    let mut rt = runtime_with_agent(&app, "dev-a", "default").await;
    let body = serde_json::json!({"model": crate::openai::AGENT, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let streamed = chat(&app, CLIENT_TOKEN, &body, &[]).send();
    let (streamed, _frame) = tokio::join!(streamed, rt.next_frame());
    let streamed = streamed.unwrap();
    assert_eq!(streamed.status(), 200);
    assert_limited(app.get("/events").await, "streams").await;
    drop(streamed);
}
