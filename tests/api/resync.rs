//! The bridge's own `sync` after a runtime reconnects: one per scope seen
//! before, each with a scope the runtime accepts (letta-code drops a `sync`
//! whose `runtime` lacks a non-empty `conversation_id`, unanswered).

use serde_json::{Value, json};

use crate::helpers::{fixtures, spawn_app};

#[tokio::test]
async fn a_reconnect_resyncs_only_scopes_the_runtime_accepts() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-resync").await;
    let mut sse = app.events("?types=marker,runtime_offline").await;
    // An agent seen without a conversation, an agent-less conversation (the
    // runtime takes `agent_id: null`), and a whole scope.
    rt.send(json!({"type": "marker", "runtime": {"agent_id": "agent-only"}}));
    rt.send(json!({"type": "marker", "runtime": {"agent_id": null, "conversation_id": "conv-default"}}));
    rt.emit("marker", "agent-1", "conv-1", json!({}));
    for _ in 0..3 {
        sse.next_of("marker").await;
    }
    rt.close();
    sse.next_of("runtime_offline").await;
    let mut again = app.runtime("dev-resync").await;
    // The re-syncs come first, before anything the test sends.
    again.send(json!({"type": "ping"}));
    let mut scopes = Vec::new();
    loop {
        let frame = again.next_frame().await;
        if frame == json!({"type": "pong"}) {
            break;
        }
        assert_eq!(frame["type"], "sync", "{frame}");
        assert!(fixtures::is_runtime_scope(&frame["runtime"]), "the runtime would drop this re-sync: {frame}");
        scopes.push(frame["runtime"].clone());
    }
    scopes.sort_by_key(Value::to_string);
    assert_eq!(
        scopes,
        vec![
            json!({"agent_id": "agent-1", "conversation_id": "conv-1"}),
            json!({"agent_id": null, "conversation_id": "conv-default"}),
        ]
    );
}
