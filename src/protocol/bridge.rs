//! Events the bridge itself publishes on the event stream. Their names are a
//! reserved set: `runtime_online`, `runtime_offline`, `reset`, `lagged`,
//! `reauth`.

use serde::Serialize;
use utoipa::ToSchema;

use super::wire;

/// Event names only the bridge publishes; runtime frames of these types are
/// dropped so that subscribers can trust them.
pub const RESERVED_EVENTS: &[&str] =
    &[wire::RUNTIME_ONLINE, wire::RUNTIME_OFFLINE, wire::RESET, wire::LAGGED, wire::REAUTH];

/// Why a `reauth` ends a stream: the end user's token passed its `exp`.
pub const TOKEN_EXPIRED: &str = "token_expired";
/// Why a `reauth` ends a stream: the token was revoked (`POST /revocations`).
pub const TOKEN_REVOKED: &str = "token_revoked";

/// A runtime connected (or reconnected).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuntimeOnline {
    /// Always `runtime_online`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The runtime (its deviceId).
    pub runtime_id: String,
    /// Its `connectionName`, if it gave one.
    pub connection_name: Option<String>,
    /// `lettaCodeVersion` from the registration metadata.
    pub version: Option<String>,
    /// RFC 3339 time the connection was accepted.
    pub online_since: String,
}

/// A runtime's socket closed, was replaced, or stopped answering pings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuntimeOffline {
    /// Always `runtime_offline`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The runtime (its deviceId).
    pub runtime_id: String,
    /// Why: `closed` (close frame), `connection_lost` (no close frame),
    /// `heartbeat_timeout`, `replaced` is never sent (the device stays
    /// online), `shutdown`, `error` (a write failed or the runtime broke a
    /// frame limit), `revoked` (a reload of the runtime tokens file took
    /// its token's grant of the device away), and in a cluster
    /// `instance_lost` (the bridge instance holding it stopped renewing its
    /// lease) or `fenced` (that instance lost its engine and closed it).
    pub reason: String,
}

/// Sent to one subscriber whose resume cursor cannot be honoured; the stream
/// continues live from `resume_from`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reset {
    /// Always `reset`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `malformed_cursor`, `unknown_cursor`, `expired_cursor` or `other_epoch`.
    pub reason: &'static str,
    /// The cursor the client sent.
    pub cursor: String,
    /// Oldest event id still held in the replay ring, if any.
    pub oldest: Option<String>,
    /// Where this stream continues from (also this event's `id:`).
    pub resume_from: String,
}

/// Sent to one subscriber that fell so far behind that the ring dropped
/// events it had not read; the stream continues with the oldest kept event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Lagged {
    /// Always `lagged`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// How many events this subscriber missed.
    pub missed: u64,
    /// Where this stream continues from (also this event's `id:`).
    pub resume_from: String,
}

/// The last event of a stream an end user's token (or its ticket) opened:
/// the token expired or was revoked. Get a new token or ticket and resume
/// after `resume_from` (also this event's `id:`): nothing is lost.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reauth {
    /// Always `reauth`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `token_expired` or `token_revoked`.
    pub reason: &'static str,
    /// The last event id this stream passed (sent or not the reader's):
    /// resume with `?last_event_id=` set to it.
    pub resume_from: String,
}
