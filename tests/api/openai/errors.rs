//! Every failure in OpenAI's error shape, with the status OpenAI's SDKs
//! map to their error classes.

use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test]
async fn a_wrong_or_missing_key_is_a_401_invalid_api_key() {
    let app = spawn_app().await;
    let res = chat(&app, "sk-wrong", &ask("hi"), &[]).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let error = assert_openai_error(res, 401, "invalid_api_key").await;
    assert_eq!(error["type"], "authentication_error");
    let res = app.http.post(app.url("/v1/chat/completions")).json(&ask("hi")).send().await.unwrap();
    assert_openai_error(res, 401, "invalid_api_key").await;
    assert_openai_error(app.get_as(Some("sk-wrong"), "/v1/models").await, 401, "invalid_api_key").await;
}

#[tokio::test]
async fn every_bad_body_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let _rt = runtime_with_agent(&app, "dev-a", "default").await;
    let raw = |body: &'static str, ct: &'static str| {
        app.http
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(CLIENT_TOKEN)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let error =
        assert_openai_error(raw("{\"model\": ", "application/json").await.unwrap(), 400, "malformed_json").await;
    assert_eq!(error["type"], "invalid_request_error");
    assert_openai_error(raw("[1, 2]", "application/json").await.unwrap(), 400, "invalid_type").await;
    assert_openai_error(raw("{}", "text/plain").await.unwrap(), 415, "unsupported_media_type").await;
    let cases = [
        (json!({"messages": [{"role": "user", "content": "hi"}]}), "missing_required_parameter", "model"),
        (json!({"model": AGENT}), "missing_required_parameter", "messages"),
        (json!({"model": 7, "messages": []}), "invalid_type", "model"),
        (json!({"model": AGENT, "messages": "hi"}), "invalid_type", "messages"),
        (json!({"model": AGENT, "messages": [{"role": "system", "content": "only"}]}), "invalid_value", "messages"),
        (
            json!({"model": AGENT, "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}),
            "invalid_type",
            "stream",
        ),
    ];
    for (body, code, param) in cases {
        let res = chat(&app, CLIENT_TOKEN, &body, &[]).send().await.unwrap();
        let error = assert_openai_error(res, 400, code).await;
        assert_eq!(error["param"], param, "{body}");
    }
    let res = chat(&app, CLIENT_TOKEN, &ask("hi"), &[("X-Letta-Conversation-Id", "two words")]).send().await.unwrap();
    assert_openai_error(res, 400, "invalid_value").await;
}

#[tokio::test]
async fn an_agent_the_bridge_has_not_seen_is_a_404_model_not_found() {
    let app = spawn_app().await;
    let _rt = runtime_with_agent(&app, "dev-a", "default").await;
    let body = json!({"model": "agent-unknown", "messages": [{"role": "user", "content": "hi"}]});
    let error =
        assert_openai_error(chat(&app, CLIENT_TOKEN, &body, &[]).send().await.unwrap(), 404, "model_not_found").await;
    assert_eq!(error["param"], "model");
    let res = chat(&app, CLIENT_TOKEN, &ask("hi"), &[("X-Letta-Runtime", "dev-nope")]).send().await.unwrap();
    assert_openai_error(res, 404, "not_found").await;
}

#[tokio::test]
async fn a_runtime_named_by_header_takes_an_agent_the_bridge_has_not_seen() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let body = json!({"model": "agent-new", "messages": [{"role": "user", "content": "hi"}]});
    let pending = tokio::spawn(chat(&app, CLIENT_TOKEN, &body, &[("X-Letta-Runtime", "dev-a")]).send());
    let frame = rt.next_frame().await;
    assert_eq!(frame["runtime"]["agent_id"], "agent-new");
    rt.emit("turn_finished", "agent-new", "default", json!({"turn_id": "t", "stop_reason": "end_turn", "run_id": "r"}));
    assert_eq!(pending.await.unwrap().unwrap().status(), 200);
}

#[tokio::test]
async fn no_runtime_online_is_a_503_with_retry_after() {
    let app = spawn_app().await;
    let res = chat(&app, CLIENT_TOKEN, &ask("hi"), &[]).send().await.unwrap();
    assert_eq!(res.headers()["retry-after"], "2");
    let error = assert_openai_error(res, 503, "runtime_unavailable").await;
    assert_eq!(error["type"], "server_error");

    // The agent's runtime went offline: 503 too, though another is online.
    let rt = runtime_with_agent(&app, "dev-a", "default").await;
    let _other = app.runtime("dev-b").await;
    let mut events = app.events("").await;
    rt.close();
    events.next_of("runtime_offline").await;
    let res = chat(&app, CLIENT_TOKEN, &ask("hi"), &[]).send().await.unwrap();
    assert_openai_error(res, 503, "runtime_unavailable").await;
}

#[tokio::test]
async fn an_agent_on_several_runtimes_online_needs_x_letta_runtime() {
    let app = spawn_app().await;
    let _a = runtime_with_agent(&app, "dev-a", "default").await;
    let mut b = runtime_with_agent(&app, "dev-b", "default").await;
    let res = chat(&app, CLIENT_TOKEN, &ask("hi"), &[]).send().await.unwrap();
    let error = assert_openai_error(res, 409, "ambiguous_runtime").await;
    assert!(error["message"].as_str().unwrap().contains("dev-a, dev-b"));
    let pending = tokio::spawn(chat(&app, CLIENT_TOKEN, &ask("hi"), &[("X-Letta-Runtime", "dev-b")]).send());
    assert_eq!(b.next_frame().await["type"], "input");
    finished(&b, "default", "end_turn");
    assert_eq!(pending.await.unwrap().unwrap().status(), 200);
}

#[tokio::test]
async fn a_turn_that_does_not_end_in_time_is_a_504() {
    let app = spawn_app_with(|c| {
        c.wait_timeout = Duration::from_millis(300);
        c.max_wait_timeout = Duration::from_millis(300);
    })
    .await;
    let _rt = runtime_with_agent(&app, "dev-a", "default").await;
    let res = chat(&app, CLIENT_TOKEN, &ask("hi"), &[]).send().await.unwrap();
    let error = assert_openai_error(res, 504, "reply_timeout").await;
    assert_eq!(error["type"], "server_error");
}
