//! `Idempotency-Key` on command POSTs: a repeat within the window gets the
//! first answer (marked `Idempotent-Replayed: true`) and sends nothing; the
//! same key with a different request is `422`. A repeat that arrives while the
//! first is still running waits for its answer.
//!
//! Keys belong to their caller: the store keeps each under the caller's
//! principal (`client:<key>`, `admin:<key>`), so the same key sent by
//! another principal is another key and never gets this one's answer. The
//! caller is authorised before its key is looked at.
//!
//! Only answers given after the command went to the runtime are remembered
//! (2xx, 502, 504; a turn's `202` replays with its `Location` again); refusals that sent nothing (4xx, 503) free the key, so a
//! corrected retry can go through. Where answers are kept is the store's
//! business ([`crate::store::IdempotencyStore`]).

use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::IntoParams;

use super::{ApiError, turns};
use crate::store::{Begin, IdempotencyStore, Stored};

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// The `Idempotency-Key` header of command endpoints (`400` when malformed).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// A repeat with the same key within LETTA_BRIDGE_IDEMPOTENCY_WINDOW
    /// returns the first answer (with `Idempotent-Replayed: true`) and sends
    /// nothing; the same key with a different request is 422. 1-255 visible
    /// ASCII characters.
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
}

impl IdempotencyKey {
    /// The key as `principal`'s own (`<principal>:<key>`), as it is stored.
    pub fn of(self, principal: &str) -> Self {
        Self { idempotency_key: self.idempotency_key.map(|key| format!("{principal}:{key}")) }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else { return Ok(Self { idempotency_key: None }) };
        match value.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic()) => {
                Ok(Self { idempotency_key: Some(k.to_owned()) })
            }
            _ => Err(ApiError::BadRequest(format!("Idempotency-Key must be 1-{MAX_KEY_LEN} visible ASCII characters"))),
        }
    }
}

/// Runs `run` at most once per key (see the module doc); `key` is already
/// the caller's own ([`IdempotencyKey::of`]). `request` is what identifies
/// the request for the mismatch check.
pub async fn once<F>(
    store: &dyn IdempotencyStore,
    key: IdempotencyKey,
    request: impl FnOnce() -> String,
    max_wait: Duration,
    run: impl FnOnce() -> F,
) -> Result<Response, ApiError>
where
    F: Future<Output = Result<Response, ApiError>>,
{
    let Some(key) = key.idempotency_key else { return run().await };
    let claim = match store.begin(&key, &request()).await? {
        Begin::First(claim) => claim,
        Begin::Replay(stored) => return Ok(replay(&stored)),
        Begin::Mismatch => {
            return Err(ApiError::Invalid("this Idempotency-Key was already used with a different request".into()));
        }
        Begin::Wait(first) => {
            return match tokio::time::timeout(max_wait, first).await {
                Ok(Some(stored)) => Ok(replay(&stored)),
                _ => Err(ApiError::Conflict(
                    "an earlier request with this Idempotency-Key did not complete; retry it".into(),
                )),
            };
        }
    };
    let response = run().await.unwrap_or_else(IntoResponse::into_response);
    let status = response.status();
    let remember = status.is_success() || status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT;
    if !remember {
        return Ok(response); // `claim` drops here and frees the key
    }
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX).await.map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
    // The command ran: its answer goes to the client even when the store
    // cannot keep it (a repeat would then run it again; said in the log).
    if let Err(e) = claim.finish(Some(Stored { status, content_type, body: body.clone() })).await {
        tracing::warn!(error = %e, "could not remember an answer for its Idempotency-Key");
    }
    Ok(Response::from_parts(parts, body.into()))
}

/// A remembered answer, marked as a replay.
fn replay(stored: &Stored) -> Response {
    let mut res = (stored.status, stored.body.clone()).into_response();
    if let Some(ct) = &stored.content_type {
        res.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    if stored.status == StatusCode::ACCEPTED {
        turns::poll_again(&mut res, &stored.body);
    }
    res
}
