//! The bad-token matrix: every way a user token can be wrong, at every door
//! that takes the client token, is a `401` with RFC 6750's `invalid_token`;
//! a good one is taken there as the client token is.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::*;

const ISSUER: &str = "https://idp.test.example";

/// Each bad token with what is wrong with it, for a bridge that also
/// takes `rsa`'s key set and wants `iss` = [`ISSUER`].
fn bad_tokens(rsa: &SigningKey) -> Vec<(&'static str, String)> {
    let good = || claims(json!({"iss": ISSUER}));
    let secret = USER_SECRET.as_bytes();
    let public_jwk = rsa.jwk.to_string();
    let modulus = rsa.jwk["n"].as_str().unwrap().to_owned();
    let oversize = claims(json!({"iss": ISSUER, "padding": "x".repeat(letta_bridge::auth::MAX_TOKEN_BYTES)}));
    vec![
        ("signed with another secret", hs256(b"not-this-bridges-secret-0000000000000", &good())),
        ("alg none, unsigned", hand_made(&json!({"alg": "none", "typ": "JWT"}), &good(), b"")),
        ("alg none, with a signature", hand_made(&json!({"alg": "none"}), &good(), b"x")),
        ("HS256 signed with the key set's public JWK", signed(Algorithm::HS256, rsa.kid, &key(&public_jwk), &good())),
        ("HS256 signed with the key set's modulus", signed(Algorithm::HS256, rsa.kid, &key(&modulus), &good())),
        ("RS256 naming the RSA key, signed with HS256", {
            let hmac = hs256(secret, &good());
            let signature = hmac.rsplit('.').next().unwrap().to_owned();
            hand_made(&json!({"alg": "RS256", "kid": rsa.kid}), &good(), signature.as_bytes())
        }),
        ("expired", hs256(secret, &claims(json!({"iss": ISSUER, "exp": now() - 3600})))),
        ("nbf in the future", hs256(secret, &claims(json!({"iss": ISSUER, "nbf": now() + 3600})))),
        ("nbf a string (GHSA-h395-gr6q-cpjc)", hs256(secret, &claims(json!({"iss": ISSUER, "nbf": "99999999999"})))),
        ("another aud", hs256(secret, &claims(json!({"iss": ISSUER, "aud": "another-service"})))),
        ("no aud", hs256(secret, &claims(json!({"iss": ISSUER, "aud": null})))),
        ("another iss", hs256(secret, &claims(json!({"iss": "https://evil.example"})))),
        ("no iss", hs256(secret, &claims(json!({})))),
        ("no exp", hs256(secret, &claims(json!({"iss": ISSUER, "exp": null})))),
        ("no sub", hs256(secret, &claims(json!({"iss": ISSUER, "sub": null})))),
        ("malformed authorization_details", {
            let details = json!([{"type": "letta-bridge", "actions": ["read"], "scopes": [{"agent_id": "*", "conversation_id": "*"}]}]);
            hs256(secret, &claims(json!({"iss": ISSUER, "authorization_details": details})))
        }),
        ("authorization_details not an array", {
            hs256(secret, &claims(json!({"iss": ISSUER, "authorization_details": {"type": "letta-bridge"}})))
        }),
        ("oversize", hs256(secret, &oversize)),
        ("a signature cut short", {
            let token = hs256(secret, &good());
            token[..token.len() - 4].to_owned()
        }),
    ]
}

fn key(secret: &str) -> jsonwebtoken::EncodingKey {
    jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())
}

#[tokio::test]
async fn every_bad_user_token_is_401_invalid_token_at_every_door() {
    let rsa = SigningKey::rs256();
    let keys = KeySet::serve(&[&rsa]).await;
    let app = spawn_with_user_tokens(Some(&keys), |c| c.user_token_issuer = Some(ISSUER.into())).await;
    let _rt = app.runtime(DEVICE).await;
    let good = hs256(USER_SECRET.as_bytes(), &claims(json!({"iss": ISSUER})));
    assert_eq!(app.knock(Door::Rest, &good).await.status, 200, "the good token, as a control");
    for (what, token) in bad_tokens(&rsa) {
        for door in DOORS {
            let answer = app.knock(door, &token).await;
            let challenge = answer.assert_invalid_token(&format!("{what} at {door:?}"));
            assert!(!challenge.contains(&token) && !answer.body.to_string().contains(&token), "{what}: echoed");
        }
    }
}

#[tokio::test]
async fn the_refusal_says_what_is_wrong_with_the_token() {
    let app = spawn_with_user_tokens(None, |_| {}).await;
    let secret = USER_SECRET.as_bytes();
    for (token, says) in [
        (hs256(secret, &claims(json!({"exp": now() - 3600}))), "expired"),
        (hs256(secret, &claims(json!({"nbf": now() + 3600}))), "not valid yet"),
        (hs256(secret, &claims(json!({"aud": "x"}))), "aud does not include letta-bridge"),
        (hs256(b"not-this-bridges-secret-0000000000000", &claims(json!({}))), "signature does not verify"),
        (hand_made(&json!({"alg": "none"}), &claims(json!({})), b""), "never `none`"),
        (
            signed(Algorithm::ES256, "k", &SigningKey::es256("k").key, &claims(json!({}))),
            "no LETTA_BRIDGE_USER_TOKEN_JWKS_URL",
        ),
    ] {
        let answer = app.knock(Door::Rest, &token).await;
        let challenge = answer.assert_invalid_token(says);
        assert!(challenge.contains(says), "{challenge}");
        assert!(answer.body["detail"].as_str().unwrap().contains(says), "{}", answer.body);
    }
}

#[tokio::test]
async fn a_good_user_token_is_taken_wherever_the_client_token_is() {
    let app = spawn_with_user_tokens(None, |_| {}).await;
    let _rt = app.runtime(DEVICE).await;
    let alice = hs256(USER_SECRET.as_bytes(), &claims(json!({})));
    for door in DOORS {
        let (as_client, as_alice) = (app.knock(door, CLIENT_TOKEN).await, app.knock(door, &alice).await);
        assert!(as_client.status < 300, "{door:?}: the client token: {as_client:?}");
        assert_eq!(as_alice.status, as_client.status, "{door:?}: {as_alice:?}");
    }
}

#[tokio::test]
async fn a_user_token_in_a_query_string_is_refused_where_only_the_relay_takes_one() {
    let app = spawn_with_user_tokens(None, |_| {}).await;
    let _rt = app.runtime(DEVICE).await;
    let alice = hs256(USER_SECRET.as_bytes(), &claims(json!({})));
    for path in [
        format!("/events?token={alice}"),
        format!("/runtimes?token={alice}"),
        format!("/v1/environments?token={alice}"),
    ] {
        let res = app.get_as(None, &path).await;
        assert_eq!(res.headers()["www-authenticate"], "Bearer", "{path}: no token was read");
        assert_problem(res, 401).await;
    }
    let answer = app.upgrade(&format!("/app-server/ws?token={alice}"), None).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(app.knock(Door::RelayQuery, &alice).await.status, 101, "the relay socket takes one");
}

#[tokio::test]
async fn with_user_tokens_off_a_jwt_is_401_saying_so_and_the_client_tokens_answers_are_unchanged() {
    let app = spawn_app().await;
    let token = hs256(USER_SECRET.as_bytes(), &claims(json!({})));
    let answer = app.knock(Door::Rest, &token).await;
    assert!(answer.assert_invalid_token("user tokens off").contains("user tokens are off"));
    let res = app.get_as(Some("not-a-token-of-this-bridge"), "/runtimes").await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let body: Value = assert_problem(res, 401).await;
    assert_eq!(body["type"], "urn:letta-bridge:unauthorized");
    assert_eq!(body["detail"], "invalid token: neither this bridge's client token nor its admin token");
}
