//! Writes a recording as fixtures: one JSON file per exchange, normalised
//! (`normalise`), plus `timings.json` with the volatile measurements kept
//! apart so that re-recording the same version gives a small diff.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::normalise::Normaliser;
use crate::recording::{Exchange, Recording, Step};
use crate::server::Captured;
use crate::session::Received;

/// `tests/fixtures/letta-code-<version>` (or `$RECORD_OUT`).
/// `package` is the runtime's installed package folder (it shows in paths).
pub fn fixtures(rec: &Recording, package: Option<&Path>) -> PathBuf {
    let register = rec.http_before_socket.iter().find(|c| c.path == "/v1/environments/register");
    let body = register.and_then(|c| c.body.clone()).unwrap_or(Value::Null);
    let version = body["metadata"]["lettaCodeVersion"].as_str().unwrap_or("unknown").to_owned();
    let dir = match std::env::var_os("RECORD_OUT") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/letta-code-{version}")),
    };
    std::fs::create_dir_all(&dir).expect("fixtures dir");
    // Start clean: an exchange dropped from the script must not linger.
    for entry in std::fs::read_dir(&dir).expect("fixtures dir").flatten() {
        if entry.path().extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(entry.path()).expect("old fixture removed");
        }
    }

    let mut n = Normaliser::default();
    n.name(rec.home.to_string_lossy(), "<home>");
    if let Some(parent) = rec.home.parent() {
        n.name(parent.to_string_lossy(), "<tmp>");
    }
    if let Some(p) = package {
        n.name(p.to_string_lossy(), "<runtime-package>");
    }
    n.name(&rec.server, "<server>");
    n.name(&rec.model_server, "<model-server>");
    n.name(&rec.agent_id, "<agent-id>");
    n.name(&rec.conversation_id, "<conversation-id>");
    for (key, placeholder) in [("deviceId", "<device-id>"), ("listenerInstanceId", "<listener-instance-id>")] {
        if let Some(v) = body[key].as_str() {
            n.name(v, placeholder);
        }
    }
    let recorded_with = format!("letta-code {version}");
    let mut timings = serde_json::Map::new();
    let ms = |d: Duration| d.as_millis() as u64;

    n.new_file();
    let http: Vec<Value> = rec.http_before_socket.iter().map(|c| request(&mut n, c)).collect();
    save(
        &dir,
        "register",
        json!({
            "recorded_with": recorded_with,
            "about": "the HTTP requests before the WebSocket, in order, with what the recorder answered (as the bridge does)",
            "requests": http,
        }),
    );
    timings.insert(
        "startup".into(),
        json!({
            "requests_ms_after_start": rec.http_before_socket.iter().map(|c| json!([c.path, ms(c.at - rec.started_at)])).collect::<Vec<_>>(),
            "connected_ms_after_start": ms(rec.connected_at - rec.started_at),
        }),
    );

    n.new_file();
    save(
        &dir,
        "connect",
        json!({
            "recorded_with": recorded_with,
            "about": "the WebSocket upgrade, and every frame in the first 3 s after it (no command sent yet)",
            "upgrade": request(&mut n, &rec.upgrade),
            "frames": frames(&mut n, &rec.first_frames),
        }),
    );
    timings.insert("connect".into(), offsets(&rec.first_frames, rec.connected_at));

    for Exchange { name, about, steps } in &rec.exchanges {
        n.new_file();
        let steps_json: Vec<Value> = steps.iter().map(|s| step(&mut n, s)).collect();
        save(&dir, name, json!({"recorded_with": recorded_with, "about": about, "steps": steps_json}));
        let t: Vec<Value> = steps.iter().map(|s| offsets(&s.frames, s.sent_at)).collect();
        timings.insert((*name).into(), Value::Array(t));
    }

    // Ping cadence, in whole seconds after connecting (stable across runs).
    let after = |at: Instant| (at - rec.connected_at).as_secs_f64().round() as u64;
    let pings: Vec<Value> =
        rec.pings.iter().map(|p| json!({"frame": n.frame(&p.frame), "after_connect_s": after(p.at)})).collect();
    let control: Vec<u64> = rec.control_pings.iter().map(|&at| after(at)).collect();
    n.new_file();
    save(
        &dir,
        "ping",
        json!({
            "recorded_with": recorded_with,
            "about": "JSON pings the runtime sent (each answered with {\"type\":\"pong\"}), and WebSocket ping control frames it sent",
            "runtime_pings": pings,
            "runtime_control_pings_after_connect_s": control,
        }),
    );
    timings.insert("pings_ms_after_connect".into(), rec.pings.iter().map(|p| ms(p.at - rec.connected_at)).collect());

    for r in &rec.reconnections {
        n.new_file();
        let requests: Vec<Value> = r.requests.iter().map(|c| request(&mut n, c)).collect();
        let steps: Vec<Value> = r.steps.iter().map(|s| step(&mut n, s)).collect();
        save(
            &dir,
            r.name,
            json!({
                "recorded_with": recorded_with,
                "about": r.about,
                "close": {"code": r.close.0, "reason": r.close.1},
                "old_socket_frames": frames(&mut n, &r.old_socket),
                "requests": requests,
                "reconnected": r.reconnected,
                "first_frames": frames(&mut n, &r.first_frames),
                "steps": steps,
                "runtime_alive_after": r.alive_after,
            }),
        );
        timings.insert(
            r.name.into(),
            json!({
                "requests_ms_after_close": r.requests.iter().map(|c| json!([c.path, ms(c.at.saturating_duration_since(r.closed_at))])).collect::<Vec<_>>(),
                "steps": r.steps.iter().map(|s| offsets(&s.frames, s.sent_at)).collect::<Vec<_>>(),
            }),
        );
    }

    n.new_file();
    save(
        &dir,
        "disconnect",
        json!({
            "recorded_with": recorded_with,
            "about": "what reached the server after the runtime got SIGTERM",
            "frames": frames(&mut n, &rec.after_stop),
        }),
    );
    timings.insert("disconnect".into(), offsets(&rec.after_stop, rec.stopped_at));
    timings.insert("recording_total_ms".into(), ms(rec.finished_at - rec.started_at).into());
    save(&dir, "timings", Value::Object(timings));
    dir
}

fn save(dir: &Path, name: &str, value: Value) {
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn request(n: &mut Normaliser, c: &Captured) -> Value {
    json!({
        "method": c.method,
        "path": n.string(&c.path),
        "query": c.query.as_deref().map(|q| n.string(q)),
        "headers": n.headers(&c.headers),
        "body": c.body.as_ref().map(|b| n.value(b)),
        "answer": {"status": c.status, "body": c.answer.as_ref().map(|b| n.value(b))},
    })
}

fn frames(n: &mut Normaliser, frames: &[Received]) -> Vec<Value> {
    frames.iter().map(|r| n.frame(&r.frame)).collect()
}

fn step(n: &mut Normaliser, s: &Step) -> Value {
    let mut step = json!({
        "send": s.send.as_ref().map(|v| n.value(v)),
        "frames": frames(n, &s.frames),
        "timed_out": s.timed_out,
        "http_requests": s.http.iter().map(|c| request(n, c)).collect::<Vec<_>>(),
        "model_requests": s.model.iter().map(|m| n.string(m)).collect::<Vec<_>>(),
    });
    // Only steps whose model calls carried a tool's result have the field.
    if !s.tool_results.is_empty() {
        step["model_tool_results"] = s.tool_results.iter().map(|m| n.value(m)).collect();
    }
    step
}

/// `[type, ms after t0]` per frame.
fn offsets(frames: &[Received], t0: Instant) -> Value {
    frames.iter().map(|r| json!([r.frame["type"], r.at.saturating_duration_since(t0).as_millis() as u64])).collect()
}
