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
    assert!(parse(&["--cluster-url", "redis+sentinel://s1:26379,s2:26379/mymaster"]).validate().is_ok());
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

const CLUSTER: [&str; 2] = ["--cluster-url", "redis://127.0.0.1:6379"];

#[test]
fn a_cluster_instance_without_tokens_names_every_missing_one_and_generates_none() {
    let Err(ConfigError::ClusterTokensRequired(missing)) = parse(&CLUSTER).tokens() else {
        panic!("a cluster instance without tokens must be refused");
    };
    assert_eq!(
        missing,
        [
            "LETTA_BRIDGE_RUNTIME_TOKEN (or LETTA_BRIDGE_RUNTIME_TOKENS_FILE)",
            "LETTA_BRIDGE_CLIENT_TOKEN",
            "LETTA_BRIDGE_ADMIN_TOKEN"
        ]
    );
    let mut args = CLUSTER.to_vec();
    args.extend(["--runtime-tokens-file", "/f", "--client-token", "cccccccccccccccccccc"]);
    let err = parse(&args).tokens().unwrap_err();
    assert!(matches!(&err, ConfigError::ClusterTokensRequired(m) if m == &["LETTA_BRIDGE_ADMIN_TOKEN"]), "{err}");
    assert!(err.to_string().contains("openssl rand -hex 32"), "the message says how to create one: {err}");
}

#[test]
fn a_cluster_instance_with_the_three_tokens_starts_and_generates_nothing() {
    let mut args = CLUSTER.to_vec();
    args.extend(["--runtime-token", "rrrrrrrrrrrrrrrrrrrr", "--client-token", "cccccccccccccccccccc"]);
    args.extend(["--admin-token", "aaaaaaaaaaaaaaaaaaaa"]);
    assert!(parse(&args).tokens().unwrap().generated.is_empty());
    args.truncate(2);
    args.extend(["--runtime-tokens-file", "/f", "--client-token", "cccccccccccccccccccc"]);
    args.extend(["--admin-token", "aaaaaaaaaaaaaaaaaaaa"]);
    assert!(parse(&args).tokens().unwrap().generated.is_empty(), "the tokens file stands for the runtime token");
}

#[test]
fn the_quick_start_banner_lists_the_generated_tokens_then_the_runtime_line_on_the_bound_address() {
    let tokens = parse(&[]).tokens().unwrap();
    let addr: SocketAddr = "127.0.0.1:8284".parse().unwrap();
    let url = parse(&[]).runtime_base_url(addr);
    let token = |name: &str| tokens.generated.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let expected = format!(
        "letta-bridge generated these tokens (set them in the environment to keep them across restarts):\n\
         \x20 LETTA_BRIDGE_RUNTIME_TOKEN={}\n\
         \x20 LETTA_BRIDGE_CLIENT_TOKEN={}\n\
         \x20 LETTA_BRIDGE_ADMIN_TOKEN={}\n\
         Point a runtime at this bridge with:\n\
         \x20 LETTA_BASE_URL=http://127.0.0.1:8284 IGNORE_SELF_HOSTED_LISTENER_ERROR=1 LETTA_API_KEY={} letta remote --env-name local-dev --backend local\n",
        token("LETTA_BRIDGE_RUNTIME_TOKEN"),
        token("LETTA_BRIDGE_CLIENT_TOKEN"),
        token("LETTA_BRIDGE_ADMIN_TOKEN"),
        token("LETTA_BRIDGE_RUNTIME_TOKEN"),
    );
    assert_eq!(banner(&tokens, &url), expected);
}

#[test]
fn the_runtime_line_points_at_the_public_url_when_one_is_set() {
    let addr: SocketAddr = "127.0.0.1:8285".parse().unwrap();
    for (public, expected) in [
        ("http://127.0.0.1:8284", "http://127.0.0.1:8284"),
        ("https://bridge.example.com/", "https://bridge.example.com"),
        ("wss://bridge.example.com/lb", "https://bridge.example.com/lb"),
        ("ws://10.0.0.5:8284", "http://10.0.0.5:8284"),
    ] {
        assert_eq!(parse(&["--public-url", public]).runtime_base_url(addr), expected, "{public}");
    }
    let tls = parse(&["--tls-cert", "/c.pem", "--tls-key", "/k.pem"]);
    assert_eq!(tls.runtime_base_url(addr), "https://127.0.0.1:8285");
}

#[test]
fn with_every_token_given_the_banner_is_the_runtime_line_alone_and_prints_no_token() {
    let mut args = CLUSTER.to_vec();
    args.extend(["--runtime-token", "rrrrrrrrrrrrrrrrrrrr", "--client-token", "cccccccccccccccccccc"]);
    args.extend(["--admin-token", "aaaaaaaaaaaaaaaaaaaa", "--public-url", "http://127.0.0.1:8284"]);
    let config = parse(&args);
    let printed = banner(&config.tokens().unwrap(), &config.runtime_base_url("127.0.0.1:8285".parse().unwrap()));
    assert_eq!(
        printed,
        "Point a runtime at this bridge with:\n  LETTA_BASE_URL=http://127.0.0.1:8284 IGNORE_SELF_HOSTED_LISTENER_ERROR=1 \
         LETTA_API_KEY=$LETTA_BRIDGE_RUNTIME_TOKEN letta remote --env-name local-dev --backend local\n"
    );
    let devices = parse(&["--runtime-tokens-file", "/f"]);
    let printed = banner(&devices.tokens().unwrap(), "http://127.0.0.1:8284");
    assert!(printed.contains("LETTA_API_KEY=<the device's token from LETTA_BRIDGE_RUNTIME_TOKENS_FILE> "), "{printed}");
}

const USER_SECRET: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn user_tokens_are_off_until_a_secret_or_a_key_set_is_given() {
    assert!(parse(&[]).user_tokens().unwrap().is_none());
    let on = parse(&["--user-token-secret", USER_SECRET]).user_tokens().unwrap().unwrap();
    assert_eq!((on.audience.as_str(), on.issuer.as_deref()), ("letta-bridge", None));
    let jwks = parse(&["--user-token-jwks-url", "https://idp.example/.well-known/jwks.json"]).user_tokens().unwrap();
    assert!(jwks.is_some_and(|s| s.secret.is_none()));
    let issuer_alone = parse(&["--user-token-issuer", "https://idp.example"]).user_tokens();
    assert!(matches!(issuer_alone, Err(ConfigError::Needs("LETTA_BRIDGE_USER_TOKEN_ISSUER", _))));
}

#[test]
fn a_user_token_secret_under_32_bytes_is_refused() {
    let err = parse(&["--user-token-secret", "too-short-a-secret"]).user_tokens().unwrap_err();
    assert!(matches!(err, ConfigError::ShortSecret("LETTA_BRIDGE_USER_TOKEN_SECRET", 32, 18)), "{err}");
    let previous = parse(&["--user-token-secret", USER_SECRET, "--user-token-previous-secret", "short"])
        .user_tokens()
        .unwrap_err();
    assert!(matches!(previous, ConfigError::Needs(..) | ConfigError::ShortSecret(..)), "{previous}");
}

#[test]
fn the_previous_secret_and_its_until_come_together_and_beside_a_secret() {
    let old = "fedcba9876543210fedcba9876543210";
    let until = ["--user-token-previous-until", "2026-07-01T12:00:00Z"];
    let err = |args: &[&str]| parse(args).user_tokens().unwrap_err().to_string();
    assert!(
        err(&["--user-token-secret", USER_SECRET, "--user-token-previous-secret", old])
            .contains("LETTA_BRIDGE_USER_TOKEN_PREVIOUS_SECRET is set without LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL")
    );
    assert!(
        err(&["--user-token-secret", USER_SECRET, until[0], until[1]])
            .contains("LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL is set without LETTA_BRIDGE_USER_TOKEN_PREVIOUS_SECRET")
    );
    assert!(
        err(&["--user-token-previous-secret", old, until[0], until[1]])
            .contains("without LETTA_BRIDGE_USER_TOKEN_SECRET")
    );
    let bad_time = ["--user-token-secret", USER_SECRET, "--user-token-previous-secret", old, until[0], "next tuesday"];
    assert!(err(&bad_time).contains("RFC 3339"));
    let ok = parse(&["--user-token-secret", USER_SECRET, "--user-token-previous-secret", old, until[0], until[1]]);
    let previous = ok.user_tokens().unwrap().unwrap().previous.unwrap();
    assert_eq!(previous.until, humantime::parse_rfc3339("2026-07-01T12:00:00Z").unwrap());
}

#[test]
fn rfc3339_times_take_an_offset_or_z() {
    let utc = humantime::parse_rfc3339("2026-07-01T12:00:00Z").unwrap();
    for same in
        ["2026-07-01T12:00:00Z", "2026-07-01T14:00:00+02:00", "2026-07-01T07:30:00-04:30", "2026-07-01T12:00:00z"]
    {
        assert_eq!(user_tokens::rfc3339(same), Some(utc), "{same}");
    }
    for bad in ["2026-07-01", "2026-07-01T12:00:00", "2026-07-01T12:00:00+2:00", "2026-07-01T12:00:00+24:00", "é"] {
        assert_eq!(user_tokens::rfc3339(bad), None, "{bad}");
    }
}

#[test]
fn a_key_set_url_is_https_or_http_to_a_loopback_host() {
    let url = |u: &str| parse(&["--user-token-jwks-url", u]).user_tokens();
    for ok in ["https://idp.example/jwks", "http://127.0.0.1:9999/jwks", "http://localhost/jwks", "http://[::1]:80/k"] {
        assert!(url(ok).is_ok(), "{ok}");
    }
    for bad in ["http://idp.example/jwks", "ftp://idp.example/jwks", "idp.example/jwks", "https://"] {
        assert!(matches!(url(bad), Err(ConfigError::Bad("LETTA_BRIDGE_USER_TOKEN_JWKS_URL", _))), "{bad}");
    }
}
