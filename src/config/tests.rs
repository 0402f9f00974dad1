use super::*;

fn parse(args: &[&str]) -> Config {
    let mut all = vec!["letta-bridge"];
    all.extend_from_slice(args);
    Config::try_parse_from(all).expect("valid flags")
}

#[test]
fn loopback_without_tokens_generates_all_three() {
    let tokens = parse(&[]).tokens().unwrap();
    assert_eq!(tokens.generated.len(), 3);
    assert!(tokens.admin.is_some());
    assert_ne!(tokens.runtime.as_deref(), Some(tokens.client.as_str()));
}

#[test]
fn non_loopback_bind_without_tokens_is_refused() {
    let err = parse(&["--listen", "0.0.0.0:8284"]).tokens().unwrap_err();
    assert!(matches!(err, ConfigError::TokensRequired(_)));
}

#[test]
fn non_loopback_bind_with_tokens_has_no_admin_unless_given() {
    let c = parse(&[
        "--listen",
        "0.0.0.0:8284",
        "--runtime-token",
        "rrrrrrrrrrrrrrrrrrrr",
        "--client-token",
        "cccccccccccccccccccc",
    ]);
    let tokens = c.tokens().unwrap();
    assert!(tokens.admin.is_none());
    assert!(tokens.generated.is_empty());
}

#[test]
fn equal_tokens_are_refused() {
    let c = parse(&["--runtime-token", "same-same-same-same", "--client-token", "same-same-same-same"]);
    assert!(matches!(c.tokens(), Err(ConfigError::SameTokens(..))));
}

#[test]
fn bad_public_url_is_refused() {
    let c = parse(&["--public-url", "bridge.example.com"]);
    assert!(matches!(c.validate(), Err(ConfigError::PublicUrl(_))));
}

#[test]
fn origins_are_scheme_host_and_port_only() {
    for ok in ["http://localhost:3000", "https://app.example.com", "http://127.0.0.1"] {
        assert!(valid_origin(ok), "{ok}");
    }
    for bad in ["localhost:3000", "ftp://x", "https://app.example.com/", "https://", "http://a b", "null", "*"] {
        assert!(!valid_origin(bad), "{bad}");
    }
}

#[test]
fn cluster_settings_are_checked_only_with_a_cluster_url() {
    assert!(parse(&["--cluster-name", "a b"]).validate().is_ok(), "unused without a URL");
    let bad = [
        vec!["--cluster-url", "http://x"],
        vec!["--cluster-url", "redis://x", "--cluster-name", "a b"],
        vec!["--cluster-url", "redis://x", "--node-id", ""],
        vec!["--cluster-url", "redis://x", "--node-ttl", "100ms"],
    ];
    for args in bad {
        assert!(parse(&args).validate().is_err(), "{args:?}");
    }
    assert!(parse(&["--cluster-url", "redis+unix:///tmp/r.sock", "--node-id", "n-1"]).validate().is_ok());
}

#[test]
fn durations_accept_human_units() {
    let c = parse(&["--keepalive", "250ms", "--ping-interval", "2s"]);
    assert_eq!(c.keepalive, Duration::from_millis(250));
    assert_eq!(c.ping_interval, Duration::from_secs(2));
}

#[test]
fn a_runtime_tokens_file_without_a_shared_token_generates_no_runtime_token() {
    let tokens = parse(&["--runtime-tokens-file", "/etc/letta-bridge/runtimes"]).tokens().unwrap();
    assert_eq!(tokens.runtime, None);
    let generated: Vec<&str> = tokens.generated.iter().map(|(name, _)| *name).collect();
    assert_eq!(generated, ["LETTA_BRIDGE_CLIENT_TOKEN", "LETTA_BRIDGE_ADMIN_TOKEN"]);
    assert!(tokens.named().iter().all(|(name, _)| *name != "LETTA_BRIDGE_RUNTIME_TOKEN"));
}

#[test]
fn a_shared_runtime_token_stays_beside_a_runtime_tokens_file() {
    let c = parse(&["--runtime-tokens-file", "/f", "--runtime-token", "rrrrrrrrrrrrrrrrrrrr"]);
    assert_eq!(c.tokens().unwrap().runtime.as_deref(), Some("rrrrrrrrrrrrrrrrrrrr"));
}

#[test]
fn a_non_loopback_bind_accepts_a_runtime_tokens_file_instead_of_the_shared_token() {
    let c =
        parse(&["--listen", "0.0.0.0:8284", "--runtime-tokens-file", "/f", "--client-token", "cccccccccccccccccccc"]);
    let tokens = c.tokens().unwrap();
    assert!(tokens.runtime.is_none() && tokens.generated.is_empty());
    let err = parse(&["--listen", "0.0.0.0:8284", "--runtime-tokens-file", "/f"]).tokens().unwrap_err();
    assert!(matches!(err, ConfigError::TokensRequired(_)), "the client token is still required");
}
