//! The OpenAI-compatible door's one error shape, `{"error": {"message",
//! "type", "param", "code"}}`, as OpenAI answers and its SDKs read it
//! (`AuthenticationError` for a `401`, `NotFoundError` for a `404`, …).
//! Every error of the core ([`ApiError`]) keeps its status, its message,
//! `Retry-After` and the bearer challenge; its problem type becomes the
//! `code` (`runtime_unavailable`, `reply_timeout`, …).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::ApiError;

/// An error as OpenAI's API answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorObject,
}

/// The `error` of an [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// What exactly was wrong, for a human.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`
    /// or `server_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The request field at fault, when one is.
    pub param: Option<&'static str>,
    /// A machine-readable code: `invalid_api_key`, `model_not_found`,
    /// `missing_required_parameter`, `invalid_type`, `invalid_value`,
    /// `approval_required`, `runtime_unavailable`, `reply_timeout`, …
    pub code: String,
}

/// An error of the door, answered in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    body: ErrorObject,
    retry_after: Option<u32>,
}

impl OpenAiError {
    /// A `400` about the request field `param`.
    pub fn invalid(param: &'static str, code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message).param(param)
    }

    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let body = ErrorObject { message: message.into(), kind: kind_of(status), param: None, code: code.to_owned() };
        Self { status, body, retry_after: None }
    }

    /// The same, about the request field `param`.
    pub fn param(mut self, param: &'static str) -> Self {
        self.body.param = Some(param);
        self
    }

    /// Its status.
    #[cfg(test)]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Its `error` object (what a stream that already began sends).
    pub fn into_body(self) -> ErrorBody {
        ErrorBody { error: self.body }
    }
}

/// OpenAI's error `type` for a status.
fn kind_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        // OpenAI's type for a request-rate limit.
        429 => "requests",
        500.. => "server_error",
        _ => "invalid_request_error",
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        let (status, retry_after) = (e.status(), e.retry_after());
        let code = match status {
            StatusCode::UNAUTHORIZED => "invalid_api_key".to_owned(),
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_exceeded".to_owned(),
            _ => e.code().replace('-', "_"),
        };
        let message = match &e {
            ApiError::Internal(inner) => {
                tracing::error!(error = ?inner, "internal error");
                "internal error; see the bridge's log".to_owned()
            }
            other => other.to_string(),
        };
        Self { retry_after, ..Self::new(status, &code, message) }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let (status, retry_after) = (self.status, self.retry_after);
        let mut response = (status, axum::Json(self.into_body())).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
