//! `GET /events`: the event stream as Server-Sent Events.
//!
//! Each event's SSE bytes were framed once when published; this handler only
//! filters and batches them. The stream sends `retry:` and a comment at once
//! (first bytes immediately), a keepalive comment when idle, and ends cleanly
//! at shutdown.
//!
//! A stream an end user's token (or its ticket) opened reads only what the
//! user may read ([`Grants::reads_event`]): the filter is applied per
//! subscriber as it reads the shared hub — live, in replay, after a
//! `reset`, on every instance — and the query's own filters only narrow
//! it. It ends at the token's `exp`, or when the token is revoked, with a
//! `reauth` event. The client and admin tokens' streams pay one
//! `Option` check per event for it, nothing more.
//!
//! A stream a feed opened (`?feed=`, [`crate::store::FeedStore`]) holds the
//! feed's filter besides the query's, reads as the feed's maker (an end
//! user's feed: their grants, until their token's `exp`), and ends when the
//! feed is deleted.

mod filter;
mod unnamed;

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::stream;
use serde::Deserialize;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Interval, Sleep, interval_at, sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiQuery, StreamReader};
use super::limits::StreamSlot;
use super::metrics;
use super::openapi::{SseEvent, StreamProblems};
use super::reauth::{self, Ending};
use super::{ApiError, AppState};
use crate::hub::{Cursor, Gap, Next, Reader, ResetInfo, ResetReason, Start, control_frame};
use crate::protocol::Role;
#[cfg(doc)]
use crate::protocol::access::grants::Grants;
use crate::protocol::bridge::{Lagged, Reauth, Reset};
use crate::protocol::wire;
use crate::store::{FeedHold, TicketHold};
use filter::Filter;
pub(super) use filter::parse_types;

/// Longest a resume waits for this instance's mirror to reach its cursor.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(1);

/// What EventSource should wait before reconnecting, in milliseconds.
const RETRY_MS: u32 = 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_events))
}

/// Filters and resume position of `GET /events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events of this runtime id. With an end user's token, every
    /// filter narrows what the token's grants let it read, never widens it.
    runtime: Option<String>,
    /// Only events of this agent (events without an agent scope, such as
    /// `runtime_online`, still pass).
    agent_id: Option<String>,
    /// Only events of this conversation (events without one still pass).
    conversation_id: Option<String>,
    /// Comma-separated event types to keep, e.g. `stream_delta,turn_finished`:
    /// at most 64 types of at most 128 characters each, 4096 bytes in all.
    types: Option<String>,
    /// Resume after this event id (the `Last-Event-ID` header wins when both are given).
    last_event_id: Option<String>,
    /// Same as `last_event_id` (EventSource-style spelling).
    #[serde(rename = "lastEventId")]
    #[param(rename = "lastEventId")]
    last_event_id_camel: Option<String>,
    /// `false`: frames carry no `event:` line, so every event reaches an
    /// EventSource's `onmessage` (for SSE clients that listen to unnamed
    /// events only, such as n8n's SSE Trigger); each event's `data` still
    /// names its `type`. Default `true`.
    event_names: Option<bool>,
}

/// Subscribe to events as Server-Sent Events: `id: <epoch>-<seq>`, `event:
/// <type>`, `data: <JSON with runtime_id>`. Resume with `Last-Event-ID`.
#[utoipa::path(get, path = "/events", tag = "events", params(EventParams, StreamReader),
    security(("client" = []), ("ticket" = []), ("feed" = [])),
    responses((status = 200, description = "An endless SSE stream; event names are the frame types plus the bridge's own `runtime_online`, `runtime_offline`, `reset` and `lagged`", content_type = "text/event-stream", body = SseEvent),
              StreamProblems))]
async fn get_events(
    State(state): State<AppState>,
    reader: StreamReader,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<EventParams>,
) -> Result<Response, ApiError> {
    let header_cursor = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let cursor = header_cursor.or(params.last_event_id.clone()).or(params.last_event_id_camel.clone());
    let role = reader.role.clone().unwrap_or(Role::Client);
    if reader.hold.is_some() || reader.feed_hold.is_some() {
        // A header's token was checked as it was verified; a ticket's or a feed's, here.
        reauth::refuse_revoked(&state, &role).await?;
    }
    let user = role.user().cloned();
    let named = params.event_names.unwrap_or(true);
    let filter = Filter::parse(params, user.clone())?.within(reader.feed_hold.as_ref().map(FeedHold::filter))?;
    // In a cluster, a client may resume here with a cursor from an instance
    // whose mirror is a little ahead of this one: wait for it (briefly)
    // rather than answer `reset`.
    if state.cluster.is_some()
        && let Some(c) = cursor.as_deref().and_then(Cursor::parse)
    {
        state.hub.caught_up(c.epoch, c.seq, CATCH_UP).await;
    }
    let slot = state.limits.stream(&role)?;
    let start = cursor.as_deref().map_or(Start::Live, Start::After);
    let (subscription, reset) = state.hub.subscribe(start);

    // An end user is not told how many runtimes the bridge has.
    let greeting = if user.is_some() { ": connected".to_owned() } else { connected(state.runtimes.online_count()) };
    let mut first = BytesMut::from(format!("retry: {RETRY_MS}\n{greeting}\n\n").as_bytes());
    if cursor.is_some() && reset.is_none() {
        ::metrics::counter!(metrics::REPLAY_HITS).increment(1);
    }
    if let Some(ResetInfo { reason, oldest, resume_after }) = reset {
        ::metrics::counter!(metrics::RESETS, "reason" => reason.as_str()).increment(1);
        let resume_from = state.hub.event_id(resume_after);
        let body = Reset {
            kind: wire::RESET,
            reason: reason.as_str(),
            cursor: cursor.unwrap_or_default(),
            oldest: oldest.map(|seq| state.hub.event_id(seq)),
            resume_from: resume_from.clone(),
        };
        first.extend_from_slice(&control_frame(&resume_from, wire::RESET, &body));
    }
    let keepalive = state.settings.keepalive;
    let feed = Feed {
        reader: subscription,
        filter,
        first: Some(first.freeze()),
        keepalive: interval_at(Instant::now() + keepalive, keepalive),
        shutdown: Shutdown::new(state.streams_shutdown.clone()),
        taken: (reader.hold.as_ref().map(TicketHold::taken))
            .or_else(|| reader.feed_hold.as_ref().map(FeedHold::deleted))
            .map(Box::pin),
        _hold: reader.hold,
        _feed: reader.feed_hold,
        _slot: slot,
        ends: state.settings.max_stream_duration.map(|d| Box::pin(sleep(d))),
        reauth: reauth::ending(&state, &role),
        hub: state.hub.clone(),
        ended: false,
        _log: StreamLog {
            opened: std::time::Instant::now(),
            request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-").into(),
        },
    };
    let body = Body::from_stream(stream::unfold(feed, move |mut feed| async move {
        let chunk = feed.next_chunk().await?;
        let chunk = if named { chunk } else { unnamed::without_names(chunk) };
        Some((Ok::<_, Infallible>(chunk), feed))
    }));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The state of one SSE response.
struct Feed {
    /// Its place in the event log; its batch is the chunk being written
    /// (a stream writes each batch as one chunk).
    reader: Reader,
    filter: Filter,
    first: Option<Bytes>,
    keepalive: Interval,
    shutdown: Shutdown,
    /// With a ticket: resolves when a reconnect took the ticket over; with
    /// a feed: when the feed is deleted.
    taken: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// The stream's hold on its ticket (dropped with the stream: the
    /// ticket's reconnect grace starts).
    _hold: Option<TicketHold>,
    /// The stream's hold on its feed.
    _feed: Option<FeedHold>,
    /// The stream's place under LETTA_BRIDGE_MAX_STREAMS.
    _slot: StreamSlot,
    /// LETTA_BRIDGE_MAX_STREAM_DURATION, when set.
    ends: Option<Pin<Box<Sleep>>>,
    /// An end user's stream: their token's `exp` or revocation.
    reauth: Option<Ending>,
    /// For the `reauth` event's id.
    hub: crate::hub::Hub,
    /// True once `reauth` was sent: the stream ends.
    ended: bool,
    /// Logs the stream's end (the access log; kept here rather than in a
    /// wrapper around the body, which cost each subscriber an allocation).
    _log: StreamLog,
}

/// The access log's line for the end of a stream: its request id and how
/// long it lasted (its request's span ended with the handler).
struct StreamLog {
    opened: std::time::Instant,
    request_id: Box<str>,
}

impl Drop for StreamLog {
    fn drop(&mut self) {
        let secs = (self.opened.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        tracing::info!(target: "letta_bridge::http::access_log", request_id = %self.request_id, secs, "event stream closed");
    }
}

/// The end of every stream at shutdown, cheap to poll. Polling a
/// `cancelled()` future takes the token's mutex, one shared by every stream,
/// on every poll: a lock per subscriber per event, contended across the
/// workers. Instead the first poll leaves this task's waker in the token's
/// waiter list, and later polls only read the token's flag; the cancellation
/// wakes the stored waker (the connection task's, which does not change).
struct Shutdown {
    token: CancellationToken,
    /// Polled once to register; dropped with the stream.
    waiter: Pin<Box<WaitForCancellationFutureOwned>>,
    registered: bool,
}

impl Shutdown {
    fn new(token: CancellationToken) -> Self {
        Self { waiter: Box::pin(token.clone().cancelled_owned()), token, registered: false }
    }

    /// Ready once the streams are shut down.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.registered {
            self.registered = true;
            return self.waiter.as_mut().poll(cx);
        }
        if self.token.is_cancelled() { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl Feed {
    /// The next bytes to write; `None` ends the stream (shutdown or the
    /// stream's maximum duration).
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.ended {
            return None;
        }
        loop {
            tokio::select! {
                biased;
                () = std::future::poll_fn(|cx| self.shutdown.poll(cx)) => return None,
                () = async { self.ends.as_mut().expect("guarded").await }, if self.ends.is_some() => return None,
                () = async { self.taken.as_mut().expect("guarded").await }, if self.taken.is_some() => return None,
                reason = async { self.reauth.as_mut().expect("guarded").await }, if self.reauth.is_some() => {
                    // The last event: everything up to the reader's position
                    // was sent or not the reader's, so resuming after it loses nothing.
                    self.ended = true;
                    let resume_from = self.hub.event_id(self.reader.position());
                    let body = Reauth { kind: wire::REAUTH, reason, resume_from };
                    return Some(control_frame(&body.resume_from, wire::REAUTH, &body));
                }
                next = self.reader.next() => {
                    let chunk = match next {
                        Next::Events => self.render(),
                        Next::Gap(Gap::Lagged { missed, resume_from }) => {
                            ::metrics::counter!(metrics::LAGGED).increment(1);
                            let body = Lagged { kind: wire::LAGGED, missed, resume_from };
                            control_frame(&body.resume_from, wire::LAGGED, &body)
                        }
                        Next::Gap(Gap::Rebased { previous, resume_from }) => {
                            let reason = ResetReason::OtherEpoch.as_str();
                            ::metrics::counter!(metrics::RESETS, "reason" => reason).increment(1);
                            let body = Reset { kind: wire::RESET, reason, cursor: previous, oldest: None, resume_from };
                            control_frame(&body.resume_from, wire::RESET, &body)
                        }
                    };
                    if !chunk.is_empty() {
                        self.keepalive.reset();
                        return Some(chunk);
                    }
                }
                _ = self.keepalive.tick() => return Some(Bytes::from_static(b": keepalive\n\n")),
            }
        }
    }

    /// The matching events of the batch as one chunk: no copy for a single
    /// event, else one allocation of the exact size.
    fn render(&mut self) -> Bytes {
        let filter = &self.filter;
        let batch = self.reader.batch();
        batch.retain(|e| filter.matches(e));
        let chunk = match batch.as_slice() {
            [] => Bytes::new(),
            [one] => one.sse().clone(),
            many => {
                let mut out = BytesMut::with_capacity(many.iter().map(|e| e.size()).sum());
                for e in many {
                    out.extend_from_slice(e.sse());
                }
                out.freeze()
            }
        };
        batch.clear();
        chunk
    }
}

/// The comment a stream opens with: how many runtimes are online, and with
/// none, what to do (a reader who sees nothing else knows why).
fn connected(online: usize) -> String {
    match online {
        0 => ": connected; no runtime online: start `letta remote` against this bridge (GET /runtimes lists the runtimes it knows)".to_owned(),
        1 => ": connected; 1 runtime online".to_owned(),
        n => format!(": connected; {n} runtimes online"),
    }
}
