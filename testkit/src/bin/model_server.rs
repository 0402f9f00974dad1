//! `model-server`: the kit's scripted OpenAI-compatible model server
//! (`letta_bridge_testkit::model_server`) as a program, for test scripts
//! (tests/e2e) that run the real runtime with `LMSTUDIO_BASE_URL` pointing
//! at it. Replies are JSON ([`Reply::from_json`]): `{"text": ["Hel", "lo"],
//! "delay_ms": 0, "tool_call": {"id", "name", "arguments"}, "then": <reply>}`.
//!
//! Control channel, one JSON object per line:
//! - stdout: first `{"url": "http://127.0.0.1:<port>/v1"}` (the
//!   `LMSTUDIO_BASE_URL`), then `{"plan": <n>}` when a plan from stdin is in
//!   place, and one `{"chat": <n>, "after_tool": <bool>, "user": "<last user
//!   message>"}` per chat completion received;
//! - stdin: `{"plan": [<reply>, …]}` replaces the plan: each new chat
//!   completion takes the next reply, and the last one taken stays.
//!
//! The end of stdin ends the program, so it never outlives its script.
//! Notes go to stderr; a bad plan on the command line exits 2.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Parser;
use letta_bridge_testkit::model_server::{ModelServer, Reply, carries_tool_result, last_user_text};
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[derive(Parser, Debug)]
#[command(about = "A scripted OpenAI-compatible model server; JSON lines on stdout and stdin")]
struct Args {
    /// The first plan: a JSON list of replies (default: one short greeting).
    #[arg(long)]
    plan: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let plan = match args.plan.as_deref().map(parse_plan).transpose() {
        Ok(plan) => plan.unwrap_or_else(|| vec![Reply::new(["Hello", " from", " the", " scripted", " model."])]),
        Err(e) => {
            eprintln!("model-server: --plan: {e}");
            return ExitCode::from(2);
        }
    };
    let server = ModelServer::start(Reply::new(Vec::<String>::new())).await;
    server.set_plan(plan);
    say(json!({"url": server.base_url()}));
    let mut chats = server.chats();
    let mut reported = 0;
    let mut stdin = stdin_lines();
    loop {
        tokio::select! {
            changed = chats.changed() => {
                if changed.is_err() {
                    return ExitCode::FAILURE;
                }
                let requests = server.chat_requests();
                for (n, request) in requests.iter().enumerate().skip(reported) {
                    let body = &request.body;
                    say(json!({"chat": n + 1, "after_tool": carries_tool_result(body), "user": last_user_text(body)}));
                }
                reported = requests.len();
            }
            line = stdin.recv() => {
                let Some(line) = line else { return ExitCode::SUCCESS };
                let plan = serde_json::from_str::<Value>(&line)
                    .map_err(|e| e.to_string())
                    .and_then(|v| v.get("plan").map(Value::to_string).ok_or_else(|| "no \"plan\" field".to_owned()))
                    .and_then(|plan| parse_plan(&plan));
                match plan {
                    Ok(plan) => {
                        let n = plan.len();
                        server.set_plan(plan);
                        say(json!({"plan": n}));
                    }
                    Err(e) => eprintln!("model-server: stdin line ignored ({e}): {line}"),
                }
            }
        }
    }
}

/// A JSON list of replies.
fn parse_plan(text: &str) -> Result<Vec<Reply>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Some(items) = value.as_array() else { return Err(format!("a plan is a JSON list of replies, not {value}")) };
    items.iter().map(Reply::from_json).collect()
}

/// One line on stdout (a reader that went away is no reason to stop serving).
fn say(line: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Stdin's non-empty lines, read on a thread of their own (a blocking read
/// must not stall the server); the channel closes at the end of stdin.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if !line.trim().is_empty() && tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
