//! The user token examples of docs/operations.md run as written: the shell
//! one (curl and openssl) with bash, the one with Node's built-in crypto
//! with node, each against a bridge on port 0 that verifies user tokens
//! with a known secret. The token each prints must be taken by the bridge
//! and grant what the example says: its conversation, nobody else's.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// The secret the examples read from LETTA_BRIDGE_USER_TOKEN_SECRET here.
const SECRET: &str = "docs-example-user-token-secret-0000000001";

/// Longest an example may take to run.
const RUN: Duration = Duration::from_secs(30);

/// The code of the first ```` ```lang ```` block after the line that starts
/// with `marker` in docs/operations.md.
fn example(marker: &str, lang: &str) -> String {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).unwrap();
    let at = guide
        .lines()
        .position(|l| l.starts_with(marker))
        .unwrap_or_else(|| panic!("docs/operations.md has no line starting with {marker:?}"));
    let mut lines = guide.lines().skip(at).skip_while(|l| *l != format!("```{lang}")).skip(1);
    let code: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
    assert!(!code.is_empty(), "no ```{lang} block after {marker:?} in docs/operations.md");
    code.join("\n") + "\n"
}

/// Runs `program` with `args` as a reader would, with the bridge's URL in
/// `B` and the secret in LETTA_BRIDGE_USER_TOKEN_SECRET; its stdout.
async fn run(app: &TestApp, program: &'static str, args: Vec<String>) -> String {
    let base = app.url("");
    // A blocking thread: the bridge answers the example's requests meanwhile.
    let ran = tokio::task::spawn_blocking(move || -> std::io::Result<Output> {
        Command::new(program).args(args).env("B", base).env("LETTA_BRIDGE_USER_TOKEN_SECRET", SECRET).output()
    });
    let out = tokio::time::timeout(RUN, ran)
        .await
        .unwrap_or_else(|_| panic!("{program} ran longer than {RUN:?}"))
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout.into_owned()
}

/// The claims of `token`, verified here as the bridge would (HS256, the
/// secret, `aud` `letta-bridge`).
fn claims(token: &str) -> Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["letta-bridge"]);
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap_or_else(|e| panic!("the example's token does not verify ({e}): {token}"))
        .claims
}

/// Checks that the bridge takes `token` and that it grants what it says: a
/// stream (through `ticket`, else one minted with the token) reads the
/// events of its scope and no other's, and its input reaches that
/// conversation only.
async fn grants_its_conversation_only(app: &TestApp, rt: &mut FakeRuntime, token: &str, ticket: Option<String>) {
    let ticket = match ticket {
        Some(ticket) => ticket,
        None => {
            let res = app.post_as(Some(token), "/tickets", json!({})).await;
            let answer: Value = res.json().await.unwrap();
            let ticket = answer["ticket"].as_str().unwrap_or_else(|| panic!("POST /tickets with its token: {answer}"));
            ticket.to_owned()
        }
    };
    let claims = claims(token);
    let scope = &claims["authorization_details"][0]["scopes"][0];
    let (agent, conversation) = (scope["agent_id"].as_str().unwrap(), scope["conversation_id"].as_str().unwrap());
    assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap(), "{claims}");
    let mut sse = Sse::open(app.http.get(app.url(&format!("/events?ticket={ticket}")))).await;
    rt.emit("update_queue", agent, "someone-elses-conversation", json!({"n": 1}));
    rt.emit("update_queue", agent, conversation, json!({"n": 2}));
    let first = sse.next().await;
    assert_eq!((first.event.as_str(), &first.data["n"]), ("update_queue", &json!(2)), "only its own conversation");
    let message = |conversation: &str| {
        json!({"runtime": {"agent_id": agent, "conversation_id": conversation},
               "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}})
    };
    let res = app.post_as(Some(token), "/input", message("someone-elses-conversation")).await;
    assert_eq!(assert_problem(res, 403).await["type"], "urn:letta-bridge:insufficient-scope");
    assert_eq!(app.post_as(Some(token), "/input", message(conversation)).await.status(), 202);
    assert_eq!(rt.next_frame().await["runtime"]["conversation_id"], conversation);
}

#[tokio::test]
async fn the_docs_shell_example_mints_a_user_token_the_bridge_takes() {
    let app = spawn_app_with(|c| c.user_token_secret = Some(SECRET.into())).await;
    let mut rt = app.runtime("dev-1").await;
    let script = example("**Shell, curl and openssl**", "sh") + "printf '\\n%s\\n' \"$USER_TOKEN\"\n";
    let out = run(&app, "bash", vec!["-euo".into(), "pipefail".into(), "-c".into(), script]).await;
    let token = out.lines().last().unwrap_or_default().to_owned();
    let answer = out.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("its curl printed no JSON:\n{out}"));
    let answer: Value = serde_json::from_str(answer).unwrap();
    let ticket = answer["ticket"].as_str().unwrap_or_else(|| panic!("POST /tickets with its token: {answer}"));
    grants_its_conversation_only(&app, &mut rt, &token, Some(ticket.to_owned())).await;
}

#[tokio::test]
async fn the_docs_node_example_mints_a_user_token_the_bridge_takes() {
    if Command::new("node").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "node is missing (CI installs it: .ci/test)");
        eprintln!("SKIPPED: no node on PATH");
        return;
    }
    let app = spawn_app_with(|c| c.user_token_secret = Some(SECRET.into())).await;
    let mut rt = app.runtime("dev-1").await;
    let code = example("**Node, built-in crypto**", "js");
    let out = run(&app, "node", vec!["--input-type=module".into(), "-e".into(), code]).await;
    let token = out.lines().last().unwrap_or_default().to_owned();
    grants_its_conversation_only(&app, &mut rt, &token, None).await;
}
