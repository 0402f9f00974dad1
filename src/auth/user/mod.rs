//! End users' tokens (issue 21): JWTs an app's backend signs with the
//! shared secret (HS256), or its identity provider with a key of its key set
//! (RS256, ES256, EdDSA), verified into the [`UserPrincipal`] the doors
//! share.
//!
//! The algorithm comes from the key, never from the token: an HS256 token
//! is checked against the secrets only, an RS256, ES256 or EdDSA token
//! against a key of the set pinned to that algorithm only; `none` and every
//! other algorithm are refused, and the header's `jku`, `jwk` and `x5u`
//! are never followed. Each token is verified afresh (nothing is cached per
//! `sub`), and no token is ever logged.

mod claims;
mod fetch;

pub(crate) use fetch::tls_connector;
mod jwks;

use std::time::SystemTime;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

pub use claims::{Expect, LEEWAY_SECS, MAX_ID_LEN};
pub use fetch::{FETCH_TIMEOUT, MAX_JWKS_BYTES};
pub use jwks::{KEYS_TTL, MAX_KEYS, RETRY_AFTER_FAILURE, UNKNOWN_KID_REFRESH};

use crate::config::UserTokenSettings;
use crate::protocol::access::UserPrincipal;
use crate::protocol::access::grants::GrantsError;

/// Largest user token read, in bytes; a larger one is refused unread (it
/// comes in a header or a URL, and its grants are checked per event).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a user token was refused. The message is the `error_description`
/// of the `401` (it names no secret and quotes nothing of the token but a
/// claim's type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("the token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    /// Not three base64url parts with a JSON header naming a known `alg`.
    #[error("not a JWT of a supported algorithm (HS256, RS256, ES256 or EdDSA; never `none`)")]
    Malformed,
    /// An algorithm no configured key verifies.
    #[error("tokens signed with {0} are not accepted: {1}")]
    Algorithm(String, &'static str),
    /// The signature is not the key's.
    #[error("the signature does not verify")]
    Signature,
    /// Signed with the previous secret after LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL.
    #[error("signed with the previous secret, no longer accepted since LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL")]
    Retired,
    /// No key of the identity provider's set has this `kid` (and algorithm).
    #[error("no key with kid {} for this algorithm in the identity provider's key set", .0.as_deref().unwrap_or("(none)"))]
    UnknownKey(Option<String>),
    /// The identity provider's key set could not be fetched, and none is in hand.
    #[error("the identity provider's key set could not be fetched: {0}")]
    KeysUnavailable(String),
    /// `exp` is past.
    #[error("the token has expired (exp)")]
    Expired,
    /// `nbf` is ahead.
    #[error("the token is not valid yet (nbf)")]
    NotYet,
    /// `aud` does not name this bridge.
    #[error("aud does not include {0}")]
    Audience(String),
    /// `iss` is not the configured issuer.
    #[error("iss is not {0}")]
    Issuer(String),
    /// A required claim is absent.
    #[error("the claim {0} is missing")]
    Missing(String),
    /// A claim of the right type with a value the bridge does not take.
    #[error("the claim {0} {1}")]
    Claim(&'static str, String),
    /// A claim of the wrong type, or a payload that is not a JSON object.
    #[error("malformed claims: {0}")]
    Claims(String),
    /// A malformed `letta-bridge` entry of `authorization_details`.
    #[error(transparent)]
    Grants(GrantsError),
}

/// Verifies user tokens with the configured keys.
pub struct UserTokens {
    /// LETTA_BRIDGE_USER_TOKEN_SECRET.
    secret: Option<DecodingKey>,
    /// LETTA_BRIDGE_USER_TOKEN_PREVIOUS_SECRET, until when it counts.
    previous: Option<(DecodingKey, SystemTime)>,
    /// LETTA_BRIDGE_USER_TOKEN_JWKS_URL's keys.
    jwks: Option<jwks::Jwks>,
    expect: Expect,
}

impl std::fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTokens").field("jwks", &self.jwks).field("expect", &self.expect).finish_non_exhaustive()
    }
}

impl UserTokens {
    /// The verifier `settings` describe (with the client that fetches the
    /// key set, when there is one).
    pub fn new(settings: &UserTokenSettings) -> anyhow::Result<Self> {
        let jwks = match &settings.jwks_url {
            Some(url) => Some(jwks::Jwks::new(url.clone())?),
            None => None,
        };
        Ok(Self {
            secret: settings.secret.as_deref().map(DecodingKey::from_secret),
            previous: settings.previous.as_ref().map(|p| (DecodingKey::from_secret(&p.secret), p.until)),
            jwks,
            expect: Expect { audience: settings.audience.clone(), issuer: settings.issuer.clone() },
        })
    }

    /// The end user `token` names, if it verifies.
    pub async fn verify(&self, token: &str) -> Result<UserPrincipal, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let alg = header.alg;
        match alg {
            Algorithm::HS256 => self.verify_hs256(token),
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA => {
                let Some(jwks) = &self.jwks else {
                    return Err(TokenError::Algorithm(
                        format!("{alg:?}"),
                        "no LETTA_BRIDGE_USER_TOKEN_JWKS_URL is set",
                    ));
                };
                let key = jwks.key(header.kid.as_deref(), alg).await?;
                self.decode(token, &key, alg)
            }
            other => Err(TokenError::Algorithm(format!("{other:?}"), "only HS256, RS256, ES256 and EdDSA are")),
        }
    }

    /// An HS256 token: the secret, else the previous one until it retires.
    fn verify_hs256(&self, token: &str) -> Result<UserPrincipal, TokenError> {
        let Some(secret) = &self.secret else {
            return Err(TokenError::Algorithm("HS256".into(), "no LETTA_BRIDGE_USER_TOKEN_SECRET is set"));
        };
        match self.decode(token, secret, Algorithm::HS256) {
            Err(TokenError::Signature) => {}
            verified => return verified,
        }
        let Some((previous, until)) = &self.previous else { return Err(TokenError::Signature) };
        let user = self.decode(token, previous, Algorithm::HS256)?;
        if SystemTime::now() > *until {
            return Err(TokenError::Retired);
        }
        Ok(user)
    }

    /// Checks the signature with `key` (of `alg` only), then the claims,
    /// both by the JWT crate and by [`claims::Claims::check`].
    fn decode(&self, token: &str, key: &DecodingKey, alg: Algorithm) -> Result<UserPrincipal, TokenError> {
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.expect.audience]);
        if let Some(issuer) = &self.expect.issuer {
            validation.set_issuer(&[issuer]);
        }
        // Only `exp` for the crate: it keeps required claims in a HashSet
        // and names whichever missing one it meets first, so a token missing
        // several got a different refusal from one request to the next (the
        // fuzz target found it). `Claims::check` names the others (`aud`,
        // `iss`, `sub`) in a fixed order.
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<claims::Claims>(token, key, &validation).map_err(|e| self.refusal(e))?;
        data.claims.check(&self.expect, claims::now())
    }

    fn refusal(&self, e: jsonwebtoken::errors::Error) -> TokenError {
        match e.into_kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYet,
            ErrorKind::InvalidAudience => TokenError::Audience(self.expect.audience.clone()),
            ErrorKind::InvalidIssuer => TokenError::Issuer(self.expect.issuer.clone().unwrap_or_default()),
            ErrorKind::MissingRequiredClaim(claim) => TokenError::Missing(claim),
            ErrorKind::Json(e) => TokenError::Claims(e.to_string()),
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => TokenError::Malformed,
            _ => TokenError::Signature,
        }
    }
}

/// True when `token` has a JWT's shape: three base64url parts.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

#[cfg(test)]
mod tests;
