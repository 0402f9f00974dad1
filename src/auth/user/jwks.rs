//! An identity provider's signing keys (LETTA_BRIDGE_USER_TOKEN_JWKS_URL).
//!
//! Fetched when a token first needs them and kept for [`KEYS_TTL`]; a
//! token whose `kid` is not in hand fetches them again, at most once per
//! [`UNKNOWN_KID_REFRESH`], so random `kid`s cannot make the bridge hammer
//! the provider. A fetch takes at most [`FETCH_TIMEOUT`](super::FETCH_TIMEOUT)
//! and [`MAX_JWKS_BYTES`](super::MAX_JWKS_BYTES); when it fails, the keys in hand keep serving (a
//! provider down does not lock every user out) and the next attempt waits
//! [`RETRY_AFTER_FAILURE`]. Only RS256, ES256 (P-256) and EdDSA (Ed25519)
//! signing keys are taken, each pinned to its algorithm; symmetric keys
//! (`oct`) never are. No task of its own: a fetch runs inside the request
//! that needs it, one at a time, and the requests that waited for it use
//! its result.

use std::sync::RwLock;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::TokenError;
use super::fetch::Fetcher;

/// How long fetched keys are used before they are fetched again.
pub const KEYS_TTL: Duration = Duration::from_secs(60 * 60);
/// Least time between two fetches for a `kid` not in hand.
pub const UNKNOWN_KID_REFRESH: Duration = Duration::from_secs(30);
/// Least time between a failed fetch and the next attempt.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// Most keys kept from one set.
pub const MAX_KEYS: usize = 64;

/// One verification key of the set, pinned to its algorithm.
#[derive(Clone)]
pub(super) struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys of one identity provider.
pub struct Jwks {
    url: String,
    fetcher: Fetcher,
    /// The keys in hand and when they were fetched (a std lock: held for a
    /// lookup or an update, never across an `.await`).
    state: RwLock<State>,
    /// One fetch at a time (a tokio lock: held across the fetch).
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("url", &self.url).finish_non_exhaustive()
    }
}

/// The keys in hand, and the times that decide whether to fetch again.
#[derive(Default)]
pub(super) struct State {
    pub(super) keys: Vec<Key>,
    /// The last fetch that succeeded.
    pub(super) fetched: Option<Instant>,
    /// The last fetch that failed, and why (cleared by a success).
    pub(super) failed: Option<(Instant, String)>,
    /// The last fetch made for a `kid` not in hand.
    pub(super) unknown: Option<Instant>,
}

/// What to do for a token's key.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Use the key in hand.
    Use,
    /// Fetch the set first.
    Fetch,
    /// Refuse: no such key, and no fetch is due.
    Unknown,
    /// Refuse: no set was ever fetched, and the last attempt failed.
    Unavailable,
}

impl State {
    pub(super) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid.as_deref() == kid && k.alg == alg)
    }

    /// What to do at `now` for the key `kid` of `alg`; `asked` is when the
    /// token asked (a fetch that succeeded since then answers it).
    pub(super) fn step(&self, kid: Option<&str>, alg: Algorithm, asked: Instant, now: Instant) -> Step {
        let within = |at: Option<Instant>, span: Duration| at.is_some_and(|at| now.duration_since(at) < span);
        let fresh = within(self.fetched, KEYS_TTL) || self.fetched.is_some_and(|at| at >= asked);
        let failed_lately = within(self.failed.as_ref().map(|(at, _)| *at), RETRY_AFTER_FAILURE);
        match self.find(kid, alg) {
            Some(_) if fresh || failed_lately => Step::Use,
            Some(_) => Step::Fetch,
            None if self.fetched.is_none() && failed_lately => Step::Unavailable,
            None if failed_lately || (fresh && within(self.unknown, UNKNOWN_KID_REFRESH)) => Step::Unknown,
            None if self.fetched.is_some_and(|at| at >= asked) => Step::Unknown,
            None => Step::Fetch,
        }
    }

    /// Takes the outcome of a fetch that began at `at`.
    fn fetched(&mut self, outcome: Result<Vec<Key>, String>, at: Instant) {
        match outcome {
            Ok(keys) => {
                self.keys = keys;
                self.fetched = Some(at);
                self.failed = None;
            }
            Err(why) => self.failed = Some((at, why)),
        }
    }

    pub(super) fn answer(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, TokenError> {
        if let Some(key) = self.find(kid, alg) {
            return Ok(key.key.clone());
        }
        match (&self.fetched, &self.failed) {
            (None, Some((_, why))) => Err(TokenError::KeysUnavailable(why.clone())),
            _ => Err(TokenError::UnknownKey(kid.map(str::to_owned))),
        }
    }
}

impl Jwks {
    /// The key set at `url`.
    pub fn new(url: String) -> anyhow::Result<Self> {
        let fetcher = Fetcher::new(&url)?;
        Ok(Self { url, fetcher, state: RwLock::default(), fetching: tokio::sync::Mutex::new(()) })
    }

    /// The key that verifies a token of `alg` naming `kid`, fetching the
    /// set when the rules above say so.
    pub async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, TokenError> {
        let asked = Instant::now();
        let step = self.read().step(kid, alg, asked, asked);
        if step != Step::Fetch {
            return self.read().answer(kid, alg);
        }
        let _one = self.fetching.lock().await;
        // While this waited, another request may have fetched: ask again.
        let now = Instant::now();
        let step = self.read().step(kid, alg, asked, now);
        if step != Step::Fetch {
            return self.read().answer(kid, alg);
        }
        let outcome = self.fetch().await;
        if let Err(why) = &outcome {
            tracing::warn!(url = %self.url, error = %why, "the identity provider's keys could not be fetched");
        }
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.fetched(outcome, now);
        if state.find(kid, alg).is_none() {
            state.unknown = Some(now);
        }
        state.answer(kid, alg)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn fetch(&self) -> Result<Vec<Key>, String> {
        parse(&self.fetcher.get().await?)
    }
}

/// The signing keys of a JWK set (RFC 7517); keys of other kinds or uses
/// are skipped, past [`MAX_KEYS`] too.
pub(super) fn parse(body: &[u8]) -> Result<Vec<Key>, String> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|e| format!("not a JWK set: {e}"))?;
    Ok(set.keys.into_iter().filter_map(key).take(MAX_KEYS).collect())
}

/// One key, with the one algorithm it verifies: RSA keys RS256, P-256 keys
/// ES256, Ed25519 keys EdDSA; a key whose `alg` says otherwise is skipped.
fn key(value: Value) -> Option<Key> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return None;
    }
    let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256)) if p.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        (AlgorithmParameters::OctetKeyPair(p), None | Some(KeyAlgorithm::EdDSA))
            if p.curve == EllipticCurve::Ed25519 =>
        {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(Key { kid: jwk.common.key_id, alg, key })
}
