//! A turn that stops for a tool approval never hangs an OpenAI client:
//! by default the bridge denies the tool and the turn goes on
//! (LETTA_BRIDGE_OPENAI_APPROVALS=deny); with `fail`, a `409` and the
//! approval left pending for `POST /approval`.

use super::*;
use letta_bridge::config::OpenAiApprovals;

#[tokio::test]
async fn an_approval_stop_is_denied_by_default_and_the_turn_goes_on() {
    let app = spawn_app().await;
    let mut rt = runtime_with_agent(&app, "dev-a", "default").await;
    rt.ask_for_approvals();
    rt.play_recorded_turns();
    let pending = tokio::spawn(chat(&app, CLIENT_TOKEN, &ask("make a file"), &[]).send());
    assert_eq!(rt.next_frame().await["payload"]["kind"], "create_message");
    let answer = rt.next_frame().await;
    assert_eq!(answer["payload"]["kind"], "approval_response");
    assert_eq!(answer["payload"]["decision"]["behavior"], "deny");
    assert!(answer["payload"]["request_id"].as_str().unwrap().starts_with("perm-"));
    let res = pending.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    let completion: Value = res.json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "Understood, I will not.");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    let usage = &completion["usage"];
    assert!(usage["total_tokens"].as_u64().unwrap() > usage["prompt_tokens"].as_u64().unwrap() / 2, "{usage}");
}

#[tokio::test]
async fn with_approvals_set_to_fail_an_approval_stop_is_a_409_and_stays_pending() {
    let app = spawn_app_with(|c| c.openai_approvals = OpenAiApprovals::Fail).await;
    let mut rt = runtime_with_agent(&app, "dev-a", "default").await;
    rt.ask_for_approvals();
    let res = chat(&app, CLIENT_TOKEN, &ask("make a file"), &[]).send();
    let (res, frame) = tokio::join!(res, rt.next_frame());
    assert_eq!(frame["payload"]["kind"], "create_message");
    let error = assert_openai_error(res.unwrap(), 409, "approval_required").await;
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("perm-") && message.contains("POST /approval"), "{message}");
    // Nothing answered it: the runtime still waits for someone who can.
    let next = tokio::time::timeout(std::time::Duration::from_millis(300), rt.next_frame()).await;
    assert!(next.is_err(), "no approval_response was sent: {next:?}");
}
