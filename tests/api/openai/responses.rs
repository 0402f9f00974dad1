//! `POST /v1/responses`: OpenAI's Responses API on the same turns.

use serde_json::{Value, json};

use super::*;

fn respond(app: &TestApp, body: &Value) -> reqwest::RequestBuilder {
    app.http.post(app.url("/v1/responses")).bearer_auth(CLIENT_TOKEN).json(body)
}

#[tokio::test]
async fn a_response_answers_with_the_agents_message_as_output_text_and_usage() {
    let app = spawn_app().await;
    let mut rt = runtime_with_agent(&app, "dev-a", "default").await;
    let body = json!({"model": AGENT, "instructions": "ignored", "input": [
        {"role": "user", "content": "earlier"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}]});
    let pending = tokio::spawn(respond(&app, &body).send());
    let frame = rt.next_frame().await;
    assert_eq!(frame["payload"]["messages"][0]["content"], json!([{"type": "text", "text": "hello"}]));
    assistant(&rt, "default", "m-1", "Hi");
    assistant(&rt, "default", "m-1", " there.");
    delta(
        &rt,
        "default",
        json!({"message_type": "usage_statistics", "prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}),
    );
    finished(&rt, "default", "end_turn");
    let res = pending.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    let response: Value = res.json().await.unwrap();
    let request_id = frame["request_id"].as_str().unwrap();
    assert_eq!(response["id"], format!("resp_{request_id}"));
    assert_eq!((response["object"].as_str(), response["status"].as_str()), (Some("response"), Some("completed")));
    let message = &response["output"][0];
    assert_eq!((message["type"].as_str(), message["role"].as_str()), (Some("message"), Some("assistant")));
    assert_eq!(message["content"][0], json!({"type": "output_text", "text": "Hi there.", "annotations": []}));
    assert_eq!(response["usage"], json!({"input_tokens": 9, "output_tokens": 2, "total_tokens": 11}));
    assert_eq!(response["letta"]["runtime_id"], "dev-a");
}

#[tokio::test]
async fn a_streamed_response_sends_the_responses_api_events_in_order() {
    let app = spawn_app().await;
    let mut rt = runtime_with_agent(&app, "dev-a", "default").await;
    let (res, _) =
        tokio::join!(respond(&app, &json!({"model": AGENT, "input": "hi", "stream": true})).send(), rt.next_frame());
    let res = res.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assistant(&rt, "default", "m-1", "Hel");
    assistant(&rt, "default", "m-1", "lo");
    finished(&rt, "default", "max_steps");
    let text = tokio::time::timeout(WAIT, res.text()).await.unwrap().unwrap();
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap().to_owned();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name, serde_json::from_str(data).unwrap())
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.incomplete",
        ]
    );
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!((data["type"].as_str(), data["sequence_number"].as_u64()), (Some(name.as_str()), Some(i as u64)));
    }
    assert_eq!(events[4].1["delta"], "Hel");
    assert_eq!(events[6].1["text"], "Hello");
    let last = &events[9].1["response"];
    assert_eq!(last["status"], "incomplete", "out of steps");
    assert_eq!(last["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(last["id"], events[0].1["response"]["id"]);
}

#[tokio::test]
async fn a_response_request_without_usable_input_is_a_400_in_openais_shape() {
    let app = spawn_app().await;
    let _rt = runtime_with_agent(&app, "dev-a", "default").await;
    for (body, param) in [
        (json!({"model": AGENT}), "input"),
        (json!({"input": "hi"}), "model"),
        (json!({"model": AGENT, "input": [{"role": "system", "content": "only"}]}), "input"),
        (json!({"model": AGENT, "input": 7}), "input"),
    ] {
        let res = respond(&app, &body).send().await.unwrap();
        let code =
            if body.get("model").is_none() || body.get("input").is_none() { "missing_required_parameter" } else { "" };
        let error = if code.is_empty() {
            assert_eq!(res.status(), 400);
            res.json::<Value>().await.unwrap()["error"].clone()
        } else {
            assert_openai_error(res, 400, code).await
        };
        assert_eq!(error["param"], param, "{body}");
    }
    let res = app.http.post(app.url("/v1/responses")).bearer_auth("sk-wrong").json(&json!({})).send().await.unwrap();
    assert_openai_error(res, 401, "invalid_api_key").await;
}
