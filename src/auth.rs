//! Bearer tokens and the roles they grant, compared in constant time.
//! Tokens are never logged or formatted (`Debug` is redacted).

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::config::Tokens;

pub use crate::protocol::access::Role;

/// The tokens of the three roles, for checking what callers present.
#[derive(Clone)]
pub struct Auth {
    runtime: String,
    client: String,
    admin: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { <redacted> }")
    }
}

impl Auth {
    /// Checks against `tokens`.
    pub fn new(tokens: &Tokens) -> Self {
        Self { runtime: tokens.runtime.clone(), client: tokens.client.clone(), admin: tokens.admin.clone() }
    }

    /// True when `presented` is the runtime token.
    pub fn is_runtime(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| ct_eq(p, &self.runtime))
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

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(admin: Option<&str>) -> Auth {
        Auth { runtime: "rt-token".into(), client: "cl-token".into(), admin: admin.map(Into::into) }
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
    }
}
