//! The scripted model server: a tool call streams as OpenAI `tool_calls`
//! deltas (PROTOCOL.md §8), and the follow-up request that carries the
//! tool's result gets the reply's `then`.

use letta_bridge_testkit::model_server::{ModelServer, Reply};
use serde_json::{Value, json};

/// POSTs a streaming chat completion with `messages`; returns the chunks.
async fn chat(server: &ModelServer, messages: Value) -> Vec<Value> {
    let body = json!({"model": "fake-model", "stream": true, "messages": messages});
    let res = reqwest::Client::builder().no_proxy().build().unwrap();
    let text = res.post(format!("{}/chat/completions", server.base_url())).json(&body).send().await.unwrap();
    let text = text.text().await.unwrap();
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect()
}

#[tokio::test]
async fn a_tool_call_streams_as_tool_calls_deltas_and_the_tool_result_gets_the_follow_up_reply() {
    let arguments = json!({"command": "touch x", "description": "Create x"});
    let reply = Reply::tool_call("call-1", "Bash", arguments.clone()).then(Reply::new(["Done", "."]));
    let server = ModelServer::start(reply).await;

    let chunks = chat(&server, json!([{"role": "user", "content": "please"}])).await;
    let deltas: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"].get(0)).map(|c| &c["delta"]).collect();
    let first = &deltas[0];
    assert_eq!((first["role"].as_str(), first["content"].is_null()), (Some("assistant"), true), "{first}");
    let call = &first["tool_calls"][0];
    assert_eq!(
        (call["index"].as_u64(), call["id"].as_str(), call["type"].as_str()),
        (Some(0), Some("call-1"), Some("function"))
    );
    assert_eq!((call["function"]["name"].as_str(), call["function"]["arguments"].as_str()), (Some("Bash"), Some("")));
    let pieces: String =
        deltas[1..].iter().filter_map(|d| d["tool_calls"][0]["function"]["arguments"].as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&pieces).unwrap(), arguments, "the argument pieces join to the JSON");
    let finish: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect();
    assert_eq!(finish, ["tool_calls"]);
    assert!(chunks.last().unwrap()["usage"].is_object(), "a usage chunk last");

    let follow_up = json!([
        {"role": "user", "content": "please"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call-1", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call-1", "content": "(Command completed with no output)"}
    ]);
    let chunks = chat(&server, follow_up).await;
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Done.");
    assert!(chunks.iter().all(|c| c["choices"][0]["delta"].get("tool_calls").is_none()), "no call again");
    assert_eq!(server.tool_result("call-1").as_deref(), Some("(Command completed with no output)"));
    assert_eq!(server.tool_result("call-2"), None);
}
