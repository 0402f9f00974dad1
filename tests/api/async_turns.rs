//! Turns that outlive a request: `?wait=completion` answered `202` with
//! `Location: /turns/{id}` and `Retry-After` (after LETTA_BRIDGE_ASYNC_AFTER,
//! or at once with `Prefer: respond-async`), polled at `GET /turns/{id}`
//! until it answers what a synchronous completion answers, and the finished
//! turns listed at `GET /turns` for polling triggers.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::user_access::{self, spawn_with_users};

const AGENT: &str = "agent-1";
const CONV: &str = "conv-1";

fn message(text: &str) -> Value {
    json!({
        "runtime": {"agent_id": AGENT, "conversation_id": CONV},
        "payload": {"kind": "create_message", "messages": [{"role": "user", "content": text}]}
    })
}

/// The runtime's side of a short turn: two assistant pieces, then `turn_finished`.
fn finish_turn(rt: &FakeRuntime, stop_reason: &str) {
    for (i, text) in ["Hel", "lo"].iter().enumerate() {
        let delta = json!({"id": "msg-1", "message_type": "assistant_message", "run_id": "run-1",
                           "content": [{"type": "text", "text": text}], "seq": i});
        rt.emit("stream_delta", AGENT, CONV, json!({ "delta": delta }));
    }
    let error = if stop_reason == "error" { json!("Agent agent-1 not found") } else { Value::Null };
    rt.emit(
        "turn_finished",
        AGENT,
        CONV,
        json!({"turn_id": "turn-1", "stop_reason": stop_reason, "run_id": "run-1", "error": error}),
    );
}

/// POSTs `body` to `path` with `token`, and `Prefer: respond-async` when asked.
async fn post_turn(app: &TestApp, token: &str, path: &str, body: Value, prefer_async: bool) -> reqwest::Response {
    let mut req = app.http.post(app.url(path)).bearer_auth(token).json(&body);
    if prefer_async {
        req = req.header("Prefer", "respond-async");
    }
    tokio::time::timeout(WAIT, req.send()).await.expect("an answer in time").expect("request sent")
}

/// Polls `location` with `token` as a low-code tool does, until it answers
/// anything but `202` (within [`WAIT`]).
async fn poll(app: &TestApp, token: &str, location: &str) -> reqwest::Response {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let res = app.get_as(Some(token), location).await;
        if res.status() != 202 {
            return res;
        }
        assert_eq!(res.headers()["retry-after"], "5");
        assert!(tokio::time::Instant::now() < deadline, "{location} still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `202` for a running turn: its `Location`, checked against its body.
async fn accepted(res: reqwest::Response) -> (String, Value) {
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(res.headers()["retry-after"], "5");
    let body: Value = res.json().await.unwrap();
    assert!(location.starts_with("/turns/tn_"), "{location}");
    assert_eq!(body["location"], location);
    assert_eq!(format!("/turns/{}", body["id"].as_str().unwrap()), location);
    assert_eq!(body["status"], "running");
    assert_eq!(body["type"], "input", "a 202 of POST /input reads as its Accepted too");
    (location, body)
}

/// A turn's answer without what differs from one turn to the next.
fn comparable(mut turn: Value) -> Value {
    let map = turn.as_object_mut().unwrap();
    for field in ["id", "request_id", "cursor"] {
        assert!(map.remove(field).unwrap().as_str().is_some_and(|s| !s.is_empty()), "{field}");
    }
    let events = map.remove("event_ids").unwrap().as_array().unwrap().len();
    let finished = map.remove("turn_finished").unwrap();
    map.insert("event_count".into(), events.into());
    map.insert("finished_with".into(), finished["stop_reason"].clone());
    turn
}

#[tokio::test]
async fn a_turn_longer_than_async_after_answers_202_with_location_and_retry_after_then_polls_to_its_end() {
    let app = spawn_app_with(|c| c.async_after = Duration::from_millis(100)).await;
    let mut rt = app.runtime("dev-a").await;
    let pending = app.post_in_background("/input?wait=completion", message("hi"));
    let frame = rt.next_frame().await;
    let res = tokio::time::timeout(WAIT, pending).await.expect("a 202 after 100 ms").unwrap();
    assert!(res.headers().get("preference-applied").is_none(), "no preference was asked for");
    let (location, running) = accepted(res).await;
    assert_eq!(running["request_id"], frame["request_id"]);
    assert_eq!((running["runtime_id"].as_str(), running["conversation_id"].as_str()), (Some("dev-a"), Some(CONV)));

    let still = app.get(&location).await;
    assert_eq!(still.status(), 202);
    assert_eq!(still.headers()["retry-after"], "5");
    assert_eq!(still.headers()["location"], location.as_str(), "each 202 says where to poll again");
    assert_eq!(still.json::<Value>().await.unwrap()["id"], running["id"]);

    finish_turn(&rt, "end_turn");
    let done = poll(&app, CLIENT_TOKEN, &location).await;
    assert_eq!(done.status(), 200);
    let turn: Value = done.json().await.unwrap();
    assert_eq!((turn["text"].as_str(), turn["stop_reason"].as_str()), (Some("Hello"), Some("end_turn")));
    assert_eq!((&turn["id"], &turn["request_id"]), (&running["id"], &running["request_id"]));
}

#[tokio::test]
async fn polling_ends_with_the_same_body_as_a_synchronous_completion() {
    let app = spawn_app_with(|c| c.async_after = Duration::from_millis(100)).await;
    let mut rt = app.runtime("dev-a").await;

    // The same scripted turn twice: answered at once, then answered 202 and polled.
    let pending = app.post_in_background("/input?wait=completion", message("hi"));
    rt.next_frame().await;
    finish_turn(&rt, "end_turn");
    let sync: Value = pending.await.unwrap().json().await.unwrap();

    let pending = app.post_in_background("/input?wait=completion", message("hi"));
    rt.next_frame().await;
    let (location, _) = accepted(pending.await.unwrap()).await;
    finish_turn(&rt, "end_turn");
    let polled: Value = poll(&app, CLIENT_TOKEN, &location).await.json().await.unwrap();
    assert_eq!(comparable(polled), comparable(sync.clone()));

    // A synchronous turn is kept too: its id answers exactly the body it was answered with.
    let again: Value = app.get_json(&format!("/turns/{}", sync["id"].as_str().unwrap())).await;
    assert_eq!(again, sync);
}

#[tokio::test]
async fn prefer_respond_async_answers_202_at_once_with_preference_applied() {
    // The default LETTA_BRIDGE_ASYNC_AFTER (25 s) is far beyond the answer's timeout.
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let res = post_turn(&app, CLIENT_TOKEN, "/runtimes/dev-a/input?wait=completion", message("hi"), true).await;
    assert_eq!(res.headers()["preference-applied"], "respond-async");
    let (location, _) = accepted(res).await;
    rt.next_frame().await;
    finish_turn(&rt, "end_turn");
    assert_eq!(poll(&app, CLIENT_TOKEN, &location).await.status(), 200);
}

#[tokio::test]
async fn an_input_refused_before_it_is_written_answers_its_problem_and_is_no_turn() {
    let app = spawn_app().await;
    let res = post_turn(&app, CLIENT_TOKEN, "/input?wait=completion", message("hi"), true).await;
    assert_problem(res, 503).await;
    let list = app.get_json("/turns").await;
    assert_eq!(list["turns"], json!([]));
}

#[tokio::test]
async fn a_failed_turn_polls_as_the_problem_its_request_would_have_answered() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let (location, running) =
        accepted(post_turn(&app, CLIENT_TOKEN, "/input?wait=completion", message("hi"), true).await).await;
    rt.next_frame().await;
    finish_turn(&rt, "error");
    let problem = assert_problem(poll(&app, CLIENT_TOKEN, &location).await, 502).await;
    assert_eq!(problem["type"], "urn:letta-bridge:turn-failed");
    assert_eq!(problem["turn"]["id"], running["id"]);

    let list = app.get_json("/turns").await;
    let entry = &list["turns"][0];
    assert_eq!((entry["id"].clone(), entry["status"].clone()), (running["id"].clone(), json!(502)));
    assert_eq!((entry["turn"].clone(), entry["problem"]["type"].clone()), (Value::Null, problem["type"].clone()));
}

#[tokio::test]
async fn finished_turns_list_newest_first_and_polling_on_with_next_misses_none() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let start = app.get_json("/turns").await;
    let from = start["next"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for n in 0..3 {
        let pending = app.post_in_background("/input?wait=completion", message(&format!("turn {n}")));
        rt.next_frame().await;
        finish_turn(&rt, "end_turn");
        let turn: Value = pending.await.unwrap().json().await.unwrap();
        ids.push(turn["id"].as_str().unwrap().to_owned());
    }
    let listed = |page: &Value| -> Vec<String> {
        page["turns"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect()
    };
    let newest = app.get_json("/turns").await;
    assert_eq!(listed(&newest), [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    assert_eq!(newest["turns"][0]["turn"]["text"], "Hello");
    assert_eq!(newest["turns"][0]["status"], 200);
    assert_eq!(listed(&app.get_json("/turns?limit=1").await), [ids[2].clone()]);
    let unset = app.get_json("/turns?after=&limit=1").await;
    assert_eq!(listed(&unset), [ids[2].clone()], "an empty after (a tool's unset field) is no cursor");

    // From the cursor taken before: the earliest two, then the third, then nothing.
    let page = app.get_json(&format!("/turns?after={from}&limit=2")).await;
    assert_eq!(listed(&page), [ids[1].clone(), ids[0].clone()]);
    let page = app.get_json(&format!("/turns?after={}&limit=2", page["next"].as_str().unwrap())).await;
    assert_eq!(listed(&page), [ids[2].clone()]);
    let page = app.get_json(&format!("/turns?after={}&limit=2", page["next"].as_str().unwrap())).await;
    assert_eq!(listed(&page), Vec::<String>::new());
    assert_eq!(page["next"], newest["next"]);

    for bad in ["/turns?after=nope", "/turns?after=abc-", "/turns?limit=0", "/turns?limit=101"] {
        assert_problem(app.get(bad).await, 400).await;
    }
    let unknown = assert_problem(app.get("/turns/tn_unknown").await, 404).await;
    assert_eq!(unknown["type"], "urn:letta-bridge:not-found");
}

#[tokio::test]
async fn a_user_token_cannot_poll_another_users_turn() {
    let app = spawn_with_users().await;
    let mut rt = app.runtime("dev-1").await;
    let alice = user_access::alice();
    let bob = user_access::token(
        "bob",
        600,
        "bob-1",
        user_access::ALL,
        json!([{"agent_id": "agent-1", "conversation_id": "*"}]),
    );
    let (location, _) =
        accepted(post_turn(&app, &alice, "/input?wait=completion", user_access::message("conv-a"), true).await).await;
    rt.next_frame().await;

    assert_eq!(app.get_as(Some(&alice), &location).await.status(), 202, "hers");
    assert_eq!(app.get_as(Some(ADMIN_TOKEN), &location).await.status(), 202, "the admin sees every turn");
    assert_problem(app.get_as(Some(&bob), &location).await, 404).await;
    assert_problem(app.get_as(Some(CLIENT_TOKEN), &location).await, 404).await;

    rt.emit(
        "turn_finished",
        AGENT,
        "conv-a",
        json!({"turn_id": "turn-1", "stop_reason": "end_turn", "run_id": "run-1"}),
    );
    assert_eq!(poll(&app, &alice, &location).await.status(), 200);
    let count = |page: Value| page["turns"].as_array().unwrap().len();
    let list_as = |token: String| {
        let req = app.http.get(app.url("/turns")).bearer_auth(token);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(count(list_as(alice.clone()).await), 1);
    assert_eq!(count(list_as(bob.clone()).await), 0, "bob reads conv-a's events, but the turn is alice's");
    assert_eq!(count(list_as(ADMIN_TOKEN.to_owned()).await), 1);
    // Alice with a token that no longer reads conv-a reads the turn no more.
    let narrower = user_access::token(
        "alice",
        600,
        "alice-2",
        &["input"],
        json!([{"agent_id": "agent-1", "conversation_id": "conv-a"}]),
    );
    assert_problem(app.get_as(Some(&narrower), &location).await, 404).await;
}

#[tokio::test]
async fn a_repeat_of_an_input_answered_202_gets_the_same_turn_to_poll() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let post = || {
        let req = app.http.post(app.url("/input?wait=completion")).bearer_auth(CLIENT_TOKEN);
        req.header("Prefer", "respond-async").header("Idempotency-Key", "turn-key-1").json(&message("once")).send()
    };
    let (first, _) = accepted(post().await.unwrap()).await;
    rt.next_frame().await;
    let repeat = post().await.unwrap();
    assert_eq!(repeat.headers()["idempotent-replayed"], "true");
    let (again, _) = accepted(repeat).await;
    assert_eq!(again, first, "the same turn, sent once");
}

#[tokio::test]
async fn a_retryable_failure_polls_with_its_retry_after() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let (location, _) =
        accepted(post_turn(&app, CLIENT_TOKEN, "/input?wait=completion", message("hi"), true).await).await;
    let frame = rt.next_frame().await;
    let otid = frame["payload"]["messages"][0]["client_message_id"].clone();
    let failure =
        json!({"stage": "model", "code": "provider_overloaded", "retryable": true, "client_message_ids": [otid]});
    rt.emit(
        "update_loop_status",
        AGENT,
        CONV,
        json!({"loop_status": {"status": "WAITING_ON_INPUT", "failure": failure}}),
    );
    finish_turn(&rt, "error");
    let res = poll(&app, CLIENT_TOKEN, &location).await;
    assert_eq!(res.headers()["retry-after"], "8");
    let problem = assert_problem(res, 502).await;
    assert_eq!(problem["turn"]["failure"]["retryable"], true);
}
