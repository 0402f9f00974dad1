//! A user token's claims, with the bridge's own strict types: what the JWT
//! crate checks (`exp`, `nbf`, `aud`, `iss`) is checked here again, so a
//! claim of the wrong type refuses the token rather than skipping its check
//! (GHSA-h395-gr6q-cpjc), and the result is the [`UserPrincipal`] the doors
//! share.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

use super::TokenError;
use crate::protocol::access::UserPrincipal;
use crate::protocol::access::grants::Grants;

/// Seconds of clock skew allowed between the token's minter and the bridge
/// on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;

/// Longest `sub` and `jti` (they name a user and a token; they are not data).
pub const MAX_ID_LEN: usize = 256;

/// The claims the bridge reads; others are ignored. Every one has its JSON
/// type: a string `exp` or `nbf` is a malformed token, not a missing claim.
#[derive(Deserialize)]
pub(super) struct Claims {
    sub: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    // Read only for its type: a non-number `iat` is a malformed token.
    #[allow(dead_code)]
    iat: Option<u64>,
    jti: Option<String>,
    aud: Option<Audience>,
    iss: Option<String>,
    authorization_details: Option<Value>,
}

/// `aud`: one string or an array of them (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// What a token's claims must satisfy.
#[derive(Debug, Clone)]
pub struct Expect {
    /// Must be in `aud`.
    pub audience: String,
    /// When set, `iss` must equal it.
    pub issuer: Option<String>,
}

impl Claims {
    /// Checks the claims against `expect` at `now` (seconds since the
    /// epoch) and makes the principal.
    pub(super) fn check(self, expect: &Expect, now: u64) -> Result<UserPrincipal, TokenError> {
        let exp = self.exp.ok_or_else(|| TokenError::Missing("exp".into()))?;
        if exp.saturating_add(LEEWAY_SECS) < now {
            return Err(TokenError::Expired);
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS)) {
            return Err(TokenError::NotYet);
        }
        let audience_ok = match self.aud.ok_or_else(|| TokenError::Missing("aud".into()))? {
            Audience::One(aud) => aud == expect.audience,
            Audience::Many(auds) => auds.contains(&expect.audience),
        };
        if !audience_ok {
            return Err(TokenError::Audience(expect.audience.clone()));
        }
        if let Some(issuer) = &expect.issuer
            && self.iss.as_deref() != Some(issuer.as_str())
        {
            return Err(TokenError::Issuer(issuer.clone()));
        }
        let sub = self.sub.ok_or_else(|| TokenError::Missing("sub".into()))?;
        let jti = self.jti.map(|jti| id("jti", jti)).transpose()?;
        let grants = Grants::from_claim(self.authorization_details.as_ref()).map_err(TokenError::Grants)?;
        Ok(UserPrincipal { sub: id("sub", sub)?, exp, jti, grants })
    }
}

/// A `sub` or `jti`: 1 to [`MAX_ID_LEN`] bytes, no control characters.
fn id(claim: &'static str, value: String) -> Result<Box<str>, TokenError> {
    if value.is_empty() || value.len() > MAX_ID_LEN || value.chars().any(char::is_control) {
        return Err(TokenError::Claim(claim, format!("must be 1-{MAX_ID_LEN} bytes with no control characters")));
    }
    Ok(value.into())
}

/// Seconds since the Unix epoch, now.
pub(super) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
