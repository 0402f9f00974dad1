//! `fake-runtime`: the kit's fake Letta Code runtime as a program, for test
//! scripts (tests/e2e, tests/contract). It connects to a bridge's runtime
//! WebSocket and answers commands with the recorded frames exactly as the
//! library's `FakeRuntime` does (`replies_to`: one behaviour everywhere).
//!
//! Control channel, one JSON value per line:
//! - stdout: every frame the bridge sends, as received. The first thing the
//!   program sends is a JSON ping, so a `{"type":"pong"}` line says the
//!   bridge serves the socket;
//! - stdin: each line is sent to the bridge as a frame (e.g. the
//!   `stream_delta` and `turn_finished` events of a scripted turn). The end
//!   of stdin ends nothing.
//!
//! Notes go to stderr. Exits 0 when the bridge closes the socket, 1 when
//! the upgrade fails or the socket breaks.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Parser;
use letta_bridge_testkit::{FakeRuntime, Seen};
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[derive(Parser, Debug)]
#[command(about = "A fake Letta Code runtime answering with the recorded frames; JSON lines on stdout and stdin")]
struct Args {
    /// The bridge's runtime WebSocket, e.g. `ws://127.0.0.1:8284/ws?deviceId=dev-1`.
    #[arg(long, env = "FAKE_RUNTIME_URL")]
    url: String,
    /// The bridge's runtime token (sent as a bearer token).
    #[arg(long, env = "FAKE_RUNTIME_TOKEN")]
    token: String,
    /// Answer `input` (a message or an approval) with the whole recorded turn
    /// (deltas, `turn_finished`), not only its `input_accepted`.
    #[arg(long)]
    play_turns: bool,
    /// Answer a message `input` with the recorded turn that asks for a tool
    /// approval (up to its `control_request`); with --play-turns, an
    /// approval gets the rest of the recorded turn (allowed or denied).
    #[arg(long)]
    ask_approval: bool,
    /// Answer nothing by itself: only what comes on stdin is sent.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut rt = match FakeRuntime::connect(&args.url, Some(&args.token)).await {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fake-runtime: cannot connect to {}: {e}", args.url);
            return ExitCode::FAILURE;
        }
    };
    if args.play_turns {
        rt.play_recorded_turns();
    }
    if args.ask_approval {
        rt.ask_for_approvals();
    }
    if args.quiet {
        rt.quiet();
    }
    eprintln!("fake-runtime: connected to {}", args.url);
    rt.send(json!({"type": "ping"}));
    let mut stdin = stdin_lines();
    loop {
        tokio::select! {
            seen = rt.recv() => match seen {
                // A reader that went away is no reason to stop answering.
                Seen::Frame(frame) => { let _ = writeln!(std::io::stdout(), "{frame}"); }
                Seen::Ping => {}
                Seen::Close(frame) => {
                    eprintln!("fake-runtime: the bridge closed the socket: {frame:?}");
                    return ExitCode::SUCCESS;
                }
                Seen::Ended => {
                    eprintln!("fake-runtime: the socket ended without a close frame");
                    return ExitCode::FAILURE;
                }
            },
            Some(line) = stdin.recv() => match serde_json::from_str::<Value>(&line) {
                Ok(frame) => rt.send(frame),
                Err(e) => eprintln!("fake-runtime: stdin line is not JSON ({e}): {line}"),
            },
        }
    }
}

/// Stdin's non-empty lines, read on a thread of their own (a blocking read
/// must not stall the socket).
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
