//! The user token settings (issue 21), checked before anything binds: the
//! HS256 secret and the previous one during a rotation, an identity
//! provider's key set, the audience and the issuer. Secrets are never
//! formatted.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::{Config, ConfigError};

/// Shortest user token secret: HS256's key is as strong as SHA-256 only
/// with at least 32 bytes (RFC 7518 §3.2).
pub const MIN_USER_TOKEN_SECRET_LEN: usize = 32;

const SECRET: &str = "LETTA_BRIDGE_USER_TOKEN_SECRET";
const PREVIOUS: &str = "LETTA_BRIDGE_USER_TOKEN_PREVIOUS_SECRET";
const UNTIL: &str = "LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL";
const JWKS_URL: &str = "LETTA_BRIDGE_USER_TOKEN_JWKS_URL";
const AUDIENCE: &str = "LETTA_BRIDGE_USER_TOKEN_AUDIENCE";
const ISSUER: &str = "LETTA_BRIDGE_USER_TOKEN_ISSUER";

/// How user tokens are verified, when they are on.
#[derive(Clone)]
pub struct UserTokenSettings {
    /// The HS256 secret.
    pub secret: Option<Vec<u8>>,
    /// The secret before the last rotation, and until when it counts.
    pub previous: Option<PreviousSecret>,
    /// An identity provider's JWKS (RS256, ES256, EdDSA keys).
    pub jwks_url: Option<String>,
    /// What `aud` must include.
    pub audience: String,
    /// What `iss` must equal, when set.
    pub issuer: Option<String>,
}

/// The secret a rotation replaced, accepted until `until`.
#[derive(Clone)]
pub struct PreviousSecret {
    /// The secret.
    pub secret: Vec<u8>,
    /// After this, tokens it signed are refused.
    pub until: SystemTime,
}

impl std::fmt::Debug for UserTokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTokenSettings")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("previous_until", &self.previous.as_ref().map(|p| p.until))
            .field("jwks_url", &self.jwks_url)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl Config {
    /// The user token settings, checked; `None` when user tokens are off
    /// (neither a secret nor a JWKS URL).
    pub fn user_tokens(&self) -> Result<Option<UserTokenSettings>, ConfigError> {
        let secret = self.user_token_secret.as_deref().map(|s| long_enough(SECRET, s)).transpose()?;
        let previous = match (&self.user_token_previous_secret, &self.user_token_previous_until) {
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::Needs(PREVIOUS, UNTIL)),
            (None, Some(_)) => return Err(ConfigError::Needs(UNTIL, PREVIOUS)),
            (Some(_), Some(_)) if secret.is_none() => return Err(ConfigError::Needs(PREVIOUS, SECRET)),
            (Some(previous), Some(until)) => {
                let previous = long_enough(PREVIOUS, previous)?;
                if Some(&previous) == secret.as_ref() {
                    return Err(ConfigError::Bad(PREVIOUS, format!("must differ from {SECRET}")));
                }
                let until = rfc3339(until).ok_or_else(|| {
                    ConfigError::Bad(
                        UNTIL,
                        format!("not an RFC 3339 time such as 2026-07-01T12:00:00Z (got {until:?})"),
                    )
                })?;
                Some(PreviousSecret { secret: previous, until })
            }
        };
        let jwks_url = self.user_token_jwks_url.as_deref().map(jwks_url).transpose()?;
        if self.user_token_audience.trim().is_empty() {
            return Err(ConfigError::Bad(AUDIENCE, "must not be empty".into()));
        }
        if self.user_token_issuer.as_deref().is_some_and(|i| i.trim().is_empty()) {
            return Err(ConfigError::Bad(ISSUER, "is set but empty".into()));
        }
        if secret.is_none() && jwks_url.is_none() {
            if self.user_token_issuer.is_some() {
                return Err(ConfigError::Needs(
                    ISSUER,
                    "LETTA_BRIDGE_USER_TOKEN_SECRET or LETTA_BRIDGE_USER_TOKEN_JWKS_URL",
                ));
            }
            return Ok(None);
        }
        Ok(Some(UserTokenSettings {
            secret,
            previous,
            jwks_url,
            audience: self.user_token_audience.clone(),
            issuer: self.user_token_issuer.clone(),
        }))
    }
}

fn long_enough(name: &'static str, secret: &str) -> Result<Vec<u8>, ConfigError> {
    if secret.len() < MIN_USER_TOKEN_SECRET_LEN {
        return Err(ConfigError::ShortSecret(name, MIN_USER_TOKEN_SECRET_LEN, secret.len()));
    }
    Ok(secret.as_bytes().to_vec())
}

/// An `https://` URL, or `http://` to a loopback host (keys fetched in the
/// clear from elsewhere could be anyone's).
fn jwks_url(url: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError::Bad(JWKS_URL, format!("{why} (got {url:?})"));
    let parsed: axum::http::Uri = url.parse().map_err(|e| bad(&format!("not a URL: {e}")))?;
    let Some(host) = parsed.host().filter(|h| !h.is_empty()) else {
        return Err(bad("the URL names no host"));
    };
    let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>();
    let loopback = ip.map_or_else(|_| host.eq_ignore_ascii_case("localhost"), |ip| ip.is_loopback());
    match parsed.scheme_str().unwrap_or_default() {
        "https" => Ok(url.to_owned()),
        "http" if loopback => Ok(url.to_owned()),
        "http" => Err(bad("must be https:// (http:// only to a loopback host)")),
        _ => Err(bad("must be an https:// URL")),
    }
}

/// An RFC 3339 time: `Z` or a `±HH:MM` offset, seconds optionally with a
/// fraction (`2026-07-01T12:00:00Z`, `2026-07-01T14:00:00.5+02:00`).
pub(super) fn rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Some(base) = text.strip_suffix(['Z', 'z']) {
        return humantime::parse_rfc3339(&format!("{base}Z")).ok();
    }
    let split = text.len().checked_sub("+00:00".len())?;
    let (base, offset) = (text.get(..split)?, text.get(split..)?);
    let (sign, hh_mm) = (offset.as_bytes()[0], &offset[1..]);
    let (hours, minutes) = hh_mm.split_once(':')?;
    let two_digits =
        |s: &str| (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten();
    let (hours, minutes) = (two_digits(hours)?, two_digits(minutes)?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    let utc = humantime::parse_rfc3339(&format!("{base}Z")).ok()?;
    let shift = Duration::from_secs(hours * 3600 + minutes * 60);
    match sign {
        b'+' => utc.checked_sub(shift),
        b'-' => utc.checked_add(shift),
        _ => None,
    }
}
