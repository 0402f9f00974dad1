//! Bearer tokens and the roles they grant, compared in constant time.
//! Tokens are never logged or formatted (`Debug` is redacted).
//!
//! End users' tokens ([`UserTokens`]) are JWTs, verified into a
//! [`UserPrincipal`] when LETTA_BRIDGE_USER_TOKEN_SECRET or
//! LETTA_BRIDGE_USER_TOKEN_JWKS_URL is set.
//!
//! Runtime tokens grant devices ([`RuntimeGrant`]): the shared
//! `LETTA_BRIDGE_RUNTIME_TOKEN` any device, a token of the per-device file
//! ([`DeviceTokens`]) the devices of its line.

mod runtime_tokens;
mod user;

/// rustls with the ring provider and the system's roots, for the bridge's own HTTPS requests (a key set, a webhook).
pub(crate) use user::tls_connector as tls_client;

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

pub use runtime_tokens::{
    DeviceTokens, LineProblem, Loaded, MIN_FILE_TOKEN_LEN, RuntimeGrant, TokensFileError, valid_device_id,
};
pub use user::{
    Expect, FETCH_TIMEOUT, KEYS_TTL, LEEWAY_SECS, MAX_ID_LEN, MAX_JWKS_BYTES, MAX_KEYS, MAX_TOKEN_BYTES,
    RETRY_AFTER_FAILURE, TokenError, UNKNOWN_KID_REFRESH, UserTokens, looks_like_jwt,
};

use crate::config::Tokens;

pub use crate::protocol::access::{Role, UserPrincipal};

/// The tokens of the three roles, for checking what callers present.
#[derive(Clone)]
pub struct Auth {
    /// The shared runtime token (any device); `None` when only the
    /// per-device file grants runtimes.
    runtime: Option<String>,
    client: String,
    admin: Option<String>,
    /// `LETTA_BRIDGE_RUNTIME_TOKENS_FILE`'s tokens, re-read on SIGHUP.
    devices: Option<DeviceTokens>,
    /// The verifier of end users' tokens, when they are on.
    users: Option<Arc<UserTokens>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { <redacted> }")
    }
}

impl Auth {
    /// Checks against `tokens`.
    pub fn new(tokens: &Tokens) -> Self {
        Self {
            runtime: tokens.runtime.clone(),
            client: tokens.client.clone(),
            admin: tokens.admin.clone(),
            devices: None,
            users: None,
        }
    }

    /// Also accepts end users' tokens, verified by `users`.
    pub fn with_user_tokens(self, users: UserTokens) -> Self {
        Self { users: Some(Arc::new(users)), ..self }
    }

    /// The verifier of end users' tokens; `None` when they are off.
    pub fn user_tokens(&self) -> Option<&UserTokens> {
        self.users.as_deref()
    }

    /// Also grants runtimes the devices of `devices`' tokens.
    pub fn with_device_tokens(self, devices: DeviceTokens) -> Self {
        Self { devices: Some(devices), ..self }
    }

    /// What `presented` lets a runtime be, if it is a runtime token: the
    /// shared token any device, a token of the file its line's devices.
    pub fn runtime_grant(&self, presented: Option<&str>) -> Option<RuntimeGrant> {
        let p = presented?;
        // Both are checked, so timing does not tell which one matched.
        let shared = self.runtime.as_deref().is_some_and(|r| ct_eq(p, r));
        let listed = self.devices.as_ref().and_then(|d| d.grant(p));
        if shared { Some(RuntimeGrant::AnyDevice) } else { listed }
    }

    /// Resolves once `presented` no longer lets a runtime be `device` (a
    /// reload of the tokens file took it away); never without a file.
    pub fn revoked(&self, presented: String, device: String) -> impl Future<Output = ()> + Send + 'static {
        let auth = self.clone();
        let reloads = self.devices.as_ref().map(DeviceTokens::reloads);
        async move {
            let Some(mut reloads) = reloads else { return std::future::pending().await };
            while reloads.changed().await.is_ok() {
                if !auth.runtime_grant(Some(&presented)).is_some_and(|g| g.allows(&device)) {
                    return;
                }
            }
            std::future::pending().await
        }
    }

    /// True when `presented` is a runtime token (of any device).
    pub fn is_runtime(&self, presented: Option<&str>) -> bool {
        self.runtime_grant(presented).is_some()
    }

    /// The role `presented` grants to an HTTP client, if any.
    pub fn client_role(&self, presented: Option<&str>) -> Option<Role> {
        let p = presented?;
        // Compare against both so timing does not tell which one matched.
        let admin = self.admin.as_deref().is_some_and(|a| ct_eq(p, a));
        let client = ct_eq(p, &self.client);
        match (admin, client) {
            (true, _) => Some(Role::Admin),
            (false, true) => Some(Role::Client),
            _ => None,
        }
    }

    /// True when an admin token is configured (else privileged commands are refused).
    pub fn has_admin(&self) -> bool {
        self.admin.is_some()
    }
}

/// What an `Authorization` header holds, told apart so that an answer can
/// say what is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// No `Authorization` header.
    Missing,
    /// A header with bytes other than visible ASCII (e.g. a placeholder
    /// such as `lb_462d…` pasted as it is).
    NotAscii,
    /// Not `Bearer <token>`.
    NotBearer,
    /// The token of `Bearer <token>`.
    Token(&'a str),
}

/// What the `Authorization` header of `headers` holds.
pub fn presented(headers: &HeaderMap) -> Presented<'_> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Presented::Missing };
    let Ok(value) = value.to_str() else { return Presented::NotAscii };
    let Some((scheme, token)) = value.split_once(' ') else { return Presented::NotBearer };
    match token.trim() {
        t if scheme.eq_ignore_ascii_case("bearer") && !t.is_empty() => Presented::Token(t),
        _ => Presented::NotBearer,
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    match presented(headers) {
        Presented::Token(t) => Some(t),
        _ => None,
    }
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(admin: Option<&str>) -> Auth {
        Auth {
            runtime: Some("rt-token".into()),
            client: "cl-token".into(),
            admin: admin.map(Into::into),
            devices: None,
            users: None,
        }
    }

    #[test]
    fn each_token_grants_only_its_role() {
        let a = auth(Some("ad-token"));
        assert!(a.is_runtime(Some("rt-token")));
        assert!(!a.is_runtime(Some("cl-token")) && !a.is_runtime(None) && !a.is_runtime(Some("rt-toke")));
        assert_eq!(a.client_role(Some("cl-token")), Some(Role::Client));
        assert_eq!(a.client_role(Some("ad-token")), Some(Role::Admin));
        assert_eq!(a.client_role(Some("rt-token")), None);
        assert_eq!(a.client_role(None), None);
        assert_eq!(auth(None).client_role(Some("ad-token")), None);
    }

    #[test]
    fn the_shared_runtime_token_grants_any_device_and_a_file_token_its_own() {
        let path = std::env::temp_dir().join(format!("lb-auth-tokens-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "file-token-0123456789 dev-a\n").unwrap();
        let devices = DeviceTokens::load(&path, Vec::new()).unwrap();
        let _ = std::fs::remove_file(&path);
        let a = auth(None).with_device_tokens(devices.clone());
        assert_eq!(a.runtime_grant(Some("rt-token")), Some(RuntimeGrant::AnyDevice));
        let grant = a.runtime_grant(Some("file-token-0123456789")).unwrap();
        assert!(grant.allows("dev-a") && !grant.allows("dev-b"));
        assert_eq!(a.runtime_grant(Some("cl-token")), None);
        assert_eq!(a.client_role(Some("file-token-0123456789")), None, "a runtime token is no client's");
        let only_file = Auth { runtime: None, ..auth(None) }.with_device_tokens(devices);
        assert_eq!(only_file.runtime_grant(Some("rt-token")), None);
        assert!(only_file.is_runtime(Some("file-token-0123456789")));
    }

    #[test]
    fn bearer_headers_are_parsed_leniently_in_scheme_only() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        for (value, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("Basic abc", None),
            ("Bearer ", None),
            ("abc", None),
        ] {
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer(&h), want, "{value}");
        }
        h.insert(header::AUTHORIZATION, axum::http::HeaderValue::from_bytes("Bearer lb_462d…".as_bytes()).unwrap());
        assert_eq!(presented(&h), Presented::NotAscii);
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(presented(&h), Presented::NotBearer);
    }
}
