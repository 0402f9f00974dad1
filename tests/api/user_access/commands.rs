//! What an end user's token may send on REST: the actions of its grants on
//! their scopes, on the runtime the scope names; nothing else.

use serde_json::json;

use super::*;

#[tokio::test]
async fn alices_input_into_bobs_conversation_is_403_insufficient_scope_naming_what_is_missing() {
    let app = spawn_with_users().await;
    let mut rt = app.runtime("dev-1").await;
    let res = app.post_as(Some(&alice()), "/input", message("conv-b")).await;
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""), "{challenge}");
    let problem = assert_problem(res, 403).await;
    assert_eq!(problem["type"], "urn:letta-bridge:insufficient-scope");
    assert_eq!(
        problem["missing"],
        json!({"action": "input", "runtime": "dev-1", "agent_id": "agent-1", "conversation_id": "conv-b"})
    );
    let res = app.post_as(Some(&alice()), "/input", message("conv-a")).await;
    assert_eq!(res.status(), 202, "her own conversation");
    let sent = rt.next_frame().await;
    assert_eq!(sent["runtime"]["conversation_id"], "conv-a", "the refused one never reached the runtime");
}

#[tokio::test]
async fn each_command_needs_its_own_action() {
    let app = spawn_with_users().await;
    let _rt = app.runtime("dev-1").await;
    let scope = json!([{"agent_id": "agent-1", "conversation_id": "conv-a"}]);
    let only_input = token("carol", 600, "carol-1", &["read", "input"], scope.clone());
    let approval = json!({"runtime": conv("conv-a"),
        "payload": {"request_id": "perm-1", "decision": {"behavior": "allow"}}});
    let cases = [
        ("/input", message("conv-a"), "input"),
        ("/approval", approval, "approve"),
        ("/abort", json!({"runtime": conv("conv-a")}), "abort"),
        ("/sync", json!({"runtime": conv("conv-a")}), "sync"),
    ];
    for (path, body, action) in cases {
        let res = app.post_as(Some(&only_input), path, body.clone()).await;
        if action == "input" {
            assert_eq!(res.status(), 202, "{path}");
        } else {
            let problem = assert_problem(res, 403).await;
            assert_eq!(problem["missing"]["action"], action, "{path}: {problem}");
        }
        let just_this = token("dave", 600, "dave-1", &[action], scope.clone());
        let res = app.post_as(Some(&just_this), path, body).await;
        assert_eq!(res.status(), 202, "{path} with `{action}` alone");
    }
}

#[tokio::test]
async fn a_user_sends_no_raw_device_or_privileged_command_and_no_conversation_list() {
    let app = spawn_with_users().await;
    let _rt = app.runtime("dev-1").await;
    for frame in [
        json!({"type": "read_file", "path": "/etc/passwd"}),
        json!({"type": "change_device_state", "runtime": conv("conv-a"), "payload": {"agent_id": "agent-1"}}),
        json!({"type": "runtime_start", "create_agent": {}, "create_conversation": {}}),
        json!({"type": "conversation_list", "query": {}}),
        json!({"type": "list_models"}),
        json!({"type": "input", "runtime": conv("conv-a"), "payload": {"kind": "create_message",
               "messages": [], "permission_mode": "unrestricted"}}),
    ] {
        let res = app.post_as(Some(&alice()), "/commands", frame.clone()).await;
        let problem = assert_problem(res, 403).await;
        assert_eq!(problem["type"], "urn:letta-bridge:insufficient-scope", "{frame}");
    }
    let resume = json!({"type": "runtime_start", "agent_id": "agent-1", "conversation_id": "conv-a"});
    assert_eq!(app.post_as(Some(&alice()), "/commands", resume).await.status(), 202, "a resume of her conversation");
}

#[tokio::test]
async fn a_refused_request_leaves_its_idempotency_key_unused() {
    let app = spawn_with_users().await;
    let _rt = app.runtime("dev-1").await;
    let send = |body| {
        app.http.post(app.url("/input")).bearer_auth(alice()).header("Idempotency-Key", "k-1").json(&body).send()
    };
    assert_eq!(send(message("conv-b")).await.unwrap().status(), 403);
    let res = send(message("conv-a")).await.unwrap();
    assert_eq!(res.status(), 202, "the refusal stored nothing under the key");
}

#[tokio::test]
async fn among_several_runtimes_a_user_hears_only_of_the_ones_its_grants_name() {
    let app = spawn_with_users().await;
    let _one = app.runtime("dev-1").await;
    let _two = app.runtime("dev-2").await;
    let problem = assert_problem(app.post_as(Some(&alice()), "/input", message("conv-a")).await, 409).await;
    assert_eq!(problem["candidates"], json!(["dev-1"]), "dev-2 is not hers to know");
    let res = app.post_as(Some(&alice()), "/input?runtime=dev-2", message("conv-a")).await;
    assert_eq!(assert_problem(res, 403).await["missing"]["runtime"], "dev-2");
    let res = app.post_as(Some(&alice()), "/runtimes/dev-1/input", message("conv-a")).await;
    assert_eq!(res.status(), 202);
    let res = app.post_as(Some(&alice()), "/input?runtime=dev-9", message("conv-a")).await;
    assert_problem(res, 403).await;
}
