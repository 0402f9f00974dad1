//! Instances that die or stop: their runtimes go offline everywhere and
//! work again from another instance.

use letta_bridge_testkit::bridge::RUNTIME_TOKEN;
use serde_json::Value;

use crate::harness::{Cluster, input, online_on};

#[tokio::test]
async fn a_killed_instances_runtime_goes_offline_everywhere_and_works_again_elsewhere() {
    let Some(mut cluster) = Cluster::start("instance_killed", 3) else { return };
    let mut on2 = cluster.events(2, "").await;
    let mut on3 = cluster.events(3, "").await;
    let rt = cluster.runtime(1, "dev-k").await;
    online_on(&mut [&mut on2, &mut on3], "dev-k").await;
    cluster.bridges[0].kill();
    for sse in [&mut on2, &mut on3] {
        let offline = sse.next_matching("runtime_offline", |e| e.event == "runtime_offline").await;
        assert_eq!(offline.data["runtime_id"], "dev-k");
        assert_eq!(offline.data["reason"], "instance_lost");
    }
    drop(rt);
    let url = format!("ws://{}/ws?deviceId=dev-k", cluster.at(2).addr);
    let _again = letta_bridge_testkit::FakeRuntime::connect_ready(&url, RUNTIME_TOKEN).await;
    online_on(&mut [&mut on3], "dev-k").await;
    let reply: Value = cluster.at(3).post("/input?wait=true", &input("back")).await.json().await.unwrap();
    assert_eq!(reply["accepted"], true, "{reply}");
}

#[tokio::test]
async fn a_stopped_instance_closes_its_runtimes_with_shutdown_for_everyone() {
    let Some(mut cluster) = Cluster::start("instance_stopped", 2) else { return };
    let mut on2 = cluster.events(2, "").await;
    let mut rt = cluster.runtime(1, "dev-s").await;
    online_on(&mut [&mut on2], "dev-s").await;
    cluster.bridges[0].stop();
    assert_eq!(rt.closed().await.map(|(code, _)| code), Some(1001));
    let offline = on2.next_matching("runtime_offline", |e| e.event == "runtime_offline").await;
    assert_eq!(offline.data["reason"], "shutdown");
    // The instance list is read at each renewal (a third of the lease), not
    // published: look until it shows, bounded.
    let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
    loop {
        let status = cluster.at(2).get_json("/status").await;
        if status["cluster"]["instances"] == serde_json::json!(["n2"]) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the stopped instance kept its lease: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
