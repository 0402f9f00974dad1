//! Letta's clients on any instance: a client socket on one instance drives
//! a runtime connected to another.

use futures_util::{SinkExt, StreamExt};
use letta_bridge_testkit::bridge::CLIENT_TOKEN;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::{Cluster, WAIT, online_on};

#[tokio::test]
async fn an_app_server_socket_on_another_instance_drives_the_runtime_and_gets_its_own_replies() {
    let Some(cluster) = Cluster::start("clients_across", 2) else { return };
    let mut on2 = cluster.events(2, "").await;
    let mut rt = cluster.runtime(1, "dev-c").await;
    online_on(&mut [&mut on2], "dev-c").await;
    let mut request = format!("ws://{}/app-server/ws?runtime=dev-c", cluster.at(2).addr).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {CLIENT_TOKEN}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    let sync = json!({"type": "sync", "request_id": "sync-1", "runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"}});
    socket.send(Message::text(sync.to_string())).await.unwrap();
    let sent = rt.next_frame().await;
    assert_eq!(sent["type"], "sync");
    assert!(sent["request_id"].as_str().unwrap().ends_with(":sync-1"), "namespaced: {sent}");
    let reply = tokio::time::timeout(WAIT, async {
        loop {
            let Some(Ok(Message::Text(text))) = socket.next().await else { panic!("the socket ended") };
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            if frame["type"] == "sync_response" {
                return frame;
            }
        }
    })
    .await
    .expect("the reply in time");
    assert_eq!(reply["request_id"], "sync-1", "the client's own id, through the other instance: {reply}");
}
