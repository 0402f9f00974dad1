//! Registration, the socket, heartbeats, sync, and going offline and back.

use std::time::Duration;

use letta_bridge_testkit::letta::LETTA_CODE_VERSION;
use serde_json::{Value, json};

use crate::harness::Live;

#[tokio::test]
async fn the_runtime_registers_connects_and_is_listed_online_with_its_version() {
    let Some(live) = Live::start("registers_and_connects").await else { return };
    let runtimes = live.bridge.get_json("/runtimes").await;
    let rt = runtimes.as_array().unwrap().iter().find(|r| r["id"] == live.runtime_id.as_str()).expect("listed");
    assert_eq!(rt["online"], true, "{rt}");
    assert_eq!(rt["version"], LETTA_CODE_VERSION, "{rt}");
    assert_eq!(rt["connection_name"], "live-test", "{rt}");
    assert!(rt["connection_id"].as_str().is_some_and(|c| c.starts_with("conn-")), "registered first: {rt}");
    assert!(live.bridge.log().contains("runtime registered"), "the bridge logged the registration");
}

#[tokio::test]
async fn the_runtimes_json_pings_get_pongs_and_it_stays_connected() {
    // The runtime pings every 30 s, a constant in its bundle (no setting):
    // a preload shortens that one interval so a few seconds cover many pings.
    // Without pongs it would drop the socket after 3 unanswered ones.
    let preload = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/live/fast-heartbeat.cjs");
    let Some(mut live) = Live::start_with("json_pings", |opts| {
        opts.extra_env.push(("NODE_OPTIONS".into(), format!("--require {preload}")));
        opts.extra_env.push(("LETTA_TEST_HEARTBEAT_MS".into(), "200".into()));
    })
    .await
    else {
        return;
    };
    // What is under test is staying connected for this long (15 intervals).
    tokio::time::sleep(Duration::from_secs(3)).await;

    let pongs = live.runtime.log().matches(r#"recv (lifecycle)  {"type":"pong"}"#).count();
    assert!(pongs >= 8, "the runtime got {pongs} pongs in 3 s at a 200 ms ping interval");
    assert_still_the_one_connection(&mut live).await;
}

#[tokio::test]
async fn opt_in_a_runtime_stays_online_past_its_pong_timeout_at_the_real_cadence() {
    if std::env::var_os("LETTA_LIVE_LONG").is_none() {
        eprintln!("SKIPPED: set LETTA_LIVE_LONG=1 to run this 130 s test");
        return;
    }
    let Some(mut live) = Live::start("json_pings_real_cadence").await else { return };
    // Pings every 30 s; 3 unanswered ones end the socket at the 4th tick (120 s).
    tokio::time::sleep(Duration::from_secs(130)).await;

    let pongs = live.runtime.log().matches(r#"recv (lifecycle)  {"type":"pong"}"#).count();
    assert!(pongs >= 4, "the runtime got {pongs} pongs in 130 s");
    assert_still_the_one_connection(&mut live).await;
}

/// No `runtime_offline` so far, online in `GET /runtimes`, one connect in all.
async fn assert_still_the_one_connection(live: &mut Live) {
    let rt = runtime_entry(live).await;
    assert_eq!(rt["online"], true, "{rt}");
    let status = live.bridge.get_json("/status").await;
    assert_eq!(status["runtime_connects"], 1, "it never reconnected: {status}");
    // A marker through the socket: nothing before it said offline. (A `sync`
    // without `runtime` is unparseable to the runtime and never answered.)
    let scope = json!({"agent_id": "agent-marker", "conversation_id": "default"});
    let res = live.bridge.post("/sync?wait=true&timeout_ms=15000", &json!({"runtime": scope})).await;
    assert_eq!(res.status(), 200);
    let marker = res.json::<Value>().await.unwrap()["request_id"].clone();
    live.events.next_matching("the marker's sync_response", |e| e.data["request_id"] == marker).await;
    assert!(!live.events.seen.iter().any(|e| e.event == "runtime_offline"), "{}", live.events.summary());
}

async fn runtime_entry(live: &Live) -> Value {
    let runtimes = live.bridge.get_json("/runtimes").await;
    runtimes.as_array().unwrap().iter().find(|r| r["id"] == live.runtime_id.as_str()).expect("listed").clone()
}

#[tokio::test]
async fn sync_waits_for_the_sync_response_and_the_state_reaches_subscribers() {
    let Some(mut live) = Live::start("sync").await else { return };
    let scope = json!({"agent_id": "agent-sync-probe", "conversation_id": "default"});

    let res = live.bridge.post("/sync?wait=true&timeout_ms=15000", &json!({"runtime": scope})).await;
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().await.unwrap();
    assert_eq!(reply["type"], "sync_response", "{reply}");
    assert_eq!(reply["success"], true, "{reply}");
    assert_eq!(reply["runtime"], scope, "{reply}");
    let request_id = reply["request_id"].as_str().unwrap().to_owned();

    let response = live.events.next_matching("sync_response", |e| e.data["request_id"] == request_id.as_str()).await;
    assert_eq!(response.data["runtime_id"], live.runtime_id.as_str());
    let state: Vec<&str> = live
        .events
        .seen
        .iter()
        .filter(|e| e.data["runtime"] == scope && e.event.starts_with("update_"))
        .map(|e| e.event.as_str())
        .collect();
    for kind in ["update_loop_status", "update_queue", "update_subagent_state"] {
        assert!(state.contains(&kind), "{kind} before sync_response: {}", live.events.summary());
    }
    let loop_status =
        live.events.seen.iter().rev().find(|e| e.event == "update_loop_status" && e.data["runtime"] == scope).unwrap();
    assert_eq!(loop_status.data["loop_status"]["status"], "WAITING_ON_INPUT", "{}", loop_status.data);
}

#[tokio::test]
async fn a_stopped_runtime_goes_offline_and_a_restarted_one_is_back_and_resynced() {
    let Some(mut live) = Live::start("offline_and_back").await else { return };
    let scope = json!({"agent_id": "agent-resync-probe", "conversation_id": "default"});
    let res = live.bridge.post("/sync?wait=true&timeout_ms=15000", &json!({"runtime": scope})).await;
    assert_eq!(res.status(), 200, "the bridge has now seen this scope");

    live.runtime.stop();
    let offline = live.events.next_of("runtime_offline").await;
    assert_eq!(offline.data["runtime_id"], live.runtime_id.as_str());
    let rt = runtime_entry(&live).await;
    assert_eq!(rt["online"], false, "{rt}");
    assert!(rt["offline_since"].is_string(), "{rt}");
    let res = live.bridge.post("/sync", &json!({"runtime": scope})).await;
    assert_eq!(res.status(), 503, "commands to an offline runtime");

    live.restart_runtime();
    let online = live.events.next_of("runtime_online").await;
    assert_eq!(online.data["runtime_id"], live.runtime_id.as_str(), "the same device came back");
    let resync = live
        .events
        .next_matching("a bridge re-sync's sync_response", |e| {
            e.event == "sync_response"
                && e.data["request_id"].as_str().is_some_and(|r| r.starts_with("bridge-resync-"))
                && e.data["runtime"] == scope
        })
        .await;
    assert_eq!(resync.data["success"], true, "{}", resync.data);
    assert_eq!(runtime_entry(&live).await["online"], true);
}
