//! Traces across instances: a command sent to one instance for a runtime
//! held by another is one trace, continued on the holder; each instance's
//! spans reach the OTLP receiver the test starts, told apart by their
//! `service.instance.id`.

use letta_bridge_testkit::bridge::CLIENT_TOKEN;
use letta_bridge_testkit::otlp::{OtlpReceiver, Span};

use crate::harness::{Cluster, WAIT, authed, input, online_on};

/// The caller's trace and span, as its `traceparent` names them.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_command_forwarded_to_the_instance_holding_its_runtime_is_one_trace_over_both_instances() {
    let otlp = OtlpReceiver::start().await;
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "50")];
    let Some(cluster) = Cluster::start_env("traces", 2, &env) else { return };
    let mut on1 = cluster.events(1, "").await;
    let rt = cluster.runtime(2, "dev-t").await;
    online_on(&mut [&mut on1], "dev-t").await;
    rt.play_recorded_turns();

    let a = cluster.at(1);
    let traceparent = format!("00-{TRACE}-{CALLER}-01");
    let req = authed(a.http.post(a.url("/input?wait=completion"))).header("traceparent", &traceparent);
    let res = req.json(&input("traced")).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    let on = |spans: &[Span], instance: &str, name: &str| {
        spans.iter().find(|s| s.trace_id == TRACE && s.instance.as_deref() == Some(instance) && s.name == name).cloned()
    };
    let whole = |spans: &[Span]| {
        ["POST /input", "turn.follow", "dispatch", "forward", "turn"].iter().all(|name| on(spans, "n1", name).is_some())
            && on(spans, "n2", "forwarded").is_some()
    };
    let spans = otlp.until("the command's spans on both instances", WAIT, whole).await;
    let span = |instance, name| on(&spans, instance, name).unwrap();
    let (request, follow) = (span("n1", "POST /input"), span("n1", "turn.follow"));
    let (dispatch, forward) = (span("n1", "dispatch"), span("n1", "forward"));
    let (turn, forwarded) = (span("n1", "turn"), span("n2", "forwarded"));
    assert_eq!(request.parent_span_id, CALLER, "the request continues the caller's trace: {request:?}");
    assert_eq!(
        (request.kind, request.attr("method"), request.attr("route"), request.attr("status")),
        ("server", Some("POST"), Some("/input"), Some("200"))
    );
    assert_eq!(follow.parent_span_id, request.span_id, "the turn is followed in a task of its own");
    assert_eq!(dispatch.parent_span_id, follow.span_id);
    assert_eq!(
        (dispatch.attr("runtime"), dispatch.attr("command"), dispatch.attr("outcome")),
        (Some("dev-t"), Some("input"), Some("turn_finished"))
    );
    assert_eq!(forward.parent_span_id, dispatch.span_id);
    assert_eq!((forward.attr("node"), forward.attr("outcome")), (Some("n2"), Some("written")));
    assert_eq!(forwarded.parent_span_id, forward.span_id, "the holder continues the sender's forward span");
    assert_eq!((forwarded.attr("from"), forwarded.attr("outcome")), (Some("n1"), Some("written")));
    assert_eq!((turn.parent_span_id.as_str(), turn.attr("outcome")), (dispatch.span_id.as_str(), Some("end_turn")));
    for s in spans.iter().filter(|s| s.instance.is_some()) {
        assert_eq!(s.service.as_deref(), Some("letta-bridge"), "{s:?}");
        for (key, value) in &s.attributes {
            assert!(!value.contains(CLIENT_TOKEN) && !value.contains("wait="), "{key}={value} in {s:?}");
        }
    }
}
