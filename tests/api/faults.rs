//! Faults users actually hit: runtimes dropping mid-turn, reconnect storms,
//! subscribers cut off, bridge restarts, and hostile input.

use serde_json::{Value, json};

use crate::helpers::*;

/// Waits (bounded) for a `/status` condition that no event announces.
async fn status_until(app: &TestApp, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = app.status().await;
        if ok(&status) {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} never held: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_runtime_dropping_mid_turn_fails_waits_fast_and_refuses_new_commands() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let mut sse = app.events("").await;
    rt.emit("stream_delta", "agent-1", "conv-1", json!({"delta": {"text": "Hel"}}));
    assert_eq!(sse.next().await.event, "stream_delta");
    let waiting = app.post_in_background(
        "/input?wait=true&timeout_ms=30000",
        scoped(json!({
            "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "more"}]}
        })),
    );
    rt.next_frame().await;
    rt.drop_connection();
    let offline = sse.next().await;
    assert_eq!((offline.event.as_str(), offline.data["reason"].as_str()), ("runtime_offline", Some("connection_lost")));
    let res = tokio::time::timeout(WAIT, waiting).await.expect("the wait fails fast").unwrap();
    assert_problem(res, 502).await;
    assert_problem(app.post("/sync", scoped(json!({}))).await, 503).await;
    let status = status_until(&app, "the socket task ended", |s| s["runtime_tasks"] == 0).await;
    assert_eq!(status["pending_replies"], 0);
}

#[tokio::test]
async fn a_reconnect_storm_leaves_one_consistent_online_runtime() {
    let app = spawn_app().await;
    let mut current = app.runtime("dev-a").await;
    for i in 0..20 {
        if i % 2 == 0 {
            // Replaced while a command awaits its reply on the old socket.
            current.quiet();
            let waiting = app.post_in_background("/sync?wait=true", scoped(json!({})));
            current.next_frame().await;
            let next = app.runtime("dev-a").await;
            assert_eq!(current.closed().await, Some((1000, "Replaced by new connection".into())));
            assert_problem(waiting.await.unwrap(), 502).await;
            current = next;
        } else {
            // Closed by the runtime, then back.
            let mut sse = app.events("?types=runtime_offline").await;
            current.close();
            sse.next().await;
            current = app.runtime("dev-a").await;
        }
    }
    let status = status_until(&app, "old socket tasks ended", |s| s["runtime_tasks"] == 1).await;
    assert_eq!(status["runtimes_online"], 1);
    assert_eq!(status["pending_replies"], 0);
    assert_eq!(status["runtime_connects"], 21);
    assert_eq!(status["runtimes"].as_array().unwrap().len(), 1);
    let scope = json!({"agent_id": "agent-1", "conversation_id": "conv-1"});
    let reply: Value = app.post("/sync?wait=true", json!({"runtime": scope})).await.json().await.unwrap();
    assert_eq!(reply["type"], "sync_response", "the survivor answers");
}

#[tokio::test]
async fn subscribers_cut_off_together_resume_with_every_event_once_in_order() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    let mut subs = Vec::new();
    for _ in 0..5 {
        subs.push(app.events("?types=e").await);
    }
    for i in 0..10 {
        rt.emit("e", "a", "c", json!({"i": i}));
    }
    let mut last_ids = Vec::new();
    for (n, sub) in subs.iter_mut().enumerate() {
        // Each has read a different amount when the connections drop.
        let mut last = String::new();
        for _ in 0..=n {
            last = sub.next().await.id;
        }
        last_ids.push((n, last));
    }
    drop(subs);
    for i in 10..40 {
        rt.emit("e", "a", "c", json!({"i": i}));
    }
    let mut resumed = Vec::new();
    for (n, last) in last_ids {
        let mut sub = app.events_with("?types=e", Some(&last)).await;
        for want in (n as i64 + 1)..40 {
            assert_eq!(sub.next().await.data["i"], want, "subscriber {n}");
        }
        resumed.push(sub);
    }
    rt.emit("e", "a", "c", json!({"i": 1000}));
    for sub in &mut resumed {
        assert_eq!(sub.next().await.data["i"], 1000, "then live, with nothing repeated");
    }
}

#[tokio::test]
async fn cursors_from_before_a_bridge_restart_get_a_reset() {
    let old = spawn_app().await;
    let rt = old.runtime("dev-a").await;
    let mut sse = old.events("").await;
    rt.emit("e", "a", "c", json!({}));
    let cursor = sse.next().await.id;
    drop((rt, sse, old));
    let new = spawn_app().await;
    let mut sse = new.events_with("", Some(&cursor)).await;
    let reset = sse.next().await;
    assert_eq!(reset.event, "reset");
    assert_eq!(reset.data["reason"], "other_epoch");
    assert_ne!(seq_of(&reset.id).0, seq_of(&cursor).0, "resume_from is in the new epoch");
}

#[tokio::test]
async fn expired_and_future_cursors_get_a_reset_naming_the_oldest_event() {
    let app = spawn_app_with(|c| c.replay_events = 5).await;
    let rt = app.runtime("dev-a").await;
    let mut sse = app.events("?types=e").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        rt.emit("e", "a", "c", json!({"i": i}));
        ids.push(sse.next().await.id);
    }
    let mut expired = app.events_with("", Some(&ids[2])).await;
    let reset = expired.next().await;
    assert_eq!((reset.event.as_str(), reset.data["reason"].as_str()), ("reset", Some("expired_cursor")));
    assert_eq!(reset.data["oldest"], ids[15].as_str(), "the ring holds the last 5");
    let (epoch, seq) = seq_of(&ids[19]);
    let mut future = app.events_with("", Some(&format!("{epoch}-{}", seq + 100))).await;
    assert_eq!(future.next().await.data["reason"], "unknown_cursor");
    for bad in ["", "-", "a-b", &"9".repeat(500), "é-1", "abc-1-2x"] {
        let mut s = app.events(&format!("?last_event_id={}", urlencode(bad))).await;
        assert_eq!(s.next().await.data["reason"], "malformed_cursor", "{bad:?}");
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test]
async fn hostile_bodies_and_headers_get_clear_answers_and_harm_nothing() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let deep = format!("{{\"payload\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let res = app.post_raw("/input", Some("application/json"), deep).await;
    let status = res.status().as_u16();
    assert!(matches!(status, 400 | 422), "deep nesting: {status}");
    assert_problem(res, status).await;

    let huge = "y".repeat(900_000);
    let body = scoped(json!({"payload": {"kind": "create_message", "messages": [{"role": "user", "content": huge}]}}));
    assert_eq!(app.post("/input", body).await.status(), 202, "a huge string under the limit is fine");
    assert_eq!(rt.next_frame().await["payload"]["messages"][0]["content"].as_str().unwrap().len(), 900_000);

    let res = app
        .http
        .get(app.url("/status"))
        .bearer_auth(CLIENT_TOKEN)
        .header("x-big", "z".repeat(1024 * 1024))
        .send()
        .await;
    assert!(
        res.map(|r| r.status().is_client_error()).unwrap_or(true),
        "huge headers are refused (or the connection closed)"
    );

    let res = app.post("/sync", scoped(json!({"request_id": "after"}))).await;
    assert_eq!(res.status(), 202);
    assert_eq!(rt.next_frame().await["request_id"], "after");
}

#[tokio::test]
async fn a_runtime_flooding_frames_slows_nobody_and_nothing_breaks() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    let mut sse = app.events("?types=flood,end").await;
    for i in 0..20_000 {
        rt.emit("flood", "a", "c", json!({"i": i}));
    }
    rt.emit("end", "a", "c", json!({}));
    let mut count = 0;
    loop {
        let e = sse.next().await;
        match e.event.as_str() {
            "flood" => count += 1,
            "lagged" => count += e.data["missed"].as_u64().unwrap() as usize,
            "end" => break,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(count, 20_000, "every event delivered or accounted for by a lagged signal");
    assert_eq!(app.get_as(None, "/healthz").await.status(), 200);
    assert_eq!(app.post("/sync", scoped(json!({}))).await.status(), 202);
}
