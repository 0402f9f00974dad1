//! Who the caller is, as every door hands it to the one privilege decision:
//! the client or admin token, or an end user's verified token (issue 21)
//! with its `sub`, expiry and grants. How a token became a role is `auth`'s
//! business; this is only what it became.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::grants::Grants;

/// What an HTTP caller's credential allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The commands and fields of [`super::CLIENT_COMMANDS`], and reading.
    Client,
    /// Everything, privileged device commands included.
    Admin,
    /// An end user's token: what its grants allow, never more than
    /// [`Role::Client`]. Shared, not copied: a stream keeps it for its life.
    User(Arc<UserPrincipal>),
}

/// An end user, as a verified user token names them. Built afresh from each
/// token presented: grants are never cached by `sub` across requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPrincipal {
    /// The token's `sub`: the end user.
    pub sub: Box<str>,
    /// The token's `exp`, in seconds since the Unix epoch.
    pub exp: u64,
    /// The token's `jti`, when it has one (what a revocation names).
    pub jti: Option<Box<str>>,
    /// What the token's `authorization_details` grant.
    pub grants: Grants,
}

impl UserPrincipal {
    /// When the token stops being accepted.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.exp)
    }
}

impl Role {
    /// Who the caller is, for what the bridge keeps per caller
    /// (`Idempotency-Key` answers): `client`, `admin` or `user:<sub>`. A
    /// principal names its kind first and never holds a `:` after it (the
    /// `sub` is percent-encoded: `%` and `:` become `%25` and `%3A`), so
    /// `<principal>:<key>` never means two things.
    pub fn principal(&self) -> Cow<'static, str> {
        match self {
            Self::Client => Cow::Borrowed("client"),
            Self::Admin => Cow::Borrowed("admin"),
            Self::User(user) => {
                let mut principal = String::with_capacity("user:".len() + user.sub.len());
                principal.push_str("user:");
                for c in user.sub.chars() {
                    match c {
                        '%' => principal.push_str("%25"),
                        ':' => principal.push_str("%3A"),
                        c => principal.push(c),
                    }
                }
                Cow::Owned(principal)
            }
        }
    }

    /// May the caller read the operator's views (`GET /status`, `GET
    /// /metrics`: every runtime, counters of the whole bridge)? The client
    /// and admin tokens; an end user reads `GET /runtimes`, filtered.
    pub fn reads_operations(&self) -> bool {
        !matches!(self, Self::User(_))
    }

    /// May the caller make feeds (`POST /feeds`: a credential for `GET
    /// /events` in a URL, for years)? The admin token, for any filter, and
    /// an end user's token, for what its grants read until its `exp`. Not
    /// the client token: it is the app's backend's, and a feed of it would
    /// put everything the bridge streams into a URL.
    pub fn makes_feeds(&self) -> bool {
        !matches!(self, Self::Client)
    }

    /// May the caller list and delete the feed that `owner` (a
    /// [`Self::principal`]) made? The admin token every feed (it may need to
    /// end a user's leaked URL); an end user their own, whichever of their
    /// tokens made it.
    pub fn manages_feed(&self, owner: &str) -> bool {
        match self {
            Self::Admin => true,
            Self::Client => false,
            Self::User(_) => self.principal() == owner,
        }
    }

    /// May the caller make webhooks (`POST /webhooks`: the bridge posts
    /// events to a URL of the caller's)? The admin token, for any filter,
    /// and an end user's token, for the events its grants read until its
    /// `exp`. Not the client token: it is the app's backend's, and a hook
    /// of it would send everything the bridge streams to any URL.
    pub fn makes_webhooks(&self) -> bool {
        !matches!(self, Self::Client)
    }

    /// May the caller list, delete and redeliver the webhook that `owner`
    /// (a [`Self::principal`]) made? The admin token every hook; an end
    /// user their own.
    pub fn manages_webhook(&self, owner: &str) -> bool {
        match self {
            Self::Admin => true,
            Self::Client => false,
            Self::User(_) => self.principal() == owner,
        }
    }

    /// May the caller send messages to `agent` in `conversation` on
    /// `runtime`? What the OpenAI-compatible door lists as its models: the
    /// agents a caller can talk to (an end user: where a grant holds `input`).
    pub fn sends_to(&self, runtime: &str, agent: &str, conversation: &str) -> bool {
        match self {
            Self::Admin | Self::Client => true,
            Self::User(user) => user.grants.allows(super::grants::Action::Input, runtime, agent, conversation),
        }
    }

    /// The end user, when the caller is one.
    pub fn user(&self) -> Option<&Arc<UserPrincipal>> {
        match self {
            Self::User(user) => Some(user),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(sub: &str) -> Role {
        Role::User(Arc::new(UserPrincipal { sub: sub.into(), exp: 0, jti: None, grants: Grants::default() }))
    }

    #[test]
    fn a_user_principal_holds_no_colon_after_its_kind() {
        assert_eq!(user("alice").principal(), "user:alice");
        assert_eq!(user("tenant:alice").principal(), "user:tenant%3Aalice");
        assert_eq!(user("50%:x").principal(), "user:50%25%3Ax");
        assert_ne!(user("a:b").principal(), user("a%3Ab").principal(), "the encoding is one-to-one");
    }

    #[test]
    fn feeds_are_made_by_the_admin_and_end_users_and_managed_by_their_maker_or_the_admin() {
        assert!(Role::Admin.makes_feeds() && user("alice").makes_feeds());
        assert!(!Role::Client.makes_feeds(), "the client token never puts its reads into a URL");
        assert!(Role::Admin.manages_feed("user:alice") && Role::Admin.manages_feed("admin"));
        assert!(user("alice").manages_feed("user:alice"));
        assert!(!user("bob").manages_feed("user:alice") && !user("alice").manages_feed("admin"));
        assert!(!Role::Client.manages_feed("admin") && !Role::Client.manages_feed("client"));
    }

    #[test]
    fn webhooks_are_made_by_the_admin_and_end_users_and_managed_by_their_maker_or_the_admin() {
        assert!(Role::Admin.makes_webhooks() && user("alice").makes_webhooks());
        assert!(!Role::Client.makes_webhooks(), "the client token never sends its reads to a URL");
        assert!(Role::Admin.manages_webhook("user:alice") && user("alice").manages_webhook("user:alice"));
        assert!(!user("bob").manages_webhook("user:alice") && !Role::Client.manages_webhook("admin"));
    }
}
