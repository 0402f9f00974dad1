//! The `fake-runtime` binary against a stand-in for the bridge's runtime
//! socket: it answers with the recorded frames as the library's
//! `FakeRuntime` does, prints every frame it gets on stdout, sends every
//! stdin line, and exits with the socket.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use futures_util::{SinkExt, StreamExt};
use letta_bridge_testkit::WAIT;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response};

const TOKEN: &str = "bin-runtime-token-000000001";

/// The program, its stdin, and its stdout lines as they come.
struct Program {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Program {
    fn start(url: &str, flags: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fake-runtime"))
            .args(["--url", url, "--token", TOKEN])
            .args(flags)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("fake-runtime starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
        Self { child, lines }
    }

    /// The next stdout line, as JSON.
    fn line(&self) -> Value {
        let line = self.lines.recv_timeout(WAIT).expect("a stdout line in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is JSON ({e}): {line}"))
    }

    fn write(&mut self, frame: &Value) {
        writeln!(self.child.stdin.as_mut().unwrap(), "{frame}").expect("stdin written");
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Listens for the program, starts it, and takes its socket after checking
/// its bearer token and its JSON ping (answered, so it prints the pong).
async fn connected(flags: &[&str]) -> (Program, WebSocketStream<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let program = Program::start(&format!("ws://{}/ws?deviceId=bin-1", listener.local_addr().unwrap()), flags);
    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept()).await.expect("it connects").unwrap();
    let mut auth = None;
    let mut socket = tokio_tungstenite::accept_hdr_async(tcp, KeepAuth(&mut auth)).await.unwrap();
    assert_eq!(auth, Some(format!("Bearer {TOKEN}")), "the token goes as a bearer token");
    assert_eq!(next(&mut socket).await, json!({"type": "ping"}));
    socket.send(Message::text(r#"{"type":"pong"}"#)).await.unwrap();
    assert_eq!(program.line(), json!({"type": "pong"}), "the pong says the bridge serves the socket");
    (program, socket)
}

/// Keeps the upgrade request's Authorization header.
struct KeepAuth<'a>(&'a mut Option<String>);

impl Callback for KeepAuth<'_> {
    fn on_request(self, req: &Request, res: Response) -> Result<Response, ErrorResponse> {
        *self.0 = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(res)
    }
}

async fn next(socket: &mut WebSocketStream<TcpStream>) -> Value {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await.expect("a frame in time").unwrap().unwrap() {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            _ => continue,
        }
    }
}

async fn send(socket: &mut WebSocketStream<TcpStream>, frame: &Value) {
    socket.send(Message::text(frame.to_string())).await.unwrap();
}

fn input(id: &str, payload: Value) -> Value {
    json!({"type": "input", "request_id": id, "runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"},
           "payload": payload})
}

#[tokio::test]
async fn it_answers_with_the_recorded_frames_prints_what_it_gets_and_sends_what_it_reads() {
    let (mut program, mut socket) = connected(&[]).await;

    let approval = input("r-approval", json!({"kind": "approval_response", "request_id": "a-1"}));
    send(&mut socket, &approval).await;
    let accepted = next(&mut socket).await;
    assert_eq!(
        (accepted["type"].as_str(), accepted["request_id"].as_str()),
        (Some("input_accepted"), Some("r-approval"))
    );
    assert_eq!(accepted["accepted"], true, "an approval is accepted, as by the library's FakeRuntime");
    assert_eq!(program.line(), approval, "the frame is printed as received");

    // A message gets its input_accepted only: the script plays the turn.
    let message =
        input("r-message", json!({"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}));
    send(&mut socket, &message).await;
    assert_eq!(next(&mut socket).await["request_id"], "r-message");
    assert_eq!(program.line()["request_id"], "r-message");
    let finished = json!({"type": "turn_finished", "runtime": message["runtime"], "stop_reason": "end_turn"});
    program.write(&finished);
    assert_eq!(next(&mut socket).await, finished, "a stdin line goes out as a frame, and nothing before it");

    // A sync without a runtime scope is dropped, as the runtime drops it.
    send(&mut socket, &json!({"type": "sync", "request_id": "r-sync"})).await;
    let abort = json!({"type": "abort_message", "request_id": "r-abort", "runtime": message["runtime"]});
    send(&mut socket, &abort).await;
    let reply = next(&mut socket).await;
    assert_eq!((reply["type"].as_str(), reply["aborted"].as_bool()), (Some("abort_message_response"), Some(false)));

    socket.close(None).await.unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let mut program = program;
        program.child.wait()
    });
    let status = status.await.unwrap().unwrap();
    assert!(status.success(), "a close from the bridge ends it cleanly: {status}");
}

/// The frames up to the first of type `until`; the assistant text among them.
async fn read_until(socket: &mut WebSocketStream<TcpStream>, until: &str) -> (Vec<Value>, String) {
    let (mut frames, mut text) = (Vec::new(), String::new());
    loop {
        let frame = next(socket).await;
        if frame["type"] == "stream_delta" && frame["delta"]["message_type"] == "assistant_message" {
            text.push_str(frame["delta"]["content"][0]["text"].as_str().unwrap());
        }
        let done = frame["type"] == until;
        frames.push(frame);
        if done {
            return (frames, text);
        }
    }
}

#[tokio::test]
async fn with_play_turns_a_message_or_an_approval_gets_the_whole_recorded_turn() {
    let (_program, mut socket) = connected(&["--play-turns"]).await;
    let message = input("r-turn", json!({"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}));
    let approval = input("r-approved", json!({"kind": "approval_response", "request_id": "a-1"}));
    // The recorded turns: the scripted reply, and the text after the allowed tool call.
    for (command, expected) in [(message, "Hello from the scripted model."), (approval, "Created the file.")] {
        send(&mut socket, &command).await;
        let (frames, text) = read_until(&mut socket, "turn_finished").await;
        assert_eq!(frames.last().unwrap()["runtime"], command["runtime"], "the recorded turn in this command's scope");
        assert_eq!(text, expected, "after {}", command["request_id"]);
    }
}

#[tokio::test]
async fn with_ask_approval_a_message_stops_at_the_recorded_approval_request_which_a_denial_ends() {
    let (_program, mut socket) = connected(&["--ask-approval", "--play-turns"]).await;
    let message = input("r-ask", json!({"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}));
    send(&mut socket, &message).await;
    let (frames, _) = read_until(&mut socket, "control_request").await;
    assert_eq!(frames[0]["request_id"], "r-ask", "input_accepted first");
    let asked = frames.last().unwrap();
    assert_eq!(
        (asked["request"]["subtype"].as_str(), asked["request"]["tool_name"].as_str()),
        (Some("can_use_tool"), Some("Bash"))
    );
    let deny = json!({"kind": "approval_response", "request_id": asked["request_id"],
                      "decision": {"behavior": "deny", "message": "no"}});
    send(&mut socket, &input("r-deny", deny)).await;
    let (frames, text) = read_until(&mut socket, "turn_finished").await;
    assert!(
        frames.iter().any(|f| f["type"] == "input_accepted" && f["request_id"] == "r-deny" && f["accepted"] == true)
    );
    assert!(
        frames.iter().any(|f| f["delta"]["message_type"] == "tool_return_message" && f["delta"]["status"] == "error")
    );
    assert_eq!(text, "Understood, I will not.", "the recorded text after a denial");
}

#[test]
fn it_exits_with_failure_when_nothing_listens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut program = Program::start(&format!("ws://127.0.0.1:{port}/ws"), &[]);
    assert_eq!(program.child.wait().unwrap().code(), Some(1));
}
