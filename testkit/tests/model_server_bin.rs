//! The `model-server` program: it prints its URL, serves its plan one reply
//! per new chat completion (a tool's follow-up gets the reply's `then`),
//! reports each chat completion on stdout, takes a new plan from stdin, and
//! ends with its stdin.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use letta_bridge_testkit::WAIT;
use letta_bridge_testkit::model_server::Reply;
use serde_json::{Value, json};

struct Program {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Program {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_model-server"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("model-server starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
        Self { child, lines }
    }

    fn line(&self) -> Value {
        let line = self.lines.recv_timeout(WAIT).expect("a stdout line in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is JSON ({e}): {line}"))
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A streaming chat completion; returns the text and the tool call's name, if any.
async fn chat(url: &str, messages: Value) -> (String, Option<String>) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = json!({"model": "fake-model", "stream": true, "messages": messages});
    let text = client.post(format!("{url}/chat/completions")).json(&body).send().await.unwrap().text().await.unwrap();
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let delta = |c: &Value| c["choices"][0]["delta"].clone();
    let content = chunks.iter().filter_map(|c| delta(c)["content"].as_str().map(str::to_owned)).collect();
    let tool = chunks.iter().find_map(|c| delta(c)["tool_calls"][0]["function"]["name"].as_str().map(str::to_owned));
    (content, tool)
}

#[tokio::test]
async fn it_serves_its_plan_in_order_reports_each_chat_and_takes_a_new_plan_from_stdin() {
    let plan = json!([
        {"text": ["One", "."]},
        {"tool_call": {"id": "call-1", "name": "Bash", "arguments": {"command": "touch x"}}, "then": {"text": "Done."}},
        {"text": "Last.", "delay_ms": 10}
    ]);
    let mut program = Program::start(&["--plan", &plan.to_string()]);
    let url = program.line()["url"].as_str().expect("the first line names the URL").to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/v1"), "{url}");

    let user = json!({"role": "user", "content": "hi"});
    assert_eq!(chat(&url, json!([user])).await, ("One.".into(), None));
    assert_eq!(program.line(), json!({"chat": 1, "after_tool": false, "user": "hi"}));
    assert_eq!(chat(&url, json!([user])).await, (String::new(), Some("Bash".into())));
    program.line();
    let result = json!({"role": "tool", "tool_call_id": "call-1", "content": "ok"});
    assert_eq!(chat(&url, json!([user, result])).await, ("Done.".into(), None), "the follow-up gets `then`");
    assert_eq!(program.line()["after_tool"], true);
    for _ in 0..2 {
        assert_eq!(chat(&url, json!([user])).await.0, "Last.", "the last reply stays");
        program.line();
    }

    let stdin = program.child.stdin.as_mut().unwrap();
    writeln!(stdin, "{}", json!({"plan": [{"text": "Replanned."}]})).unwrap();
    assert_eq!(program.line(), json!({"plan": 1}));
    assert_eq!(chat(&url, json!([user])).await.0, "Replanned.");
    program.line();

    drop(program.child.stdin.take());
    let status = tokio::task::spawn_blocking(move || {
        let mut program = program;
        program.child.wait()
    });
    assert!(status.await.unwrap().unwrap().success(), "the end of stdin ends it");
}

#[test]
fn replies_in_json_say_what_is_wrong_with_them() {
    let err = |v: Value| Reply::from_json(&v).unwrap_err();
    assert!(err(json!({"txt": "a"})).contains("unknown reply field \"txt\""));
    assert!(err(json!({"text": [1]})).contains("strings"));
    assert!(err(json!({"delay_ms": -1})).contains("delay_ms"));
    assert!(err(json!({"tool_call": {"id": "c", "name": "Bash", "arguments": "x"}})).contains("arguments"));
    let reply = Reply::from_json(&json!({"text": "a", "then": {"text": ["b"]}})).unwrap();
    assert_eq!((reply.text(), reply.then.map(|t| t.text())), ("a".into(), Some("b".into())));
}
