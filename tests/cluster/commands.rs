//! Commands sent to one instance reach a runtime connected to another,
//! with the answers one process gives.

use letta_bridge_testkit::FakeRuntime;
use letta_bridge_testkit::bridge::{CLIENT_TOKEN, RUNTIME_TOKEN};
use serde_json::{Value, json};

use crate::harness::{Cluster, admin, input, online_on};

/// The assistant text of the recorded turn (fixture `turn`).
const RECORDED_TEXT: &str = "Hello from the scripted model.";

#[tokio::test]
async fn a_command_on_another_instance_is_written_answered_and_followed_to_its_turns_end() {
    let Some(cluster) = Cluster::start("command_across", 3) else { return };
    let mut on2 = cluster.events(2, "").await;
    let mut on3 = cluster.events(3, "").await;
    let mut rt = cluster.runtime(1, "dev-x").await;
    online_on(&mut [&mut on2, &mut on3], "dev-x").await;

    let res = cluster.at(2).post("/input", &input("plain")).await;
    assert_eq!(res.status(), 202);
    let accepted: Value = res.json().await.unwrap();
    let frame = rt.next_frame().await;
    assert_eq!((frame["type"].as_str(), &frame["request_id"]), (Some("input"), &accepted["request_id"]));
    assert_eq!(accepted["runtime_id"], "dev-x");

    let reply: Value = cluster.at(3).post("/input?wait=true", &input("awaited")).await.json().await.unwrap();
    assert_eq!((reply["type"].as_str(), reply["accepted"].as_bool()), (Some("input_accepted"), Some(true)));

    rt.play_recorded_turns();
    let res = cluster.at(2).post("/input?wait=completion", &input("a whole turn")).await;
    assert_eq!(res.status(), 200);
    let turn: Value = res.json().await.unwrap();
    assert_eq!(turn["stop_reason"], "end_turn");
    assert_eq!(turn["text"], RECORDED_TEXT);

    let metrics = |i: usize| {
        let b = cluster.at(i);
        async move { b.http.get(b.url("/metrics")).bearer_auth(CLIENT_TOKEN).send().await.unwrap().text().await.unwrap() }
    };
    let (sender, holder) = (metrics(2).await, metrics(1).await);
    for name in [
        "letta_bridge_forwarded_commands_total{outcome=\"written\"}",
        "letta_bridge_engine_round_trip_seconds_count",
        "letta_bridge_instances_alive",
    ] {
        assert!(sender.contains(name), "{name} in the sender's metrics:\n{sender}");
    }
    // The holder records the lag when its own mirror reads its appends back,
    // which may come after instance 2 saw the turn end: read until it has.
    let lag = "letta_bridge_append_visible_seconds_count";
    let recorded = tokio::time::timeout(crate::harness::WAIT, async {
        let mut holder = holder;
        while !holder.contains(lag) {
            tokio::task::yield_now().await;
            holder = metrics(1).await;
        }
    });
    assert!(recorded.await.is_ok(), "the holder's append lag in its metrics:\n{}", metrics(1).await);
}

#[tokio::test]
async fn a_runtime_registered_on_one_instance_may_open_its_socket_on_another() {
    let Some(cluster) = Cluster::start("register_across", 2) else { return };
    let body = letta_bridge_testkit::replay::registration_body("dev-reg", "reg-name");
    let res = cluster.at(1).post_as(RUNTIME_TOKEN, "/v1/environments/register", &body).await;
    assert_eq!(res.status(), 200);
    let reg: Value = res.json().await.unwrap();
    let connection = reg["connectionId"].as_str().unwrap();
    let url = format!("ws://{}/ws/{connection}?deviceId=dev-reg&connectionName=reg-name", cluster.at(2).addr);
    // Instance 1 learns of the socket from the log: listed once its stream shows it.
    let mut on1 = cluster.events(1, "").await;
    let _rt = FakeRuntime::connect_ready(&url, RUNTIME_TOKEN).await;
    online_on(&mut [&mut on1], "dev-reg").await;
    let listed = cluster.at(1).get_json("/runtimes").await;
    let entry = listed.as_array().unwrap().iter().find(|r| r["id"] == "dev-reg").cloned().unwrap();
    assert_eq!(entry["online"], true, "{listed}");
    assert_eq!(entry["connection_id"], connection);
    assert_eq!(entry["instance"], "n2");
}

#[tokio::test]
async fn unknown_offline_and_ambiguous_runtimes_get_the_answers_of_one_process() {
    let Some(cluster) = Cluster::start("routing_errors", 3) else { return };
    let mut on2 = cluster.events(2, "").await;
    let unknown = cluster.at(2).post("/input?runtime=nope", &input("x")).await;
    assert_eq!(unknown.status(), 404);

    let gone = cluster.runtime(1, "dev-gone").await;
    online_on(&mut [&mut on2], "dev-gone").await;
    gone.close();
    on2.next_matching("runtime_offline", |e| e.event == "runtime_offline" && e.data["runtime_id"] == "dev-gone").await;
    let offline = cluster.at(2).post("/input?runtime=dev-gone", &input("x")).await;
    assert_eq!(offline.status(), 503);
    assert!(offline.headers().contains_key("retry-after"));

    let _a = cluster.runtime(1, "dev-a").await;
    let _b = cluster.runtime(3, "dev-b").await;
    online_on(&mut [&mut on2], "dev-a").await;
    online_on(&mut [&mut on2], "dev-b").await;
    let ambiguous = cluster.at(2).post("/input", &input("x")).await;
    assert_eq!(ambiguous.status(), 409);
    let problem: Value = ambiguous.json().await.unwrap();
    assert_eq!(problem["candidates"], json!(["dev-a", "dev-b"]));
}

#[tokio::test]
async fn privileged_commands_need_the_admin_token_on_every_instance() {
    let Some(cluster) = Cluster::start("privileged_across", 2) else { return };
    let mut on2 = cluster.events(2, "").await;
    let mut rt = cluster.runtime(1, "dev-p").await;
    online_on(&mut [&mut on2], "dev-p").await;
    let frame = json!({"type": "list_in_directory", "path": "/tmp"});
    assert_eq!(cluster.at(2).post("/commands", &frame).await.status(), 403);
    let res = cluster.at(2).post_as(admin(), "/commands?wait=true", &frame).await;
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().await.unwrap();
    assert_eq!(reply["type"], "list_in_directory_response");
    assert_eq!(rt.next_frame().await["type"], "list_in_directory", "only the admin's command reached the runtime");
}
