//! What a feed's URL reads — its filter, its maker's grants, resumes — how
//! its streams end (deleted, the maker's token expired or revoked), where
//! it is refused, and that it never reaches the log.

use std::time::Duration;

use letta_bridge_testkit::bridge::BridgeProcess;
use serde_json::json;

use super::*;

#[tokio::test]
async fn a_feed_url_streams_only_its_filters_events_with_no_header() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-1").await;
    let body = json!({"filter": {"conversation_id": "conv-a", "types": ["update_queue"]}});
    let feed = make(&app, ADMIN_TOKEN, body).await;
    let mut sse = stream(&app, &feed, "").await;
    let narrowed = stream(&app, &feed, "&conversation_id=conv-b").await;
    let mut client = app.events("").await;
    rt.emit("update_queue", "agent-1", "conv-b", json!({"n": 1}));
    rt.emit("turn_finished", "agent-1", "conv-a", json!({"n": 2}));
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 3}));
    while client.next().await.data["n"] != 3 {}
    let first = sse.next().await;
    assert_eq!((first.event.as_str(), &first.data["n"]), ("update_queue", &json!(3)), "{}", sse.summary());
    let mut narrowed = narrowed.waiting(Duration::from_millis(300));
    assert!(
        !narrowed.ends().await && narrowed.seen.is_empty(),
        "the query narrows a feed, never widens it: {}",
        narrowed.summary()
    );
}

#[tokio::test]
async fn a_users_feed_never_reads_beyond_the_users_grants() {
    let app = spawn_with_users().await;
    let rt = app.runtime("dev-1").await;
    let everything = make(&app, &alice(), json!({})).await;
    let at_bob = make(&app, &alice(), json!({"filter": {"conversation_id": "conv-b"}})).await;
    let mut sse = stream(&app, &everything, "").await;
    let at_bob = stream(&app, &at_bob, "").await;
    let widened = stream(&app, &everything, "&conversation_id=conv-b").await;
    let mut client = app.events("").await;
    rt.emit("update_queue", "agent-1", "conv-b", json!({"n": 1}));
    rt.send(json!({"type": "update_device_status", "device_status": {}, "n": 2}));
    rt.emit("update_queue", "agent-2", "conv-a", json!({"n": 3}));
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 4}));
    while client.next().await.data["n"] != 4 {}
    let first = sse.next_matching("an event with n", |e| e.data.get("n").is_some()).await;
    assert_eq!(first.data["n"], 4, "only Alice's conversation: {}", sse.summary());
    for other in [at_bob, widened] {
        let mut other = other.waiting(Duration::from_millis(300));
        assert!(!other.ends().await, "open");
        assert!(other.seen.iter().all(|e| e.data.get("n").is_none()), "nothing of Bob's: {}", other.summary());
    }
}

#[tokio::test]
async fn deleting_a_feed_ends_its_open_streams_at_once_and_refuses_reconnects() {
    let app = spawn_app().await;
    let feed = make(&app, ADMIN_TOKEN, json!({})).await;
    let other = make(&app, ADMIN_TOKEN, json!({})).await;
    let (mut first, mut second) = (stream(&app, &feed, "").await, stream(&app, &feed, "").await);
    let mut kept = stream(&app, &other, "").await.waiting(Duration::from_millis(300));
    let res = app.http.delete(app.url(&format!("/feeds/{}", feed["id"].as_str().unwrap()))).bearer_auth(ADMIN_TOKEN);
    assert_eq!(res.send().await.unwrap().status(), 204);
    assert!(first.ends().await && second.ends().await, "both streams end");
    assert!(!kept.ends().await, "another feed's stream goes on");
    let refused = assert_problem(open(&app, &feed, "").await, 401).await;
    assert!(refused["detail"].as_str().unwrap().contains("deleted"), "{refused}");
}

#[tokio::test]
async fn a_users_feed_ends_with_their_token_expiring_or_revoked_and_opens_nothing_after() {
    let app = spawn_with_users().await;
    let rt = app.runtime("dev-1").await;
    let grant = json!([{"runtime": "dev-1", "agent_id": "agent-1", "conversation_id": "conv-a"}]);
    let brief = make(&app, &token("alice", 2, "brief", ALL, grant.clone()), json!({})).await;
    let doomed = make(&app, &token("alice", 600, "doomed", ALL, grant), json!({})).await;
    let mut ends = stream(&app, &brief, "").await.waiting(Duration::from_secs(5));
    let mut revoked = stream(&app, &doomed, "").await;
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 1}));
    assert_eq!(ends.next_of("update_queue").await.data["n"], 1);
    assert_eq!(ends.next_of("reauth").await.data["reason"], "token_expired");
    assert!(ends.ends().await);
    assert_eq!(open(&app, &brief, "").await.status(), 401, "not after the token's exp");
    let res = app.post_as(Some(ADMIN_TOKEN), "/revocations", json!({"jti": "doomed", "exp": now() + 600})).await;
    assert_eq!(res.status(), 204);
    assert_eq!(revoked.next_of("reauth").await.data["reason"], "token_revoked");
    assert!(revoked.ends().await);
    assert_eq!(open(&app, &doomed, "").await.status(), 401, "not after the token's revocation");
    let claims = json!({"sub": "alice", "aud": "letta-bridge", "exp": now() - 5, "jti": "late",
        "authorization_details": [{"type": "letta-bridge", "actions": ["read"], "scopes": [{"agent_id": "a", "conversation_id": "c"}]}]});
    let key = jsonwebtoken::EncodingKey::from_secret(crate::user_access::SECRET.as_bytes());
    let late = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
    assert_eq!(app.get_as(Some(&late), "/runtimes").await.status(), 200, "taken within the clock skew");
    assert_problem(app.post_as(Some(&late), "/feeds", json!({})).await, 401).await;
}

#[tokio::test]
async fn a_feed_resumes_after_last_event_id_in_the_header_or_the_query() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-1").await;
    let feed = make(&app, ADMIN_TOKEN, json!({"filter": {"types": ["update_queue"]}})).await;
    let mut sse = stream(&app, &feed, "").await;
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 1}));
    let cursor = sse.next().await.id;
    drop(sse);
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 2}));
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 3}));
    let mut by_query = stream(&app, &feed, &format!("&last_event_id={cursor}")).await;
    let url = app.url(feed["url"].as_str().unwrap());
    let mut by_header = Sse::open(app.http.get(url).header("Last-Event-ID", &cursor)).await;
    for sse in [&mut by_query, &mut by_header] {
        assert_eq!((sse.next().await.data["n"].clone(), sse.next().await.data["n"].clone()), (json!(2), json!(3)));
    }
}

#[tokio::test]
async fn a_feed_is_refused_on_every_other_endpoint_and_socket() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-1").await;
    let feed = make(&app, ADMIN_TOKEN, json!({})).await;
    let secret = credential(&feed);
    let input = scoped(json!({"payload": {"kind": "create_message", "messages": []}}));
    let as_bearer = [
        app.get_as(Some(&secret), "/runtimes").await,
        app.get_as(Some(&secret), "/status").await,
        app.get_as(Some(&secret), "/feeds").await,
        app.get_as(Some(&secret), "/events").await,
        app.get_as(Some(&secret), "/v1/environments").await,
        app.post_as(Some(&secret), "/input", input.clone()).await,
        app.post_as(Some(&secret), "/tickets", json!({})).await,
        app.post_as(Some(&secret), "/feeds", json!({})).await,
        app.get_as(Some(&secret), "/app-server/ws").await,
    ];
    for res in as_bearer {
        let url = res.url().clone();
        let problem = assert_problem(res, 401).await;
        assert!(problem["detail"].as_str().unwrap().contains("only `GET /events?feed="), "{url}: {problem}");
    }
    for path in [
        format!("/runtimes?feed={secret}"),
        format!("/status?feed={secret}"),
        format!("/v1/environments/dev-1/status/ws?token={secret}"),
        format!("/v1/environments/dev-1/status/ws?ticket={secret}"),
        format!("/v1/environments/dev-1/status/ws?feed={secret}"),
    ] {
        assert_problem(app.http.get(app.url(&path)).send().await.unwrap(), 401).await;
    }
    let res = app.http.post(app.url(&format!("/input?feed={secret}"))).json(&input).send().await.unwrap();
    assert_problem(res, 401).await;
    assert_eq!(open(&app, &feed, "").await.status(), 200, "and it still opens its stream");
}

#[tokio::test]
async fn no_feed_reaches_the_log() {
    let dir = std::env::temp_dir().join(format!("letta-bridge-feeds-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let env = [("RUST_LOG", "letta_bridge=trace,info")];
    let bridge = BridgeProcess::start_with_env(env!("CARGO_BIN_EXE_letta-bridge"), dir.join("bridge.log"), &[], &env);
    let admin = letta_bridge_testkit::bridge::ADMIN_TOKEN;
    let res = bridge.http.post(bridge.url("/feeds")).bearer_auth(admin).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let feed: Value = res.json().await.unwrap();
    let secret = credential(&feed);
    let mut stream = bridge.http.get(bridge.url(feed["url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    tokio::time::timeout(WAIT, stream.chunk()).await.expect("the stream's first bytes").unwrap();
    // The last character changed (to `0`, or to `1` when it was `0`: the same
    // secret would open the stream, one time in sixteen).
    let last = if secret.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &secret[..secret.len() - 1]);
    let refused = bridge.http.get(bridge.url(&format!("/events?feed={wrong}"))).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(bridge.http.get(bridge.url("/runtimes")).bearer_auth(&secret).send().await.unwrap().status(), 401);
    let id = feed["id"].as_str().unwrap();
    let deleted = bridge.http.delete(bridge.url(&format!("/feeds/{id}"))).bearer_auth(admin).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let deadline = tokio::time::Instant::now() + WAIT;
    let log = loop {
        let log = bridge.log();
        if log.contains("event stream closed") || tokio::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        log.contains("event stream closed") && log.contains(id),
        "the feed's id is logged, as a ticket is not: {log}"
    );
    let hidden = &secret[id.len() + 1..];
    for (what, text) in [("secret", hidden), ("wrong secret", &wrong[id.len() + 1..])] {
        assert!(!log.contains(text), "the {what} never reaches the log: {log}");
    }
    drop(bridge);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_feed_url_with_event_names_false_sends_every_event_unnamed_for_onmessage_readers() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-1").await;
    let feed = make(&app, ADMIN_TOKEN, json!({"filter": {"conversation_id": "conv-a"}})).await;
    let mut unnamed = stream(&app, &feed, "&event_names=false").await;
    let mut named = stream(&app, &feed, "").await;
    rt.emit("turn_finished", "agent-1", "conv-a", json!({"n": 1}));
    let (got, control) = (unnamed.next().await, named.next().await);
    assert_eq!((got.event.as_str(), &got.data["type"]), ("message", &json!("turn_finished")), "{}", unnamed.summary());
    assert_eq!((control.event.as_str(), &got.data["n"], &got.id), ("turn_finished", &json!(1), &control.id));
}
