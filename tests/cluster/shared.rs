//! Stream tickets and idempotency keys hold across instances.

use serde_json::Value;

use crate::harness::{Cluster, authed, input, online_on};

#[tokio::test]
async fn a_ticket_issued_on_one_instance_serves_one_stream_at_a_time_on_any_instance() {
    let Some(cluster) = Cluster::start("tickets_across", 3) else { return };
    let res = authed(cluster.at(1).http.post(cluster.at(1).url("/tickets"))).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let ticket: Value = res.json().await.unwrap();
    let ticket = ticket["ticket"].as_str().unwrap();
    let open = |i: usize| cluster.at(i).http.get(cluster.at(i).url(&format!("/events?ticket={ticket}"))).send();
    let first = open(2).await.unwrap();
    assert_eq!(first.status(), 200);
    let mut first = letta_bridge_testkit::Sse::new(first).waiting(crate::harness::WAIT);
    // A reconnect landing on another instance takes the ticket over.
    let again = open(3).await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(first.ends().await, "the earlier stream, on another instance, ends");
    let made_up = cluster.at(1).http.get(cluster.at(1).url("/events?ticket=tk_made_up")).send().await.unwrap();
    assert_eq!(made_up.status(), 401);
}

#[tokio::test]
async fn an_idempotency_key_replays_on_another_instance_and_concurrent_uses_run_once() {
    let Some(cluster) = Cluster::start("idempotency_across", 3) else { return };
    let mut on2 = cluster.events(2, "").await;
    let mut rt = cluster.runtime(1, "dev-idem").await;
    online_on(&mut [&mut on2], "dev-idem").await;
    let post = |i: usize, key: &str, text: &str| {
        let b = cluster.at(i);
        authed(b.http.post(b.url("/input?wait=true"))).header("Idempotency-Key", key).json(&input(text)).send()
    };

    let first = post(2, "key-1", "once").await.unwrap();
    assert_eq!(first.status(), 200);
    let first_body = first.text().await.unwrap();
    let replay = post(3, "key-1", "once").await.unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.unwrap(), first_body);
    assert_eq!(post(3, "key-1", "another body").await.unwrap().status(), 422);

    let (a, b) = tokio::join!(post(2, "key-2", "concurrent"), post(3, "key-2", "concurrent"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let replayed = [&a, &b].iter().filter(|r| r.headers().contains_key("idempotent-replayed")).count();
    assert_eq!(replayed, 1, "one ran, one was replayed");
    // The runtime got exactly two inputs: `once` and one `concurrent`.
    let texts: Vec<Value> = vec![rt.next_frame().await, rt.next_frame().await];
    let texts: Vec<&str> = texts.iter().map(|f| f["payload"]["messages"][0]["content"].as_str().unwrap()).collect();
    assert_eq!(texts, ["once", "concurrent"]);
    let marker = serde_json::json!({"type": "sync", "runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"}});
    cluster.at(2).post("/commands", &marker).await;
    assert_eq!(rt.next_frame().await["type"], "sync", "no second `concurrent` input came before this sync");
}
