//! End users' tokens (issue 21) at every door: what refuses one (the
//! bad-token matrix), that a good one is taken where the client token is,
//! key rotation, an identity provider's key set, and the settings at start.
//! Here: minting tokens, the doors, and a key set served by the test.

mod jwks;
mod matrix;
mod rotation;
mod start;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use letta_bridge::Config;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use crate::helpers::*;

/// The HS256 secret of these tests.
pub const USER_SECRET: &str = "test-user-token-secret-000000000000001";
/// The device the relay door addresses.
pub const DEVICE: &str = "dev-a";

/// The RSA key pair of the RS256 tests: made for these tests, never used
/// anywhere else (`openssl genrsa 2048`, PKCS#1 DER, and its public JWK).
pub const TEST_ONLY_RSA_PRIVATE_DER: &[u8] = include_bytes!("keys/TEST-ONLY-rsa-2048-private.der");
pub const TEST_ONLY_RSA_PUBLIC_JWK: &str = include_str!("keys/TEST-ONLY-rsa-2048-public.jwk.json");

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Alice's claims (every action on `agent-1`/`conv-1`, any runtime), valid
/// for ten minutes, with `extra` merged in (`null` removes a claim).
pub fn claims(extra: Value) -> Value {
    let mut claims = json!({"sub": "alice", "aud": "letta-bridge", "exp": now() + 600, "jti": "alice-1",
        "authorization_details": [{"type": "letta-bridge", "actions": ["read", "input", "approve", "abort", "sync"],
            "scopes": [{"agent_id": "agent-1", "conversation_id": "conv-1"}]}]});
    let map = claims.as_object_mut().unwrap();
    for (key, value) in extra.as_object().unwrap() {
        if value.is_null() {
            map.remove(key);
        } else {
            map.insert(key.clone(), value.clone());
        }
    }
    claims
}

/// `claims` signed with HS256 and `secret`.
pub fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::default(), claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// `claims` signed with `key` under `alg`, naming `kid`.
pub fn signed(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let header = Header { kid: Some(kid.into()), ..Header::new(alg) };
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A token with this header and these claims, and `signature` as it is.
pub fn hand_made(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()), b64(signature))
}

/// Base64url without padding (JWS compact serialisation), for hand-made tokens.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key of the test's identity provider, with its public JWK.
pub struct SigningKey {
    pub alg: Algorithm,
    pub kid: &'static str,
    pub key: EncodingKey,
    pub jwk: Value,
}

impl SigningKey {
    /// A P-256 key made now.
    pub fn es256(kid: &'static str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = pair.public_key_raw();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": b64(&point[1..33]), "y": b64(&point[33..])});
        Self { alg: Algorithm::ES256, kid, key: EncodingKey::from_ec_der(&pair.serialize_der()), jwk }
    }

    /// An Ed25519 key made now.
    pub fn ed25519(kid: &'static str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pair.public_key_raw())});
        Self { alg: Algorithm::EdDSA, kid, key: EncodingKey::from_ed_der(&pair.serialize_der()), jwk }
    }

    /// The committed test-only RSA key.
    pub fn rs256() -> Self {
        let jwk: Value = serde_json::from_str(TEST_ONLY_RSA_PUBLIC_JWK).unwrap();
        let kid = "test-only-rsa";
        assert_eq!(jwk["kid"], kid);
        Self { alg: Algorithm::RS256, kid, key: EncodingKey::from_rsa_der(TEST_ONLY_RSA_PRIVATE_DER), jwk }
    }

    /// `claims` signed with this key.
    pub fn sign(&self, claims: &Value) -> String {
        signed(self.alg, self.kid, &self.key, claims)
    }
}

/// A key set served by the test on port 0, counting its fetches.
pub struct KeySet {
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl KeySet {
    pub async fn serve(keys: &[&SigningKey]) -> Self {
        let keys = Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (shared, count) = (keys.clone(), fetches.clone());
        let route = axum::routing::get(move || async move {
            count.fetch_add(1, Ordering::SeqCst);
            axum::Json(json!({"keys": *shared.lock().unwrap()}))
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/.well-known/jwks.json", route);
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, keys, fetches, server }
    }

    /// How many times the set was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Publishes one more key (a rotation at the provider).
    pub fn add(&self, key: &SigningKey) {
        self.keys.lock().unwrap().push(key.jwk.clone());
    }
}

impl Drop for KeySet {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A bridge with user tokens on: the HS256 secret, and `jwks` when given.
pub async fn spawn_with_user_tokens(jwks: Option<&KeySet>, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let url = jwks.map(|k| k.url.clone());
    spawn_app_with(|c| {
        c.user_token_secret = Some(USER_SECRET.into());
        c.user_token_jwks_url = url;
        tweak(c);
    })
    .await
}

/// Every way in that takes the client token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `GET /runtimes`, `Authorization: Bearer`.
    Rest,
    /// `POST /sync`, `Authorization: Bearer`.
    Command,
    /// `GET /events`, `Authorization: Bearer`.
    Sse,
    /// `POST /tickets`.
    Tickets,
    /// The relay socket with `?token=`.
    RelayQuery,
    /// `/app-server/ws`, `Authorization: Bearer`.
    AppServer,
    /// `GET /v1/environments`.
    Environments,
}

pub const DOORS: [Door; 7] =
    [Door::Rest, Door::Command, Door::Sse, Door::Tickets, Door::RelayQuery, Door::AppServer, Door::Environments];

/// What a door answered: the status (101 for an opened socket), the
/// challenge, and a problem's body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub challenge: Option<String>,
    pub body: Value,
}

impl Answer {
    /// Asserts an RFC 6750 `invalid_token` refusal; returns its description.
    pub fn assert_invalid_token(&self, what: &str) -> String {
        assert_eq!(self.status, 401, "{what}: {self:?}");
        assert_eq!(self.body["type"], "urn:letta-bridge:invalid-token", "{what}: {self:?}");
        let challenge = self.challenge.as_deref().unwrap_or_default();
        assert!(challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""), "{what}: {challenge}");
        challenge.to_owned()
    }
}

impl TestApp {
    /// Knocks at `door` with `token`.
    pub async fn knock(&self, door: Door, token: &str) -> Answer {
        let http = &self.http;
        match door {
            Door::Rest => answer(http.get(self.url("/runtimes")).bearer_auth(token)).await,
            Door::Command => answer(http.post(self.url("/sync")).bearer_auth(token).json(&scoped(json!({})))).await,
            Door::Sse => answer(http.get(self.url("/events")).bearer_auth(token)).await,
            Door::Tickets => answer(http.post(self.url("/tickets")).bearer_auth(token)).await,
            Door::RelayQuery => self.upgrade(&format!("/v1/environments/{DEVICE}/status/ws?token={token}"), None).await,
            Door::AppServer => self.upgrade("/app-server/ws", Some(token)).await,
            Door::Environments => answer(http.get(self.url("/v1/environments")).bearer_auth(token)).await,
        }
    }

    /// Opens a client socket at `path`; the refusal when it does not open.
    pub async fn upgrade(&self, path: &str, token: Option<&str>) -> Answer {
        use tungstenite::client::IntoClientRequest;
        let mut req = self.ws_url(path).into_client_request().unwrap();
        if let Some(t) = token {
            req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok(_) => Answer { status: 101, challenge: None, body: Value::Null },
            Err(tungstenite::Error::Http(res)) => Answer {
                status: res.status().as_u16(),
                challenge: res.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()),
                body: res.body().as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default(),
            },
            Err(e) => panic!("{path}: {e}"),
        }
    }
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let res = req.send().await.expect("request sent");
    let status = res.status().as_u16();
    let challenge = res.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let json = res.headers().get("content-type").is_some_and(|v| v.to_str().unwrap().contains("json"));
    let body = if json { res.json().await.unwrap_or_default() } else { Value::Null };
    Answer { status, challenge, body }
}
