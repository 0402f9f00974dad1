//! Operations: Prometheus metrics, JSON logs, request ids.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn metrics_need_a_token_and_cover_runtimes_commands_events_and_streams() {
    let app = spawn_app_with(|c| c.replay_events = 2).await;
    assert_problem(app.get_as(None, "/metrics").await, 401).await;
    let rt = app.runtime("dev-a").await;
    assert_eq!(app.post("/sync", scoped(json!({}))).await.status(), 202);
    let mut sse = app.events("").await;
    rt.emit("e", "a", "c", json!({}));
    let id = sse.next_of("e").await.id;
    let _resumed = app.events_with("", Some(&id)).await;
    let _reset = app.events_with("", Some("garbage")).await;

    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = res.text().await.unwrap();
    for needle in [
        "letta_bridge_runtimes_online ",
        "letta_bridge_runtime_connects_total ",
        "letta_bridge_commands_total{type=\"sync\",status=\"202\"} ",
        "letta_bridge_events_published_total ",
        "letta_bridge_sse_subscribers ",
        "letta_bridge_replay_hits_total ",
        "letta_bridge_resets_total{reason=\"malformed_cursor\"} ",
        "letta_bridge_pending_replies ",
        "letta_bridge_lagged_total ",
        "# HELP letta_bridge_commands_total ",
        "letta_bridge_http_request_duration_seconds_bucket{method=\"POST\",route=\"/sync\",status=\"202\"",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle:?}:\n{text}");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_a_given_one() {
    let app = spawn_app().await;
    let res = app.get("/status").await;
    let id = res.headers()["x-request-id"].to_str().unwrap();
    assert!(!id.is_empty());
    let res = app.http.get(app.url("/healthz")).header("x-request-id", "trace-me-1").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-me-1");
}
