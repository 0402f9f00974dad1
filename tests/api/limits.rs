//! Connection limits: streams and connections beyond the caps get a clear
//! 503, counted, and a flood of subscribers never locks a runtime out.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn streams_beyond_the_limit_get_503_with_retry_after_and_are_counted() {
    let app = spawn_app_with(|c| {
        c.max_streams = Some(2);
        c.keepalive = Duration::from_millis(50);
    })
    .await;
    let first = app.events("").await;
    let _second = app.events("").await;
    let refused = app.get("/events").await;
    assert_eq!(refused.headers()["retry-after"], "2");
    let problem = assert_problem(refused, 503).await;
    assert_eq!(problem["type"], "urn:letta-bridge:too-many-streams");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("letta_bridge_refused_total{reason=\"streams\"} 1"), "{metrics}");
    drop(first);
    // The freed slot is noticed at the stream's next write (a keepalive): look until then, bounded.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let res = app.get("/events").await;
        if res.status() == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the slot of a closed stream was not freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_but_a_runtime_still_connects() {
    let app = spawn_app_with(|c| c.max_connections = Some(3)).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(app.events("").await);
    }
    // A fourth connection: its requests are refused, and it is closed.
    let other = reqwest::Client::builder().no_proxy().build().unwrap();
    let refused = other.get(app.url("/status")).bearer_auth(CLIENT_TOKEN).send().await.unwrap();
    assert_eq!(refused.headers()["connection"], "close");
    let problem = assert_problem(refused, 503).await;
    assert_eq!(problem["type"], "urn:letta-bridge:too-many-connections");
    // The runtime's socket is not subject to the cap.
    let mut rt = app.direct_runtime(Some("dev-flooded")).await;
    rt.send(serde_json::json!({"type": "ping"}));
    assert_eq!(rt.next_frame().await["type"], "pong");
}
