//! Traces and webhooks: with the `OTEL_*` variables set, each delivery
//! attempt is an exported span whose `traceparent` the receiver gets; with
//! traces off, no header and nothing exported. The bridge runs as a
//! process: the variables are read once per process.

use std::path::PathBuf;
use std::time::Duration;

use letta_bridge_testkit::FakeRuntime;
use letta_bridge_testkit::bridge::{ADMIN_TOKEN, BridgeProcess, RUNTIME_TOKEN};
use letta_bridge_testkit::otlp::OtlpReceiver;
use serde_json::{Value, json};

use super::Receiver;

/// A bridge process whose hooks may post to loopback, with `env` set.
fn bridge(test: &str, env: &[(&str, &str)]) -> BridgeProcess {
    let dir: PathBuf = std::env::temp_dir().join(format!("letta-bridge-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut env = env.to_vec();
    env.push(("LETTA_BRIDGE_WEBHOOK_ALLOW", "127.0.0.1"));
    BridgeProcess::start_with_env(env!("CARGO_BIN_EXE_letta-bridge"), dir.join("bridge.log"), &[], &env)
}

/// Makes a hook for raw `turn_finished` events, has a runtime finish a
/// turn, and returns the receiver's line for its delivery.
async fn deliver_one(bridge: &BridgeProcess, receiver: &mut Receiver) -> Value {
    let body = json!({"url": receiver.url, "events": ["turn_finished"]});
    let res = bridge.post_as(ADMIN_TOKEN, "/webhooks", &body).await;
    assert_eq!(res.status(), 201, "POST /webhooks");
    receiver.trust(&res.json().await.unwrap());
    let rt = FakeRuntime::connect_ready(&format!("ws://{}/ws?deviceId=dev-1", bridge.addr), RUNTIME_TOKEN).await;
    rt.emit("turn_finished", "agent-1", "conv-1", json!({"stop_reason": "end_turn", "turn_id": "t1", "run_id": "r"}));
    receiver.next().await
}

#[tokio::test]
async fn a_webhook_delivery_carries_the_traceparent_of_its_exported_span() {
    let otlp = OtlpReceiver::start().await;
    let mut receiver = Receiver::start("127.0.0.1", &[]).await;
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "50")];
    let bridge = bridge("webhook-traced", &env);
    let delivery = deliver_one(&bridge, &mut receiver).await;
    let traceparent = delivery["traceparent"].as_str().unwrap_or_else(|| panic!("a traceparent: {delivery}"));
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert!(
        matches!(parts[..], ["00", trace, span, "01"] if trace.len() == 32 && span.len() == 16
            && (trace.to_owned() + span).bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())),
        "a W3C traceparent, sampled: {traceparent}"
    );
    let (trace, span) = (parts[1], parts[2]);
    let spans = otlp.until("the delivery's span", super::WAIT, |s| s.iter().any(|s| s.span_id == span)).await;
    let sent = spans.iter().find(|s| s.span_id == span).unwrap();
    assert_eq!((sent.name.as_str(), sent.kind, sent.trace_id.as_str()), ("webhook.delivery", "client", trace));
    assert_eq!((sent.attr("webhook.id"), sent.attr("status")), (delivery["id"].as_str(), Some("200")));
    assert_eq!(sent.service.as_deref(), Some("letta-bridge"));
    assert!(sent.attributes.iter().all(|(_, v)| !v.contains("/hook")), "never the receiver's path: {sent:?}");
}

#[tokio::test]
async fn with_traces_disabled_a_delivery_has_no_traceparent_and_nothing_is_exported() {
    let otlp = OtlpReceiver::start().await;
    let mut receiver = Receiver::start("127.0.0.1", &[]).await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_SDK_DISABLED", "true"),
    ];
    let bridge = bridge("webhook-untraced", &env);
    let delivery = deliver_one(&bridge, &mut receiver).await;
    assert_eq!(delivery["traceparent"], Value::Null, "{delivery}");
    assert!(otlp.quiet(Duration::from_millis(500)).await, "exported: {:?}", otlp.spans());
}
