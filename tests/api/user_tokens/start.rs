//! The user token settings at start (a bad one stops the bridge with exit
//! code 2 and a message naming it), and user tokens kept out of the log.

use std::process::Command;

use letta_bridge_testkit::bridge::{BridgeProcess, without_bridge_env};
use serde_json::json;

use super::*;

const BIN: &str = env!("CARGO_BIN_EXE_letta-bridge");

#[test]
fn a_bad_user_token_setting_stops_the_start_with_exit_code_2_naming_it() {
    let secret = ("LETTA_BRIDGE_USER_TOKEN_SECRET", USER_SECRET);
    let previous = ("LETTA_BRIDGE_USER_TOKEN_PREVIOUS_SECRET", "test-user-token-secret-000000000000000");
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("LETTA_BRIDGE_USER_TOKEN_SECRET", "short")], "LETTA_BRIDGE_USER_TOKEN_SECRET must be at least 32 bytes"),
        (
            &[secret, ("LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL", "2026-07-01T12:00:00Z")],
            "LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL is set without LETTA_BRIDGE_USER_TOKEN_PREVIOUS_SECRET",
        ),
        (
            &[secret, previous],
            "LETTA_BRIDGE_USER_TOKEN_PREVIOUS_SECRET is set without LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL",
        ),
        (&[secret, previous, ("LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL", "tomorrow")], "RFC 3339"),
        (
            &[("LETTA_BRIDGE_USER_TOKEN_JWKS_URL", "http://idp.example/jwks.json")],
            "LETTA_BRIDGE_USER_TOKEN_JWKS_URL: must be https://",
        ),
    ];
    for (env, says) in cases {
        let mut cmd = Command::new(BIN);
        without_bridge_env(&mut cmd).args(["--listen", "127.0.0.1:0"]).envs(env.iter().copied());
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(says), "{env:?}: {stderr}");
        assert!(!stderr.contains(USER_SECRET), "a secret reached the log: {stderr}");
    }
}

#[tokio::test]
async fn user_tokens_good_or_bad_never_reach_the_log() {
    let log = std::env::temp_dir().join(format!("lb-user-tokens-{}.log", std::process::id()));
    let env = [("LETTA_BRIDGE_USER_TOKEN_SECRET", USER_SECRET), ("RUST_LOG", "trace")];
    let bridge = BridgeProcess::start_with_env(BIN, log.clone(), &[], &env);
    let good = hs256(USER_SECRET.as_bytes(), &claims(json!({})));
    let expired = hs256(USER_SECRET.as_bytes(), &claims(json!({"exp": now() - 3600})));
    let forged = hs256(b"not-this-bridges-secret-0000000000000", &claims(json!({})));
    for token in [&good, &expired, &forged] {
        let res = bridge.http.get(bridge.url("/runtimes")).bearer_auth(token).send().await.unwrap();
        assert!(res.status() == 200 || res.status() == 401);
        let relay = bridge.url(&format!("/v1/environments/{DEVICE}/status/ws?token={token}"));
        let _ = bridge.http.get(relay).send().await.unwrap();
    }
    let text = bridge.log();
    assert!(text.contains("user tokens on") && text.contains("/runtimes"), "{text}");
    for token in [&good, &expired, &forged] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!text.contains(signature), "a user token reached the log");
    }
    assert!(!text.contains(USER_SECRET), "the secret reached the log");
    let _ = std::fs::remove_file(log);
}
