//! The follower's rule for gaps: a turn whose events the follower may have
//! missed fails its wait at once, with an error that says why.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::hub::{Draft, Limits};
use crate::protocol::wire;

fn hub() -> Hub {
    Hub::with_epoch("ep".into(), Limits { events: 2, bytes: usize::MAX, max_age: Duration::from_secs(3600) })
}

fn input() -> Command {
    let frame = json!({"type": wire::INPUT, "request_id": "r1", "runtime": {"agent_id": "a", "conversation_id": "c"},
                       "payload": {"kind": wire::CREATE_MESSAGE, "messages": [{"role": "user", "content": "hi"}]}});
    Command::new(frame.as_object().expect("an object").clone()).expect("a command")
}

fn publish(hub: &Hub, n: usize) {
    for i in 0..n {
        let data = format!("{{\"i\":{i}}}");
        hub.publish(Draft { kind: "x".into(), runtime_id: None, agent_id: None, conversation_id: None, data });
    }
}

/// The follower's answer, or a panic if it waited for its (distant) deadline.
async fn finish(follower: Follower) -> TurnError {
    let deadline = Instant::now() + Duration::from_secs(3600);
    let answer = tokio::time::timeout(Duration::from_secs(10), follower.finish(deadline)).await;
    answer.expect("the follower answers at once, not at its deadline").expect_err("a gap fails the wait")
}

#[tokio::test]
async fn a_follower_the_ring_overtook_fails_at_once_naming_the_setting_to_raise() {
    let hub = hub();
    let follower = Follower::start(&hub, "dev", &mut input(), None).unwrap();
    publish(&hub, 5);
    let error = finish(follower).await;
    assert!(matches!(error, TurnError::Lagged { missed: 3, .. }), "{error:?}");
    assert!(error.to_string().contains("LETTA_BRIDGE_REPLAY_EVENTS"), "{error}");
}

#[tokio::test]
async fn a_follower_whose_log_restarted_fails_at_once_saying_its_events_are_lost() {
    let hub = hub();
    let follower = Follower::start(&hub, "dev", &mut input(), None).unwrap();
    hub.rebase("fresh");
    let error = finish(follower).await;
    assert!(matches!(error, TurnError::LogReset(_)), "{error:?}");
}
