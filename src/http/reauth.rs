//! When a stream or a socket an end user's token opened ends: at the
//! token's `exp`, or as soon as it is revoked (`POST /revocations`; in a
//! cluster, whichever instance it was revoked on). Opened with its ticket,
//! the same: a ticket carries the token's `exp` and `jti`. The stream then
//! tells its reader to get a new token or ticket and resume (SSE: a
//! `reauth` event; a client socket: close code 4001).
//!
//! The client and admin tokens' streams have no such end and pay nothing
//! for it: no timer, no waiter.

use std::pin::Pin;
use std::time::SystemTime;

use super::{ApiError, AppState};
use crate::protocol::Role;
use crate::protocol::bridge::{TOKEN_EXPIRED, TOKEN_REVOKED};

/// Resolves with why the stream ends: `token_expired` or `token_revoked`.
pub(super) type Ending = Pin<Box<dyn Future<Output = &'static str> + Send>>;

/// The end of a stream `role` opened: `None` for the client and admin
/// tokens, which streams never outlive.
pub(super) fn ending(state: &AppState, role: &Role) -> Option<Ending> {
    let user = role.user()?;
    let left = user.expires_at().duration_since(SystemTime::now()).unwrap_or_default();
    let expired = tokio::time::sleep(left);
    let revoked = user.jti.as_deref().map(|jti| state.revocations.revoked(jti));
    Some(Box::pin(async move {
        let revoked = async {
            match revoked {
                Some(revoked) => revoked.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = revoked => TOKEN_REVOKED,
            () = expired => TOKEN_EXPIRED,
        }
    }))
}

/// A `401` when `role` is an end user whose token was revoked (checked on
/// every request and every ticket opened: a token is refused everywhere
/// from the moment it is revoked until its `exp`).
pub(super) async fn refuse_revoked(state: &AppState, role: &Role) -> Result<(), ApiError> {
    let Some(jti) = role.user().and_then(|u| u.jti.as_deref()) else { return Ok(()) };
    if state.revocations.is_revoked(jti).await? {
        return Err(ApiError::InvalidToken("this token was revoked".into()));
    }
    Ok(())
}
