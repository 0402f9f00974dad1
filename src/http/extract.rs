//! Extractors whose every rejection is an [`ApiError`] (problem+json):
//! JSON bodies (400 malformed / 415 / 413 / 422 wrong shape), query strings,
//! path parameters, and the client's or runtime's bearer token (a client,
//! admin or end user's token becomes a [`Role`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::{ApiError, AppState, limits};
use crate::auth::{MAX_TOKEN_BYTES, Presented, Role, RuntimeGrant, bearer, looks_like_jwt, presented};
use crate::store::{FEED_PREFIX, FeedHold, TicketHold};

/// A JSON body, parsed with the path of the first wrong field in the error.
/// A missing `Content-Type` is read as JSON; an empty or `null` body as `{}`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let essence = ct.split(';').next().unwrap_or("").trim();
            if essence != "application/json" && !essence.ends_with("+json") {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "Content-Type must be application/json (got {essence:?})"
                )));
            }
        }
        // A body that trickles in holds its connection as long as it lasts:
        // it must arrive within the idle timeout.
        let within = state.settings.body_timeout;
        let read = tokio::time::timeout(within, Bytes::from_request(req, state)).await.map_err(|_| {
            ApiError::Rejected(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body did not arrive within {within:?} (LETTA_BRIDGE_IDLE_TIMEOUT)"),
            )
        })?;
        let bytes = read.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(state.settings.max_body_bytes)
            } else {
                ApiError::BadRequest(format!("could not read the body: {}", r.body_text()))
            }
        })?;
        // No body, or a JSON `null`, means "no parameters".
        let trimmed = bytes.trim_ascii();
        parse_json(if trimmed.is_empty() || trimmed == b"null" { b"{}" } else { &bytes }).map(JsonBody)
    }
}

/// Parses JSON: syntax errors are `400`, valid JSON of the wrong shape `422`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // JSON is UTF-8 (RFC 8259): checked whole, since a typed body skips
    // the fields it does not know without reading their strings.
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(ApiError::MalformedJson(format!("malformed JSON: the body is not UTF-8 ({e})")));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => {
            de.end().map_err(|e| ApiError::MalformedJson(format!("malformed JSON: {e}")))?;
            // serde's derived structs also accept arrays (fields by position).
            let text = std::str::from_utf8(bytes).unwrap_or("");
            if !crate::protocol::frame::starts_with_object(text) {
                return Err(ApiError::Invalid("wrong shape: the body must be a JSON object".into()));
            }
            Ok(value)
        }
        Err(e) if e.inner().is_syntax() || e.inner().is_eof() => {
            // Nesting beyond the parser's depth (128) is a syntax error too.
            Err(ApiError::MalformedJson(format!("malformed JSON: {}", e.into_inner())))
        }
        Err(e) => {
            // A shape error can surface before a syntax error further on:
            // report syntax first, so only valid JSON is "wrong shape".
            if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                return Err(ApiError::MalformedJson(format!("malformed JSON: {syntax}")));
            }
            let path = e.path().to_string();
            let inner = e.into_inner();
            Err(ApiError::Invalid(if path == "." {
                format!("wrong shape: {inner}")
            } else {
                format!("wrong shape at `{path}`: {inner}")
            }))
        }
    }
}

/// A query string; a bad one is a `400` problem.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path parameters; bad ones are a `400` problem.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// The caller presented a client or admin token.
pub struct Client(pub Role);

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        client_role(state, &parts.headers).await.map(Client)
    }
}

/// The role of the client or admin token in `headers`' `Authorization`
/// header, or a `401` that says what is wrong with what was sent.
pub async fn client_role(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Role, ApiError> {
    match presented(headers) {
        Presented::Missing => Err(ApiError::Unauthorized("missing `Authorization: Bearer <client token>` header")),
        Presented::NotAscii => Err(ApiError::Unauthorized(
            "the `Authorization` header is not plain ASCII: send the token itself (`Bearer lb_…` as printed at start), not a placeholder with characters such as `…`",
        )),
        Presented::NotBearer => {
            Err(ApiError::Unauthorized("the `Authorization` header must be `Bearer <client token>`"))
        }
        Presented::Token(token) => token_role(state, token).await,
    }
}

/// The role `token` grants on the client API: the client or admin token's,
/// or an end user's when it is a user token that verifies (a `401`
/// `invalid_token` saying why when it does not); else a `401` that says
/// which token it is when it is the runtime's. The request then counts
/// against its credential's rate (a `429` beyond it: [`limits::admit`]):
/// every door that takes a client, admin or user token passes here.
pub async fn token_role(state: &AppState, token: &str) -> Result<Role, ApiError> {
    let role = verified_role(state, token).await?;
    limits::admit(&state.limits, &role).await?;
    Ok(role)
}

/// The role `token` grants, uncounted (see [`token_role`]).
async fn verified_role(state: &AppState, token: &str) -> Result<Role, ApiError> {
    if let Some(role) = state.auth.client_role(Some(token)) {
        return Ok(role);
    }
    if token.starts_with(FEED_PREFIX) {
        return Err(ApiError::Unauthorized(
            "this is a feed (`fd_…`): it opens only `GET /events?feed=…`, never as a bearer token",
        ));
    }
    if state.auth.is_runtime(Some(token)) {
        return Err(ApiError::Unauthorized(
            "this is a runtime token (what `letta remote` presents as LETTA_API_KEY); this API takes the client or admin token",
        ));
    }
    match state.auth.user_tokens() {
        Some(users) if looks_like_jwt(token) || token.len() > MAX_TOKEN_BYTES => {
            let role = Role::User(Arc::new(users.verify(token).await?));
            super::reauth::refuse_revoked(state, &role).await?;
            Ok(role)
        }
        None if looks_like_jwt(token) => Err(ApiError::InvalidToken(
            "user tokens are off on this bridge (no LETTA_BRIDGE_USER_TOKEN_SECRET or LETTA_BRIDGE_USER_TOKEN_JWKS_URL is set)"
                .into(),
        )),
        _ => Err(ApiError::Unauthorized("invalid token: neither this bridge's client token nor its admin token")),
    }
}

/// The caller presented a runtime token (the shared one or one of the
/// per-device file); which devices it may be.
pub struct RuntimeCaller(pub RuntimeGrant);

impl FromRequestParts<AppState> for RuntimeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(&parts.headers) {
            None => Err(ApiError::Unauthorized("missing `Authorization: Bearer <runtime token>` header")),
            Some(token) => state
                .auth
                .runtime_grant(Some(token))
                .map(RuntimeCaller)
                .ok_or(ApiError::Unauthorized("invalid runtime token")),
        }
    }
}

/// A reader of the event stream: a client or admin token in the
/// `Authorization` header, or, only when no such header is sent at all, a
/// stream ticket or a feed in the query (for `EventSource` and n8n's SSE
/// Trigger, which cannot set headers).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamReader {
    /// A ticket from `POST /tickets`, instead of the `Authorization` header
    /// (for `EventSource`, which cannot set headers). The same URL keeps
    /// working for EventSource's own reconnects: while a stream holds the
    /// ticket and for 60 s after it ended; a reconnect takes the ticket over
    /// (the earlier stream ends).
    ticket: Option<String>,
    /// A feed from `POST /feeds` (`fd_…`, the `url` it answered), instead of
    /// the `Authorization` header: the stream holds the feed's filter (the
    /// query's own filters only narrow it) and, for an end user's feed, the
    /// user's grants. Works until the feed is deleted (its streams then
    /// end); an end user's until their token's `exp`. Ignored when an
    /// `Authorization` header is sent; with a `ticket` too, `401`.
    feed: Option<String>,
    /// The stream's hold on its ticket.
    #[serde(skip)]
    #[param(ignore)]
    pub hold: Option<TicketHold>,
    /// The stream's hold on its feed.
    #[serde(skip)]
    #[param(ignore)]
    pub feed_hold: Option<FeedHold>,
    /// Whose stream it is: the header's token's role, or the ticket's
    /// (whoever minted it), or the feed's. Always set by the extractor.
    #[serde(skip)]
    #[param(ignore)]
    pub role: Option<Role>,
}

impl FromRequestParts<AppState> for StreamReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let Client(role) = Client::from_request_parts(parts, state).await?;
            return Ok(Self { ticket: None, feed: None, hold: None, feed_hold: None, role: Some(role) });
        }
        let ApiQuery(mut reader) = ApiQuery::<Self>::from_request_parts(parts, state).await?;
        match (reader.ticket.take(), reader.feed.take()) {
            (Some(_), Some(_)) => Err(ApiError::Unauthorized("send a `ticket` or a `feed`, not both")),
            (None, Some(feed)) => {
                let Some(hold) = state.feeds.open(&feed).await? else {
                    return Err(ApiError::Unauthorized(
                        "invalid, deleted or expired feed; POST /feeds makes one (GET /feeds lists yours)",
                    ));
                };
                reader.role = Some(hold.role());
                reader.feed_hold = Some(hold);
                Ok(reader)
            }
            (Some(ticket), None) => {
                let Some(hold) = state.tickets.open(&ticket).await? else {
                    return Err(ApiError::Unauthorized("invalid or expired ticket; get a new one from POST /tickets"));
                };
                reader.role = Some(hold.role());
                reader.hold = Some(hold);
                Ok(reader)
            }
            (None, None) => Err(ApiError::Unauthorized(
                "missing `Authorization: Bearer <client token>` header, or a `ticket` or `feed` query parameter",
            )),
        }
    }
}
