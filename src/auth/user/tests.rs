//! What a user token must be to verify: its algorithm, its claims, the
//! secrets of a rotation, and when the identity provider's keys are fetched.

use std::time::{Duration, SystemTime};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::claims::{Claims, now};
use super::jwks::{self, State, Step};
use super::*;
use crate::config::{PreviousSecret, UserTokenSettings};
use crate::protocol::access::grants::Action;

const SECRET: &[u8] = b"unit-test-user-token-secret-0000000001";
const OLD_SECRET: &[u8] = b"unit-test-user-token-secret-0000000000";

fn settings() -> UserTokenSettings {
    UserTokenSettings {
        secret: Some(SECRET.to_vec()),
        previous: None,
        jwks_url: None,
        audience: "letta-bridge".into(),
        issuer: None,
    }
}

fn users(settings: UserTokenSettings) -> UserTokens {
    UserTokens::new(&settings).expect("a verifier")
}

fn claims(extra: Value) -> Value {
    let mut claims = json!({"sub": "alice", "aud": "letta-bridge", "exp": now() + 600});
    claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    claims
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    encode(&Header::default(), claims, &EncodingKey::from_secret(secret)).unwrap()
}

async fn verify(token: &str) -> Result<UserPrincipal, TokenError> {
    users(settings()).verify(token).await
}

fn check(claims: Value, expect: &Expect) -> Result<UserPrincipal, TokenError> {
    let claims: Claims = serde_json::from_value(claims).map_err(|e| TokenError::Claims(e.to_string()))?;
    claims.check(expect, now())
}

fn expect() -> Expect {
    Expect { audience: "letta-bridge".into(), issuer: None }
}

#[tokio::test]
async fn an_hs256_token_verifies_into_its_user_with_their_grants() {
    let details = json!([{"type": "letta-bridge", "actions": ["read", "input"],
        "scopes": [{"agent_id": "agent-1", "conversation_id": "conv-a"}]}]);
    let exp = now() + 600;
    let token = hs256(SECRET, &claims(json!({"exp": exp, "jti": "t-1", "authorization_details": details})));
    let user = verify(&token).await.unwrap();
    assert_eq!((&*user.sub, user.exp, user.jti.as_deref()), ("alice", exp, Some("t-1")));
    assert!(user.grants.allows(Action::Input, "dev-1", "agent-1", "conv-a"));
    assert!(!user.grants.allows(Action::Sync, "dev-1", "agent-1", "conv-a"));
}

#[test]
fn the_time_claims_allow_a_minute_of_skew_and_no_more() {
    let t = now();
    assert!(check(claims(json!({"exp": t - 30})), &expect()).is_ok(), "expired within the leeway");
    assert_eq!(check(claims(json!({"exp": t - 120})), &expect()), Err(TokenError::Expired));
    assert!(check(claims(json!({"nbf": t + 30})), &expect()).is_ok(), "not yet, within the leeway");
    assert_eq!(check(claims(json!({"nbf": t + 120})), &expect()), Err(TokenError::NotYet));
}

#[tokio::test]
async fn a_time_claim_of_the_wrong_type_refuses_the_token_rather_than_skipping_its_check() {
    // GHSA-h395-gr6q-cpjc: jsonwebtoken 9 skips an `nbf` it cannot parse.
    for bad in [json!({"nbf": "99999999999"}), json!({"exp": "never"}), json!({"iat": "now"}), json!({"exp": 1.5})] {
        assert!(matches!(check(claims(bad.clone()), &expect()), Err(TokenError::Claims(_))), "{bad}");
    }
    let signed = hs256(SECRET, &claims(json!({"nbf": "99999999999"})));
    assert!(matches!(verify(&signed).await, Err(TokenError::Claims(_))), "signed, through the JWT crate");
}

#[test]
fn exp_aud_and_sub_are_required() {
    for claim in ["exp", "aud", "sub"] {
        let mut c = claims(json!({}));
        c.as_object_mut().unwrap().remove(claim);
        assert_eq!(check(c, &expect()), Err(TokenError::Missing(claim.into())), "{claim}");
    }
}

#[tokio::test]
async fn a_token_missing_several_claims_is_refused_for_the_same_one_every_time() {
    let token = hs256(SECRET, &json!({"sub": "alice"}));
    let first = verify(&token).await;
    assert_eq!(first, Err(TokenError::Missing("exp".into())), "exp, aud, sub: checked in that order");
    for _ in 0..64 {
        assert_eq!(verify(&token).await, first, "the same refusal for the same token");
    }
}

#[test]
fn the_audience_must_be_in_aud_and_the_issuer_equal_iss_when_set() {
    assert!(check(claims(json!({"aud": ["other", "letta-bridge"]})), &expect()).is_ok());
    assert_eq!(check(claims(json!({"aud": "other"})), &expect()), Err(TokenError::Audience("letta-bridge".into())));
    assert!(check(claims(json!({"aud": ["other"]})), &expect()).is_err());
    let with_issuer = Expect { issuer: Some("https://idp.example".into()), ..expect() };
    assert!(check(claims(json!({"iss": "https://idp.example"})), &with_issuer).is_ok());
    for iss in [json!({"iss": "https://evil.example"}), json!({})] {
        assert_eq!(check(claims(iss), &with_issuer), Err(TokenError::Issuer("https://idp.example".into())));
    }
    assert!(check(claims(json!({"iss": "anyone"})), &expect()).is_ok(), "no issuer configured: any");
}

#[test]
fn sub_and_jti_are_short_printable_ids() {
    for bad in
        [json!({"sub": ""}), json!({"sub": "a\nb"}), json!({"sub": "x".repeat(MAX_ID_LEN + 1)}), json!({"jti": ""})]
    {
        assert!(matches!(check(claims(bad.clone()), &expect()), Err(TokenError::Claim(..))), "{bad}");
    }
    assert!(check(claims(json!({"sub": "tenant:alice@example.com"})), &expect()).is_ok());
}

#[test]
fn a_malformed_letta_bridge_detail_refuses_the_token_and_another_services_is_ignored() {
    let bad = json!({"authorization_details": [{"type": "letta-bridge", "actions": ["fly"],
        "scopes": [{"agent_id": "a", "conversation_id": "c"}]}]});
    assert!(matches!(check(claims(bad), &expect()), Err(TokenError::Grants(_))));
    let other = json!({"authorization_details": [{"type": "payments", "limit": 5}]});
    assert!(check(claims(other), &expect()).unwrap().grants.grants.is_empty());
}

#[tokio::test]
async fn the_algorithm_comes_from_the_configured_keys_never_from_the_token() {
    let c = claims(json!({}));
    // `alg: none`, unsigned.
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(c.to_string().as_bytes()));
    assert_eq!(verify(&none).await, Err(TokenError::Malformed));
    // Another HMAC algorithm, signed with the right secret.
    let hs384 = encode(&Header::new(Algorithm::HS384), &c, &EncodingKey::from_secret(SECRET)).unwrap();
    assert!(matches!(verify(&hs384).await, Err(TokenError::Algorithm(..))));
    // An RS256 header with an HMAC signature: no key set is configured.
    let rs = format!("{}.{}.{}", b64(br#"{"alg":"RS256"}"#), b64(c.to_string().as_bytes()), b64(b"sig"));
    assert!(matches!(verify(&rs).await, Err(TokenError::Algorithm(..))));
    // HS256 where only a key set is configured (no secret to check it with).
    let jwks_only = UserTokenSettings { secret: None, jwks_url: Some("http://127.0.0.1:9/jwks".into()), ..settings() };
    assert!(matches!(users(jwks_only).verify(&hs256(SECRET, &c)).await, Err(TokenError::Algorithm(..))));
    assert_eq!(verify(&hs256(b"another-secret-of-thirty-two-bytes!!", &c)).await, Err(TokenError::Signature));
}

#[tokio::test]
async fn a_token_over_the_size_limit_is_refused_unread() {
    let padding = "x".repeat(MAX_TOKEN_BYTES);
    let token = hs256(SECRET, &claims(json!({"padding": padding})));
    assert_eq!(verify(&token).await, Err(TokenError::TooLarge));
    assert_eq!(verify(&"a".repeat(MAX_TOKEN_BYTES + 1)).await, Err(TokenError::TooLarge));
}

#[tokio::test]
async fn the_previous_secret_verifies_until_its_time_and_not_after() {
    let rotating = |until: SystemTime| UserTokenSettings {
        previous: Some(PreviousSecret { secret: OLD_SECRET.to_vec(), until }),
        ..settings()
    };
    let old = hs256(OLD_SECRET, &claims(json!({})));
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(&*users(rotating(later)).verify(&old).await.unwrap().sub, "alice");
    assert!(users(rotating(later)).verify(&hs256(SECRET, &claims(json!({})))).await.is_ok(), "the new one too");
    let earlier = SystemTime::now() - Duration::from_secs(1);
    assert_eq!(users(rotating(earlier)).verify(&old).await, Err(TokenError::Retired));
    assert_eq!(verify(&old).await, Err(TokenError::Signature), "no previous secret configured");
}

#[test]
fn a_jwt_is_three_base64url_parts() {
    assert!(looks_like_jwt("eyJh.eyJz.c2ln") && looks_like_jwt("a.b."));
    for not in ["lb_462d0123", "a.b", "a.b.c.d", "a b.c.d", "a.b.c\n"] {
        assert!(!looks_like_jwt(not), "{not}");
    }
}

/// RFC 8037 A.2's Ed25519 key and RFC 7515 A.3's P-256 key.
fn key_set(extra: Value) -> Vec<u8> {
    let mut keys = vec![
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
        json!({"kty": "EC", "crv": "P-256", "kid": "ec", "use": "sig",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}),
    ];
    keys.extend(extra.as_array().cloned().unwrap_or_default());
    json!({ "keys": keys }).to_string().into_bytes()
}

#[test]
fn a_key_set_yields_only_signing_keys_each_pinned_to_its_algorithm() {
    let set = key_set(json!([
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "OKP", "crv": "Ed25519", "kid": "lying", "alg": "RS256", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "XYZ", "kid": "unknown-type"}
    ]));
    let state = State { keys: jwks::parse(&set).unwrap(), ..State::default() };
    let has = |kid: &str, alg| state.find(Some(kid), alg).is_some();
    assert!(has("ed", Algorithm::EdDSA) && has("ec", Algorithm::ES256));
    assert!(!has("ed", Algorithm::ES256) && !has("ec", Algorithm::RS256), "one algorithm per key");
    assert!(!has("hmac", Algorithm::HS256) && !has("enc", Algorithm::ES256) && !has("lying", Algorithm::EdDSA));
    assert_eq!(state.keys.len(), 2);
    assert!(jwks::parse(b"{\"not\":\"a set\"}").is_err());
}

#[test]
fn an_unknown_kid_fetches_the_keys_at_most_once_per_interval() {
    let t0 = tokio::time::Instant::now();
    let mut state = State { keys: jwks::parse(&key_set(json!([]))).unwrap(), fetched: Some(t0), ..State::default() };
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    assert_eq!(state.step(Some("ed"), Algorithm::EdDSA, at(1), at(1)), Step::Use);
    assert_eq!(state.step(Some("new"), Algorithm::EdDSA, at(1), at(1)), Step::Fetch, "the first unknown kid");
    state.unknown = Some(at(1));
    assert_eq!(state.step(Some("other"), Algorithm::EdDSA, at(2), at(2)), Step::Unknown, "refused, not fetched");
    let later = 1 + UNKNOWN_KID_REFRESH.as_secs();
    assert_eq!(state.step(Some("other"), Algorithm::EdDSA, at(later), at(later)), Step::Fetch);
}

#[test]
fn keys_are_fetched_again_after_their_lifetime_and_serve_on_while_the_provider_is_down() {
    let t0 = tokio::time::Instant::now();
    let mut state = State { keys: jwks::parse(&key_set(json!([]))).unwrap(), fetched: Some(t0), ..State::default() };
    let stale = t0 + KEYS_TTL;
    assert_eq!(state.step(Some("ed"), Algorithm::EdDSA, stale, stale), Step::Fetch);
    state.failed = Some((stale, "HTTP 503".into()));
    let soon = stale + Duration::from_secs(1);
    assert_eq!(state.step(Some("ed"), Algorithm::EdDSA, soon, soon), Step::Use, "the stale key serves");
    assert_eq!(state.step(Some("new"), Algorithm::EdDSA, soon, soon), Step::Unknown, "no retry yet");
    let retry = stale + RETRY_AFTER_FAILURE;
    assert_eq!(state.step(Some("ed"), Algorithm::EdDSA, retry, retry), Step::Fetch);
}

#[test]
fn before_any_key_set_arrived_a_failed_fetch_makes_tokens_wait_for_the_retry() {
    let t0 = tokio::time::Instant::now();
    let mut state = State::default();
    assert_eq!(state.step(Some("ed"), Algorithm::EdDSA, t0, t0), Step::Fetch);
    state.failed = Some((t0, "connection refused".into()));
    let soon = t0 + Duration::from_secs(1);
    assert_eq!(state.step(Some("ed"), Algorithm::EdDSA, soon, soon), Step::Unavailable);
    assert!(matches!(state.answer(Some("ed"), Algorithm::EdDSA), Err(TokenError::KeysUnavailable(_))));
}

/// Base64url without padding (JWS compact serialisation), for hand-made tokens.
fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
