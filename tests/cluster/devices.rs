//! Per-device runtime tokens in a cluster: each instance reads its own copy
//! of the file and checks where it accepts a registration or a socket, so a
//! token cannot take over a device online on another instance; and
//! `GET /runtimes` pages through the cluster's runtimes.

use letta_bridge_testkit::FakeRuntime;
use letta_bridge_testkit::bridge::ADMIN_TOKEN;
use serde_json::{Value, json};

use crate::harness::{Cluster, NODE_TTL, authed};

const TOKEN_A: &str = "cluster-device-token-a-00001";
const TOKEN_B: &str = "cluster-device-token-b-00001";

#[tokio::test]
async fn a_device_token_cannot_take_over_a_device_online_on_another_instance() {
    let dir = std::env::temp_dir().join(format!("lb-cluster-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("runtime-tokens");
    std::fs::write(&file, format!("{TOKEN_A} dev-a\n{TOKEN_B} dev-b\n")).unwrap();
    let file_arg = file.to_str().unwrap().to_owned();
    let Some(cluster) = Cluster::start_args("device_tokens", 2, NODE_TTL, &["--runtime-tokens-file", &file_arg]) else {
        return;
    };

    // The victim registers and connects on instance 1.
    let body = letta_bridge_testkit::replay::registration_body("dev-b", "b-name");
    let reg: Value = cluster.at(1).post_as(TOKEN_B, "/v1/environments/register", &body).await.json().await.unwrap();
    let connection = reg["connectionId"].as_str().unwrap().to_owned();
    let mut victim =
        FakeRuntime::connect_ready(&format!("{}?deviceId=dev-b", reg["wsUrl"].as_str().unwrap()), TOKEN_B).await;

    // dev-a's token tries dev-b on instance 2: registration and sockets refused.
    let res = cluster.at(2).post_as(TOKEN_A, "/v1/environments/register", &body).await;
    assert_eq!(res.status(), 403);
    for path in [format!("/ws/{connection}?deviceId=dev-b"), "/ws?deviceId=dev-b".into()] {
        let url = format!("ws://{}{path}", cluster.at(2).addr);
        let mut impostor = FakeRuntime::connect(&url, Some(TOKEN_A)).await.unwrap();
        let (code, _) = impostor.closed().await.expect("a close frame");
        assert_eq!(code, 1008, "{path}");
    }
    // dev-a's own socket on instance 2 is fine.
    let _a = FakeRuntime::connect_ready(&format!("ws://{}/ws?deviceId=dev-a", cluster.at(2).addr), TOKEN_A).await;

    // The victim still holds dev-b on instance 1 and gets the admin's commands.
    let command = json!({"type": "read_file", "path": "/tmp/x", "request_id": "after-attempts"});
    let res = cluster.at(2).post_as(ADMIN_TOKEN, "/runtimes/dev-b/commands", &command).await;
    assert_eq!(res.status(), 202);
    assert_eq!(victim.next_frame().await["request_id"], "after-attempts");

    // GET /runtimes pages through the cluster's runtimes.
    let bridge = cluster.at(2);
    let first = authed(bridge.http.get(bridge.url("/runtimes?limit=1"))).send().await.unwrap();
    assert_eq!(first.headers()["link"], r#"</runtimes?limit=1&after=dev-a>; rel="next""#);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["id"], "dev-a");
    let second = authed(bridge.http.get(bridge.url("/runtimes?limit=1&after=dev-a"))).send().await.unwrap();
    assert!(second.headers().get("link").is_none());
    let second: Value = second.json().await.unwrap();
    assert_eq!((second[0]["id"].as_str(), second[0]["instance"].as_str()), (Some("dev-b"), Some("n1")));
    assert_eq!(second[0]["connection_id"], connection.as_str(), "never replaced");
    let _ = std::fs::remove_dir_all(&dir);
}
