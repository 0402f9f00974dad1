//! User tokens: never panic, whatever the bytes. The input is tried twice:
//! as a whole token, and as the claims of a token signed with the right
//! secret (so the claim and grant parsers see every input, not only the
//! few that pass the signature). A token verifies only with a sensible
//! principal, and verifies the same way again.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use jsonwebtoken::{Algorithm, EncodingKey};
use letta_bridge::auth::{MAX_ID_LEN, TokenError, UserTokens};
use letta_bridge::config::UserTokenSettings;
use letta_bridge::protocol::UserPrincipal;
use letta_bridge::protocol::access::grants::MAX_DETAILS;
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-user-token-secret-0000000000001";

fn users() -> &'static UserTokens {
    static USERS: OnceLock<UserTokens> = OnceLock::new();
    USERS.get_or_init(|| {
        let settings = UserTokenSettings {
            secret: Some(SECRET.to_vec()),
            previous: None,
            jwks_url: None,
            audience: "letta-bridge".into(),
            issuer: None,
        };
        UserTokens::new(&settings).expect("a verifier")
    })
}

/// Verifies `token`: with HS256 only (no key set), nothing awaits.
fn verify(token: &str) -> Result<UserPrincipal, TokenError> {
    let mut future = pin!(users().verify(token));
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(verified) => verified,
        Poll::Pending => panic!("an HS256 token awaited"),
    }
}

/// Base64url without padding (JWS compact serialisation), for hand-made tokens.
fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn check(token: &str) {
    let verified = verify(token);
    if let Ok(user) = &verified {
        assert!(!user.sub.is_empty() && user.sub.len() <= MAX_ID_LEN);
        assert!(user.grants.grants.len() <= MAX_DETAILS);
    }
    assert_eq!(verify(token), verified, "verifying is deterministic");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
    let message = format!("{}.{}", b64(br#"{"alg":"HS256","typ":"JWT"}"#), b64(data));
    let key = EncodingKey::from_secret(SECRET);
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("HMAC signs");
    check(&format!("{message}.{signature}"));
});
