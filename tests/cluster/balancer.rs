//! The same through nginx with the README's recipe: runtimes and clients
//! land on any instance and still reach each other, and clients cut and
//! resumed through the balancer miss nothing.

use std::time::Duration;

use letta_bridge_testkit::bridge::{CLIENT_TOKEN, RUNTIME_TOKEN};
use letta_bridge_testkit::{FakeRuntime, Sse};
use serde_json::{Value, json};

use crate::harness::{Cluster, WAIT, input, online_on};

#[tokio::test]
async fn through_the_balancer_runtimes_and_clients_on_any_instance_reach_each_other() {
    let Some(cluster) = Cluster::start("balanced", 3) else { return };
    let Some(nginx) = cluster.balancer("balanced") else { return };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{}", nginx.addr);
    let body = letta_bridge_testkit::replay::registration_body("dev-lb", "lb");
    let reg: Value = http
        .post(format!("{base}/v1/environments/register"))
        .bearer_auth(RUNTIME_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ws = reg["wsUrl"].as_str().unwrap();
    assert!(ws.starts_with(&format!("ws://{}/ws/", nginx.addr)), "the wsUrl goes through the balancer: {ws}");
    let mut streams = Vec::new();
    for i in 1..=3 {
        streams.push(cluster.events(i, "").await);
    }
    let _rt = FakeRuntime::connect_ready(&format!("{ws}?deviceId=dev-lb&connectionName=lb"), RUNTIME_TOKEN).await;
    let mut refs: Vec<&mut Sse> = streams.iter_mut().collect();
    online_on(&mut refs, "dev-lb").await;
    // Round robin: consecutive requests land on different instances, and
    // each reaches the runtime.
    for i in 0..6 {
        let res = http
            .post(format!("{base}/input?wait=true"))
            .bearer_auth(CLIENT_TOKEN)
            .json(&input(&format!("m{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "request {i}");
        let reply: Value = res.json().await.unwrap();
        assert_eq!(reply["accepted"], true);
    }
}

#[tokio::test]
async fn clients_cut_and_resumed_through_the_balancer_get_every_event_once_in_order() {
    let Some(cluster) = Cluster::start("churn", 3) else { return };
    let Some(nginx) = cluster.balancer("churn") else { return };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let events = format!("http://{}/events?types=marker", nginx.addr);
    let rt = cluster.runtime(1, "dev-churn").await;
    const TOTAL: i64 = 150;
    // Subscribed before the first event: the later connections resume.
    let first = Sse::open(http.get(&events).bearer_auth(CLIENT_TOKEN)).await.waiting(WAIT);
    let emitter = async {
        for i in 0..TOTAL {
            rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let reader = async {
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        let mut reconnects = 0;
        let mut open = Some(first);
        let give_up = tokio::time::Instant::now() + Duration::from_millis(20 * TOTAL as u64) + WAIT;
        while got.len() < TOTAL as usize {
            assert!(
                tokio::time::Instant::now() < give_up,
                "after {reconnects} reconnects, got {} of {TOTAL}: {got:?}",
                got.len()
            );
            let mut sse = match open.take() {
                Some(sse) => sse,
                None => {
                    let mut req = http.get(&events).bearer_auth(CLIENT_TOKEN);
                    if let Some(c) = &cursor {
                        req = req.header("Last-Event-ID", c);
                    }
                    Sse::open(req).await.waiting(WAIT)
                }
            };
            // Read a while, then cut the connection (as a flaky network would).
            let cut = tokio::time::Instant::now() + Duration::from_millis(400);
            while tokio::time::Instant::now() < cut && got.len() < TOTAL as usize {
                let Ok(e) = tokio::time::timeout_at(cut, sse.next_of("marker")).await else { break };
                cursor = Some(e.id);
                got.push(e.data["i"].as_i64().unwrap());
            }
            reconnects += 1;
        }
        (got, reconnects)
    };
    let ((), (got, reconnects)) = tokio::join!(emitter, reader);
    assert!(reconnects >= 5, "the reader was cut and resumed several times ({reconnects})");
    assert_eq!(got, (0..TOTAL).collect::<Vec<_>>(), "every event once, in order");
}
