//! Turns that outlive a request, across instances: a turn answered `202`
//! on one instance is polled on any other (the store is Redis), and one
//! whose following instance stops is answered as stopped.

use std::time::Duration;

use letta_bridge_testkit::FakeRuntime;
use letta_bridge_testkit::bridge::CLIENT_TOKEN;
use serde_json::{Value, json};

use crate::harness::{Cluster, WAIT, authed, input, online_on};

/// `POST /input?wait=completion` with `Prefer: respond-async` on instance
/// `i`: the `Location` of its `202`.
async fn start_turn(cluster: &Cluster, i: usize, text: &str) -> String {
    let b = cluster.at(i);
    let req = authed(b.http.post(b.url("/input?wait=completion"))).header("Prefer", "respond-async");
    let res = req.json(&input(text)).send().await.unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["preference-applied"], "respond-async");
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// Polls `location` on instance `i` until it answers anything but `202`.
async fn poll(cluster: &Cluster, i: usize, location: &str) -> reqwest::Response {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let b = cluster.at(i);
        let res = authed(b.http.get(b.url(location))).send().await.unwrap();
        if res.status() != 202 {
            return res;
        }
        assert!(tokio::time::Instant::now() < deadline, "{location} still runs on instance {i}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn finish(rt: &FakeRuntime, text: &str) {
    let delta = json!({"id": "msg-1", "message_type": "assistant_message", "run_id": "run-1",
                       "content": [{"type": "text", "text": text}]});
    rt.emit("stream_delta", "agent-1", "conv-1", json!({ "delta": delta }));
    rt.emit(
        "turn_finished",
        "agent-1",
        "conv-1",
        json!({"turn_id": "turn-1", "stop_reason": "end_turn", "run_id": "run-1"}),
    );
}

#[tokio::test]
async fn a_turn_answered_202_on_one_instance_is_polled_and_listed_on_another() {
    let Some(cluster) = Cluster::start("turns_across", 3) else { return };
    let mut on2 = cluster.events(2, "").await;
    let mut rt = cluster.runtime(1, "dev-t").await;
    online_on(&mut [&mut on2], "dev-t").await;

    let location = start_turn(&cluster, 2, "slow").await;
    rt.next_frame().await;
    let running = authed(cluster.at(3).http.get(cluster.at(3).url(&location))).send().await.unwrap();
    assert_eq!(running.status(), 202, "instance 3 knows the turn instance 2 follows");
    assert_eq!(running.headers()["retry-after"], "5");

    finish(&rt, "Done at last.");
    let done = poll(&cluster, 3, &location).await;
    assert_eq!(done.status(), 200);
    let turn: Value = done.json().await.unwrap();
    assert_eq!((turn["text"].as_str(), turn["runtime_id"].as_str()), (Some("Done at last."), Some("dev-t")));
    assert_eq!(format!("/turns/{}", turn["id"].as_str().unwrap()), location);

    let listed = cluster.at(1).get_json("/turns").await;
    assert_eq!(listed["turns"][0]["id"], turn["id"]);
    assert_eq!(listed["turns"][0]["turn"], turn);
    let next = listed["next"].as_str().unwrap();
    let empty = cluster.at(2).get_json(&format!("/turns?after={next}")).await;
    assert_eq!((empty["turns"].clone(), empty["next"].as_str()), (json!([]), Some(next)), "one cursor for the cluster");

    // Two more, answered at once on instance 3; paged one by one from instance 1 with the first cursor.
    let mut ids = vec![turn["id"].as_str().unwrap().to_owned()];
    for text in ["second", "third"] {
        let pending = {
            let b = cluster.at(3);
            authed(b.http.post(b.url("/input?wait=completion"))).json(&input(text)).send()
        };
        let (res, _) = tokio::join!(pending, async {
            rt.next_frame().await;
            finish(&rt, text);
        });
        let body: Value = res.unwrap().json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let epoch = next.rsplit_once('-').unwrap().0;
    let mut cursor = format!("{epoch}-0");
    let mut paged = Vec::new();
    for _ in 0..3 {
        let page = cluster.at(1).get_json(&format!("/turns?after={cursor}&limit=1")).await;
        paged.push(page["turns"][0]["id"].as_str().unwrap().to_owned());
        cursor = page["next"].as_str().unwrap().to_owned();
    }
    assert_eq!(paged, ids, "every turn once, in the order they finished");
    let newest: Value = cluster.at(2).get_json("/turns?limit=2").await;
    let newest: Vec<&str> = newest["turns"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(newest, [ids[2].as_str(), ids[1].as_str()]);

    let admin_sees = cluster.at(2).http.get(cluster.at(2).url("/turns")).bearer_auth(crate::harness::admin());
    let admin_sees: Value = admin_sees.send().await.unwrap().json().await.unwrap();
    assert_eq!(admin_sees["turns"].as_array().unwrap().len(), 3);
    let unknown = cluster.at(3).http.get(cluster.at(3).url("/turns/tn_unknown")).bearer_auth(CLIENT_TOKEN);
    assert_eq!(unknown.send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_turn_whose_following_instance_stops_answers_503_on_the_others() {
    let Some(mut cluster) = Cluster::start("turns_stopped", 3) else { return };
    let mut on2 = cluster.events(2, "").await;
    let mut rt = cluster.runtime(1, "dev-s").await;
    online_on(&mut [&mut on2], "dev-s").await;
    let location = start_turn(&cluster, 2, "never ends").await;
    rt.next_frame().await;
    drop(on2);
    cluster.bridges[1].stop();
    let stopped = poll(&cluster, 3, &location).await;
    assert_eq!(stopped.status(), 503);
    let problem: Value = stopped.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("stopped before the turn ended"), "{problem}");
}
