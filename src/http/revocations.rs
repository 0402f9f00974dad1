//! `POST /revocations` (admin token): refuses one end user's token, by its
//! `jti`, everywhere until its `exp` — on every instance of a cluster —
//! and ends the streams and sockets opened with it (`reauth` with reason
//! `token_revoked`; sockets close with 4001). The store's rules:
//! [`crate::store::RevocationStore`].

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{Client, JsonBody};
use super::openapi::ReadProblems;
use super::{ApiError, AppState};
use crate::auth::LEEWAY_SECS;
use crate::protocol::Role;
use crate::protocol::access::grants::MAX_ID_LEN;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_revocation))
}

/// The token to refuse.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The token's `jti` claim (a token without one cannot be revoked: keep
    /// its life short).
    #[schema(min_length = 1, max_length = 256)]
    pub jti: String,
    /// The token's `exp` claim, in seconds since the Unix epoch: the
    /// revocation lasts until a minute after it (the clock skew a token is
    /// taken with; it is refused anyway after that).
    #[serde(deserialize_with = "integral")]
    pub exp: u64,
}

/// A JSON integer, also written with a zero fraction (`500.0`): JSON Schema's
/// `integer`, which the document promises, takes both.
fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64).map(|f| f as u64))
        .ok_or_else(|| serde::de::Error::custom(format!("`exp` must be a whole number of seconds (got {n})")))
}

/// Refuse an end user's token everywhere until its `exp`, and end the streams opened with it.
#[utoipa::path(post, path = "/revocations", tag = "status", request_body = Revocation, security(("client" = [])),
    responses((status = 204, description = "Revoked: every instance refuses the token, and its open streams end (`reauth`, `token_revoked`) within a second"),
              (status = 403, description = "Not the admin token", body = super::Problem, content_type = "application/problem+json"),
              (status = 422, description = "`jti` empty, too long or with control characters", body = super::Problem, content_type = "application/problem+json"),
              (status = 503, description = "The shared store is unavailable, or 100000 revocations are in force", body = super::Problem, content_type = "application/problem+json"),
              ReadProblems))]
async fn post_revocation(
    State(state): State<AppState>,
    Client(role): Client,
    JsonBody(body): JsonBody<Revocation>,
) -> Result<StatusCode, ApiError> {
    if role != Role::Admin {
        return Err(ApiError::Forbidden("POST /revocations needs the admin token".into()));
    }
    let jti = body.jti.as_str();
    if jti.is_empty() || jti.len() > MAX_ID_LEN || jti.chars().any(char::is_control) {
        return Err(ApiError::Invalid(format!("`jti` must be 1-{MAX_ID_LEN} printable characters")));
    }
    // A token is taken until LEEWAY_SECS past its `exp` (clock skew): the
    // revocation outlives it by as much, or the token would come back.
    state.revocations.revoke(jti, body.exp.saturating_add(LEEWAY_SECS)).await?;
    tracing::info!(exp = body.exp, "an end user's token was revoked");
    Ok(StatusCode::NO_CONTENT)
}
