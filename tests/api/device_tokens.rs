//! Per-device runtime tokens (`LETTA_BRIDGE_RUNTIME_TOKENS_FILE`): a token
//! registers and connects only as the devices its line names, never takes
//! over another device's online runtime, and the file is re-read on SIGHUP.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use letta_bridge::auth::DeviceTokens;
use letta_bridge::{Application, Config};
use letta_bridge_testkit::bridge::{logged_addr, without_bridge_env};
use serde_json::{Value, json};

use crate::helpers::*;

/// dev-a's token.
const TOKEN_A: &str = "device-token-a-000000000001";
/// dev-b's token.
const TOKEN_B: &str = "device-token-b-000000000001";
/// A `*` line's token.
const TOKEN_ANY: &str = "device-token-any-0000000001";

/// A tokens file in the temp folder, removed on drop.
struct TokensFile(PathBuf);

impl TokensFile {
    fn new(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("letta-bridge-runtime-tokens-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.0, text).unwrap();
    }
}

impl Drop for TokensFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn default_lines() -> String {
    format!("# laptops\n{TOKEN_A} dev-a\n\n{TOKEN_B} dev-b,dev-b2\n{TOKEN_ANY} *\n")
}

/// The app with `file` as its runtime tokens file (and the test's shared
/// runtime token unless `shared` is false); also the tokens' handle, which
/// SIGHUP reloads.
async fn spawn_with_file(file: &TokensFile, shared: bool) -> (TestApp, DeviceTokens) {
    let mut config = Config::for_tests();
    config.runtime_token = shared.then(|| RUNTIME_TOKEN.into());
    config.client_token = Some(CLIENT_TOKEN.into());
    config.admin_token = Some(ADMIN_TOKEN.into());
    config.runtime_tokens_file = Some(file.0.clone());
    let app = Application::build(config).await.expect("the app builds");
    let tokens = app.device_tokens().expect("the file is loaded");
    let addr = app.local_addr();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    (TestApp { addr, http, shutdown, server: Some(server) }, tokens)
}

impl TestApp {
    /// Registers `device` with `token` and connects to its `wsUrl`, ready.
    async fn device_runtime(&self, token: &str, device: &str) -> (FakeRuntime, String) {
        let res = self.register_as(Some(token), device).await;
        assert_eq!(res.status(), 200, "{device} registers");
        let reg: Value = res.json().await.unwrap();
        let connection = reg["connectionId"].as_str().unwrap().to_owned();
        let url = format!("{}?deviceId={device}", reg["wsUrl"].as_str().unwrap());
        (FakeRuntime::connect_ready(&url, token).await, connection)
    }

    async fn runtime_status_as(&self, token: &str) -> u16 {
        let url = self.url("/v1/agents/agent-1/runtime-status?conversation_ids=conv-1");
        self.http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16()
    }
}

fn runtime<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("{id} in {list}"))
}

#[tokio::test]
async fn a_device_token_registers_and_connects_as_its_own_device() {
    let file = TokensFile::new(&default_lines());
    let (app, _) = spawn_with_file(&file, true).await;
    let (mut rt, connection) = app.device_runtime(TOKEN_A, "dev-a").await;
    let list = app.get_json("/runtimes").await;
    assert_eq!(
        (runtime(&list, "dev-a")["online"].as_bool(), runtime(&list, "dev-a")["connection_id"].as_str()),
        (Some(true), Some(connection.as_str()))
    );
    // A token naming several devices may be each; the direct socket too.
    let _b2 = FakeRuntime::connect_ready(&app.ws_url("/ws?deviceId=dev-b2"), TOKEN_B).await;
    assert_eq!(app.runtime_status_as(TOKEN_A).await, 200);
    assert_eq!(app.runtime_status_as(TOKEN_B).await, 200, "runtime-status takes any token of the file");
    assert_eq!(app.runtime_status_as("device-token-unknown-00001").await, 401);
    let res = app
        .post_as(Some(ADMIN_TOKEN), "/runtimes/dev-a/commands", json!({"type": "read_file", "path": "/tmp/x"}))
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(rt.next_frame().await["type"], "read_file");
}

#[tokio::test]
async fn a_device_token_cannot_take_over_another_device_and_the_online_runtime_keeps_its_commands() {
    let file = TokensFile::new(&default_lines());
    let (app, _) = spawn_with_file(&file, true).await;
    let (mut victim, victim_connection) = app.device_runtime(TOKEN_B, "dev-b").await;
    let mut sse = app.events("?types=runtime_online,runtime_offline,marker").await;

    // Registering as dev-b with dev-a's token: 403, and no connection id.
    let problem = assert_problem(app.register_as(Some(TOKEN_A), "dev-b").await, 403).await;
    assert!(problem["detail"].as_str().unwrap().contains("dev-b"), "{problem}");
    // Its socket, at the victim's own wsUrl or the direct one: refused.
    for path in [
        format!("/ws/{victim_connection}?deviceId=dev-b"),
        format!("/ws/{victim_connection}"),
        "/ws?deviceId=dev-b".into(),
    ] {
        let mut impostor = FakeRuntime::connect(&app.ws_url(&path), Some(TOKEN_A)).await.unwrap();
        assert_eq!(
            impostor.closed().await,
            Some((1008, "this runtime token may not connect as this deviceId".into())),
            "{path}"
        );
    }

    // The victim was never replaced: online, the same connection, and the
    // admin's command reaches it (not an impostor).
    let list = app.get_json("/runtimes").await;
    assert_eq!(runtime(&list, "dev-b")["online"], true);
    assert_eq!(runtime(&list, "dev-b")["connection_id"], victim_connection.as_str());
    let command = json!({"type": "secret_list", "request_id": "after-attempts"});
    assert_eq!(app.post_as(Some(ADMIN_TOKEN), "/runtimes/dev-b/commands", command).await.status(), 202);
    let seen = victim.next_frame().await;
    assert_eq!((seen["type"].as_str(), seen["request_id"].as_str()), (Some("secret_list"), Some("after-attempts")));
    // Nothing went online or offline meanwhile: the next status-or-marker
    // event is the victim's marker.
    victim.emit("marker", "agent-1", "conv-1", json!({}));
    assert_eq!(sse.next().await.event, "marker", "no runtime_online or runtime_offline before it");
}

#[tokio::test]
async fn a_star_line_and_the_shared_token_grant_any_device() {
    let file = TokensFile::new(&default_lines());
    let (app, _) = spawn_with_file(&file, true).await;
    let (_any, _) = app.device_runtime(TOKEN_ANY, "dev-anything").await;
    let (_shared, _) = app.device_runtime(RUNTIME_TOKEN, "dev-other").await;
    let list = app.get_json("/runtimes").await;
    assert_eq!(runtime(&list, "dev-anything")["online"], true);
    assert_eq!(runtime(&list, "dev-other")["online"], true);
}

#[tokio::test]
async fn with_the_file_and_no_shared_token_only_the_file_grants_runtimes() {
    let file = TokensFile::new(&default_lines());
    let (app, _) = spawn_with_file(&file, false).await;
    assert_problem(app.register_as(Some(RUNTIME_TOKEN), "dev-a").await, 401).await;
    let (_a, _) = app.device_runtime(TOKEN_A, "dev-a").await;
}

#[tokio::test]
async fn a_reload_adds_and_removes_tokens_and_a_bad_file_keeps_the_tokens_in_force() {
    let file = TokensFile::new(&format!("{TOKEN_A} dev-a\n"));
    let (app, tokens) = spawn_with_file(&file, false).await;
    assert_problem(app.register_as(Some(TOKEN_B), "dev-b").await, 401).await;

    file.write(&format!("{TOKEN_B} dev-b\n"));
    tokens.reload().expect("the new file loads");
    assert_eq!(app.register_as(Some(TOKEN_B), "dev-b").await.status(), 200, "added");
    assert_problem(app.register_as(Some(TOKEN_A), "dev-a").await, 401).await;
    let mut removed = FakeRuntime::connect(&app.ws_url("/ws?deviceId=dev-a"), Some(TOKEN_A)).await.unwrap();
    assert_eq!(removed.closed().await, Some((1008, "unauthorized".into())), "removed");

    file.write(&format!("{TOKEN_B} dev-b\n{TOKEN_A}\n"));
    let err = tokens.reload().unwrap_err();
    assert_eq!(err.line(), Some(2), "{err}");
    assert!(!err.to_string().contains(TOKEN_A), "no token in the error: {err}");
    assert_eq!(app.register_as(Some(TOKEN_B), "dev-b").await.status(), 200, "the tokens in force stay");
}

#[tokio::test]
async fn a_runtime_whose_token_a_reload_takes_away_is_closed_with_1008_and_goes_offline() {
    let file = TokensFile::new(&format!("{TOKEN_A} dev-a\n{TOKEN_B} dev-b\n"));
    let (app, tokens) = spawn_with_file(&file, false).await;
    let url = |device: &str| app.ws_url(&format!("/ws?deviceId={device}"));
    let mut kept = FakeRuntime::connect_ready(&url("dev-b"), TOKEN_B).await;
    let mut cut = FakeRuntime::connect_ready(&url("dev-a"), TOKEN_A).await;
    let mut events = app.events("?types=runtime_offline").await;

    // A reload that changes nothing for dev-a's token keeps it connected.
    file.write(&format!("{TOKEN_A} dev-a,dev-c\n{TOKEN_B} dev-b\n"));
    tokens.reload().expect("loads");
    cut.send(json!({"type": "ping"}));
    assert_eq!(cut.next_frame().await["type"], "pong", "still granted: still connected");
    file.write(&format!("{TOKEN_B} dev-b\n"));
    tokens.reload().expect("loads");
    assert_eq!(cut.closed().await, Some((1008, "runtime token revoked".into())));
    let offline = events.next_of("runtime_offline").await;
    assert_eq!(
        (offline.data["runtime_id"].as_str(), offline.data["reason"].as_str()),
        (Some("dev-a"), Some("revoked"))
    );
    kept.send(json!({"type": "ping"}));
    assert_eq!(kept.next_frame().await["type"], "pong", "the other runtime stays");
}

#[tokio::test]
async fn a_malformed_tokens_file_stops_the_start_with_its_line_number() {
    let cases = [
        (format!("{TOKEN_A}\n"), "line 1", "expected `<token> <deviceId>"),
        (format!("# c\n{TOKEN_A} dev-a\n{TOKEN_A} dev-b\n"), "line 3", "the same token as line 2"),
        ("short dev-a\n".to_owned(), "line 1", "shorter than 16"),
        (format!("{CLIENT_TOKEN} dev-a\n"), "line 1", "LETTA_BRIDGE_CLIENT_TOKEN"),
        (format!("{ADMIN_TOKEN} dev-a\n"), "line 1", "LETTA_BRIDGE_ADMIN_TOKEN"),
        (format!("\n{TOKEN_A} dev/a\n"), "line 2", "not a deviceId"),
    ];
    for (text, line, why) in cases {
        let file = TokensFile::new(&text);
        let mut config = Config::for_tests();
        config.client_token = Some(CLIENT_TOKEN.into());
        config.admin_token = Some(ADMIN_TOKEN.into());
        config.runtime_tokens_file = Some(file.0.clone());
        let Err(err) = Application::build(config).await else { panic!("{text:?} was accepted") };
        let err = format!("{err:#}");
        assert!(err.contains(line) && err.contains(why), "{text:?}: {err}");
        for token in [TOKEN_A, CLIENT_TOKEN, ADMIN_TOKEN] {
            assert!(!err.contains(token), "a token in the error: {err}");
        }
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_letta-bridge");

/// Reads `lines` until one contains `needle`; panics when the stream ends.
fn read_until(lines: &mut impl Iterator<Item = std::io::Result<String>>, needle: &str, seen: &mut String) -> String {
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(needle) {
            return line;
        }
    }
    panic!("no line with {needle:?}; seen:\n{seen}");
}

#[tokio::test]
async fn the_binary_prints_no_runtime_token_with_the_file_and_re_reads_it_on_sighup() {
    let file = TokensFile::new(&format!("{TOKEN_A} dev-a\n"));
    let mut cmd = Command::new(BIN);
    without_bridge_env(&mut cmd)
        .args(["--listen", "127.0.0.1:0", "--runtime-tokens-file"])
        .arg(&file.0)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id().to_string();
    // The blocking reads below fail instead of hanging: past 30 s the
    // bridge is killed and its pipes close.
    std::thread::spawn({
        let pid = pid.clone();
        move || {
            std::thread::sleep(std::time::Duration::from_secs(30));
            // Only if that pid is still a bridge (pids are reused once it exits).
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("letta-bridge") {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
    });
    // Killed when the test ends, however it ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    let _guard = Kill(child);

    let mut printed = String::new();
    let remote = read_until(&mut stdout, "letta remote", &mut printed);
    assert!(!printed.contains("LETTA_BRIDGE_RUNTIME_TOKEN="), "no shared runtime token is generated: {printed}");
    assert!(remote.contains("LETTA_API_KEY=<the device's token from LETTA_BRIDGE_RUNTIME_TOKENS_FILE>"), "{remote}");
    let client = printed.lines().find_map(|l| l.trim().strip_prefix("LETTA_BRIDGE_CLIENT_TOKEN=")).unwrap().to_owned();

    let mut seen = String::new();
    let addr = logged_addr(&read_until(&mut log, "listening", &mut seen)).unwrap().to_owned();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let register = |token: &'static str, device: &'static str| {
        let req = http
            .post(format!("http://{addr}/v1/environments/register"))
            .bearer_auth(token)
            .json(&json!({"deviceId": device}));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(register(TOKEN_A, "dev-a").await, 200);
    assert_eq!(register(TOKEN_B, "dev-b").await, 401);

    file.write(&format!("{TOKEN_B} dev-b\n"));
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    read_until(&mut log, "runtime tokens reloaded", &mut seen);
    assert_eq!(register(TOKEN_B, "dev-b").await, 200, "added by SIGHUP");
    assert_eq!(register(TOKEN_A, "dev-a").await, 401, "removed by SIGHUP");

    file.write(&format!("{TOKEN_B} dev-b\n{TOKEN_A} dev-a extra\n"));
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let refused = read_until(&mut log, "runtime tokens not reloaded", &mut seen);
    assert!(refused.contains("line 2") || refused.contains("line=2"), "{refused}");
    assert_eq!(register(TOKEN_B, "dev-b").await, 200, "a bad file keeps the tokens in force");
    let res = http.get(format!("http://{addr}/healthz")).bearer_auth(&client).send().await.unwrap();
    assert_eq!(res.status(), 200, "still running after two SIGHUPs");
    assert!(![TOKEN_A, TOKEN_B, client.as_str()].iter().any(|t| seen.contains(t)), "a token reached the log:\n{seen}");
}

#[test]
fn a_bad_tokens_file_ends_the_binary_with_exit_code_2_and_the_line_number() {
    let file = TokensFile::new(&format!("{TOKEN_A} dev-a\n{TOKEN_A} dev-b\n"));
    let mut cmd = Command::new(BIN);
    let out = without_bridge_env(&mut cmd)
        .args(["--listen", "127.0.0.1:0", "--runtime-tokens-file"])
        .arg(&file.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 2: the same token as line 1"), "{stderr}");
    assert!(!stderr.contains(TOKEN_A), "{stderr}");
}
