//! The one error type of the HTTP API, answered as `application/problem+json`
//! (RFC 9457). Client mistakes are not logged as errors; internal ones are
//! logged once, here.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::TokenError;
use crate::letta::messages::MessageError;
use crate::protocol::CommandError;
use crate::protocol::turn::{TurnError, TurnResult};
use crate::runtime::{DispatchError, PendingError, RegisterError, RouteError, Unavailable};
use crate::store::StoreError;

/// Seconds a client should wait before retrying a `503`.
const RETRY_AFTER_SECS: u32 = 2;

/// Seconds a client should wait before sending a turn again whose failure
/// the runtime reported as `retryable` (the turn-failed `502`). The runtime
/// has already retried the model call itself before it gives up: three
/// times, after 1, 2 and 4 s (letta-code's transient-provider backoff,
/// `src/agent/turn-recovery-policy.ts`); 8 s is that backoff's next step,
/// so a client continues it rather than starting it over.
const TURN_RETRY_AFTER_SECS: u32 = 8;

/// Everything a handler can answer besides success, each with its status and problem type.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A missing or wrong token or ticket (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A bad, expired or unsigned user token (401, RFC 6750 `invalid_token`).
    #[error("invalid user token: {0}")]
    InvalidToken(String),
    /// A user token whose grants do not allow the request (403, RFC 6750
    /// `insufficient_scope`), naming what is missing.
    #[error("{detail}")]
    InsufficientScope {
        /// What was refused, for a human.
        detail: String,
        /// The action and scope the request needs.
        missing: Box<MissingGrant>,
    },
    /// An identity provider's key set could not be fetched (503).
    #[error("{0}")]
    KeysUnavailable(String),
    /// A token without the role, or a browser origin not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such endpoint or runtime (404).
    #[error("{0}")]
    NotFound(String),
    /// A body that is not JSON (400).
    #[error("{0}")]
    MalformedJson(String),
    /// A bad query string, path or header (400).
    #[error("{0}")]
    BadRequest(String),
    /// Valid JSON of the wrong shape (422).
    #[error("{0}")]
    Invalid(String),
    /// A body over LETTA_BRIDGE_MAX_BODY_BYTES (413).
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// A body that is not declared as JSON (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Several runtimes online and none named (409); the candidates.
    #[error("several runtimes are online; name one with ?runtime=<id> or /runtimes/{{id}}/…")]
    Ambiguous(Vec<String>),
    /// A request that clashes with another (409).
    #[error("{0}")]
    Conflict(String),
    /// No runtime to take the command, or no room for it (503).
    #[error("{0}")]
    Unavailable(String),
    /// No reply in time, or the frame could not even be written in time.
    #[error("{0}")]
    Timeout(String),
    /// The runtime disconnected before the command was written or answered.
    #[error("{0}")]
    RuntimeGone(String),
    /// `wait=completion`: the turn ended with `stop_reason: "error"`.
    #[error("the runtime ended the turn of request {:?} with an error: {}", .0.request_id, .0.error_text())]
    TurnFailed(Box<TurnResult>),
    /// The cluster's shared engine cannot be reached.
    #[error("{0}")]
    EngineUnavailable(String),
    /// The bridge instance holding the runtime does not answer.
    #[error("{0}")]
    RuntimeUnreachable(String),
    /// LETTA_BRIDGE_MAX_STREAMS streams are open.
    #[error("{0}")]
    TooManyStreams(String),
    /// More than LETTA_BRIDGE_MAX_CONNECTIONS connections are open.
    #[error("{0}")]
    TooManyConnections(String),
    /// A per-credential limit or the connect rate (`429`).
    #[error("{detail}")]
    RateLimited {
        /// `commands`, `streams` or `connect`.
        limit: &'static str,
        /// What was reached, naming its setting.
        detail: String,
        /// Seconds until a retry is worth it.
        retry_after: u64,
    },
    /// An axum rejection we pass on with its own status (e.g. a bad WebSocket upgrade).
    #[error("{1}")]
    Rejected(StatusCode, String),
    /// A bug or an I/O failure (500), logged once.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// An `application/problem+json` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:letta-bridge:runtime-offline`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What exactly was wrong, for a human.
    pub detail: String,
    /// With `409` ambiguous-runtime: the runtimes to choose from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<String>>,
    /// With `502` turn-failed: the finished turn, as `wait=completion` answers
    /// it (with the runtime's `failure` report when it sent one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn: Option<Box<TurnResult>>,
    /// With `429` rate-limited: the limit reached (`commands`: the
    /// credential's requests per second; `streams`: its open streams;
    /// `connect`: this instance's new connections per second).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// With `403` insufficient-scope: what the user token's grants lack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Box<MissingGrant>>,
}

/// What an end user's token lacks for a request: an action, on a scope
/// when the request has one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct MissingGrant {
    /// The action needed (`read`, `input`, `approve`, `abort`, `sync`);
    /// absent when no grant allows the request (a raw or privileged command).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The runtime the request addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The agent the request addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The conversation the request addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The problem type's last part (`runtime-unavailable`, …): what other
    /// doors name the error by.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    /// Seconds a client should wait before trying again, when it should.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::TurnFailed(t) if t.retryable() => Some(TURN_RETRY_AFTER_SECS),
            Self::RateLimited { retry_after, .. } => Some(u32::try_from(*retry_after).unwrap_or(u32::MAX)),
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_AFTER_SECS),
            _ => None,
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            Self::Unauthorized(_) => (S::UNAUTHORIZED, "unauthorized"),
            Self::InvalidToken(_) => (S::UNAUTHORIZED, "invalid-token"),
            Self::InsufficientScope { .. } => (S::FORBIDDEN, "insufficient-scope"),
            Self::KeysUnavailable(_) => (S::SERVICE_UNAVAILABLE, "keys-unavailable"),
            Self::Forbidden(_) => (S::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (S::NOT_FOUND, "not-found"),
            Self::MalformedJson(_) => (S::BAD_REQUEST, "malformed-json"),
            Self::BadRequest(_) => (S::BAD_REQUEST, "bad-request"),
            Self::Invalid(_) => (S::UNPROCESSABLE_ENTITY, "invalid-body"),
            Self::TooLarge(_) => (S::PAYLOAD_TOO_LARGE, "body-too-large"),
            Self::UnsupportedMediaType(_) => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type"),
            Self::Ambiguous(_) => (S::CONFLICT, "ambiguous-runtime"),
            Self::Conflict(_) => (S::CONFLICT, "conflict"),
            Self::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "runtime-unavailable"),
            Self::Timeout(_) => (S::GATEWAY_TIMEOUT, "reply-timeout"),
            Self::RuntimeGone(_) => (S::BAD_GATEWAY, "runtime-disconnected"),
            Self::TurnFailed(_) => (S::BAD_GATEWAY, "turn-failed"),
            Self::EngineUnavailable(_) => (S::SERVICE_UNAVAILABLE, "engine-unavailable"),
            Self::RuntimeUnreachable(_) => (S::SERVICE_UNAVAILABLE, "runtime-unreachable"),
            Self::TooManyStreams(_) => (S::SERVICE_UNAVAILABLE, "too-many-streams"),
            Self::TooManyConnections(_) => (S::SERVICE_UNAVAILABLE, "too-many-connections"),
            Self::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "rate-limited"),
            Self::Rejected(status, _) => (*status, "rejected"),
            Self::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let detail = match &self {
            Self::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "internal error; see the bridge's log".to_owned()
            }
            other => other.to_string(),
        };
        let problem = Problem {
            kind: format!("urn:letta-bridge:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            candidates: None,
            turn: None,
            limit: None,
            missing: None,
        };
        let retry_after = self.retry_after();
        let challenge = match &self {
            Self::InvalidToken(why) => Some(bearer_error("invalid_token", why)),
            Self::InsufficientScope { detail, .. } => Some(bearer_error("insufficient_scope", detail)),
            _ if status == StatusCode::UNAUTHORIZED => Some(HeaderValue::from_static("Bearer")),
            _ => None,
        };
        let problem = match self {
            Self::Ambiguous(c) => Problem { candidates: Some(c), ..problem },
            Self::TurnFailed(t) => Problem { turn: Some(t), ..problem },
            Self::InsufficientScope { missing, .. } => Problem { missing: Some(missing), ..problem },
            Self::RateLimited { limit, .. } => Problem { limit: Some(limit.to_owned()), ..problem },
            _ => problem,
        };
        let body = serde_json::to_vec(&problem).expect("problems serialise");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Longest `error_description` in a `WWW-Authenticate` challenge.
const MAX_DESCRIPTION: usize = 200;

/// An RFC 6750 challenge: `Bearer error="<code>", error_description="…"`,
/// the description cut to the characters §3 allows (no `"` or `\`).
fn bearer_error(code: &str, description: &str) -> HeaderValue {
    let description: String = description
        .chars()
        .take(MAX_DESCRIPTION)
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect();
    HeaderValue::from_str(&format!("Bearer error=\"{code}\", error_description=\"{description}\""))
        .expect("visible ASCII is a header value")
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::KeysUnavailable(_) => Self::KeysUnavailable(e.to_string()),
            e => Self::InvalidToken(e.to_string()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::BadRequest(format!("invalid query string: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::BadRequest(format!("invalid path: {}", r.body_text()))
    }
}

impl From<WebSocketUpgradeRejection> for ApiError {
    fn from(r: WebSocketUpgradeRejection) -> Self {
        ApiError::Rejected(r.status(), format!("expected a WebSocket upgrade: {}", r.body_text()))
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<MessageError> for ApiError {
    fn from(e: MessageError) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::Ambiguous(ids) => Self::Ambiguous(ids),
            RouteError::Unknown(_) => Self::NotFound(e.to_string()),
            RouteError::NoneOnline | RouteError::Offline(_) => Self::Unavailable(e.to_string()),
        }
    }
}

impl From<PendingError> for ApiError {
    fn from(e: PendingError) -> Self {
        match e {
            PendingError::Duplicate => Self::Conflict(e.to_string()),
            PendingError::Full => Self::Unavailable(e.to_string()),
        }
    }
}

impl From<TurnError> for ApiError {
    fn from(e: TurnError) -> Self {
        match e {
            TurnError::NotInput => Self::BadRequest(e.to_string()),
            TurnError::NoAgent => Self::Invalid(e.to_string()),
            TurnError::Refused { .. } => Self::Conflict(e.to_string()),
            TurnError::RuntimeGone(_) => Self::RuntimeGone(e.to_string()),
            TurnError::TimedOut { .. } => Self::Timeout(e.to_string()),
            TurnError::Lagged { .. } => Self::Internal(anyhow::Error::new(e)),
            TurnError::LogReset(_) => Self::EngineUnavailable(e.to_string()),
            TurnError::Failed(turn) => Self::TurnFailed(turn),
        }
    }
}

/// A command's outcome as a problem: the one place where the runtime
/// side's vocabulary meets HTTP statuses.
impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> Self {
        match e {
            DispatchError::Route(e) => e.into(),
            DispatchError::Pending(e) => e.into(),
            DispatchError::Turn(e) => e.into(),
            DispatchError::Unavailable(e) => e.into(),
            DispatchError::Unreachable(_) => Self::RuntimeUnreachable(e.to_string()),
            DispatchError::Full => Self::Unavailable(e.to_string()),
            DispatchError::Gone(_) => Self::RuntimeGone(e.to_string()),
            // Nothing was sent: `503` + `Retry-After`, which frees an
            // `Idempotency-Key` (a `502` would be remembered and replayed).
            DispatchError::NotSent(_) => Self::Unavailable(e.to_string()),
            DispatchError::NotTaken(_) | DispatchError::NoReply(_) => Self::Timeout(e.to_string()),
        }
    }
}

impl From<Unavailable> for ApiError {
    fn from(e: Unavailable) -> Self {
        Self::EngineUnavailable(e.to_string())
    }
}

impl From<RegisterError> for ApiError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::Full(full) => Self::Unavailable(full.to_string()),
            RegisterError::Unavailable(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::EngineUnavailable(e.to_string())
    }
}
