//! A streamed chat completion (`stream: true`): `200` with
//! `text/event-stream` once the message is on the runtime's socket (an
//! error before that is a plain error answer), then a first chunk with the
//! role, one chunk per piece of text or reasoning the runtime streams (read
//! from the turn's [`Progress`], however far behind the client reads), a
//! last chunk with `finish_reason` (and one with `usage`
//! when asked), then `data: [DONE]`. An error after the start is one
//! `data: {"error": …}` event, as OpenAI's SDKs read it. Tool activity
//! sends nothing; comments keep a quiet stream open through proxies.
//!
//! The turn is driven by the response body itself: a client that goes
//! away drops it, and the turn's wait with it (the turn goes on in the
//! runtime, readable on `GET /events`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::{oneshot, watch};
use tokio::time::{Interval, interval_at};
use tokio_util::sync::CancellationToken;

use super::error::OpenAiError;
use super::turn::Finished;
use crate::http::limits::StreamSlot;
use crate::http::{ApiError, AppState};
use crate::protocol::turn::Progress;
use crate::runtime::Accepted;

type Run = Pin<Box<dyn Future<Output = Result<Finished, OpenAiError>> + Send>>;

/// How one API renders a streamed turn as server-sent events.
pub trait Wire: Send + 'static {
    /// The input is written (its `request_id` names the answer).
    fn started(&mut self, accepted: &Accepted);
    /// The events that open the stream.
    fn open(&mut self) -> Vec<u8>;
    /// An event for one piece of text and reasoning (either may be empty).
    fn piece(&mut self, text: &str, reasoning: &str) -> Vec<u8>;
    /// The events that end the stream: the turn ended with this text.
    fn end(&mut self, finished: &Finished, text: &str) -> Vec<u8>;
    /// The event that ends a stream whose turn failed.
    fn error(&mut self, e: OpenAiError) -> Vec<u8>;
}

/// Answers with the stream of `run`'s turn, once it `started`; `slot` is
/// its place among the open streams (LETTA_BRIDGE_MAX_STREAMS and the
/// credential's), held until the stream ends.
pub async fn answer<W: Wire>(
    state: &AppState,
    slot: StreamSlot,
    run: impl Future<Output = Result<Finished, OpenAiError>> + Send + 'static,
    started: oneshot::Receiver<Accepted>,
    seen: watch::Receiver<Progress>,
    mut wire: W,
) -> Result<Response, OpenAiError> {
    let mut run: Run = Box::pin(run);
    let accepted = tokio::select! {
        biased;
        accepted = started => accepted,
        outcome = &mut run => return Err(outcome.err().unwrap_or_else(no_start)),
    };
    let Ok(accepted) = accepted else {
        return Err(run.await.err().unwrap_or_else(no_start));
    };
    wire.started(&accepted);
    let period = state.settings.keepalive;
    let streaming = Streaming {
        run: Some(run),
        seen,
        watching: true,
        sent: 0,
        wire,
        keepalive: interval_at(tokio::time::Instant::now() + period, period),
        shutdown: state.streams_shutdown.clone(),
        phase: Phase::Start,
        _slot: slot,
    };
    let body = futures_util::stream::unfold(streaming, |mut s| async move {
        let bytes = s.next().await?;
        Some((Ok::<_, Infallible>(bytes), s))
    });
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::HeaderName::from_static("x-accel-buffering"), "no"),
    ];
    Ok((headers, Body::from_stream(body)).into_response())
}

fn no_start() -> OpenAiError {
    ApiError::Internal(anyhow::anyhow!("a streamed turn ended before its input was written")).into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Running,
    Done,
}

/// One stream's state, between the events it sends.
struct Streaming<W> {
    /// The turn; `None` once it ended.
    run: Option<Run>,
    seen: watch::Receiver<Progress>,
    /// False once the progress has no sender left.
    watching: bool,
    /// How many of the progress' additions were sent.
    sent: usize,
    wire: W,
    keepalive: Interval,
    shutdown: CancellationToken,
    phase: Phase,
    _slot: StreamSlot,
}

impl<W: Wire> Streaming<W> {
    /// The next bytes of the body; `None`: it ends.
    async fn next(&mut self) -> Option<Bytes> {
        match self.phase {
            Phase::Done => return None,
            Phase::Start => {
                self.phase = Phase::Running;
                return Some(Bytes::from(self.wire.open()));
            }
            Phase::Running => {}
        }
        loop {
            let run = self.run.as_mut()?;
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => {
                    self.phase = Phase::Done;
                    let stopping = ApiError::Unavailable("the bridge is shutting down".into());
                    return Some(Bytes::from(self.wire.error(stopping.into())));
                }
                outcome = run => {
                    self.run = None;
                    self.phase = Phase::Done;
                    return Some(self.end(outcome));
                }
                changed = self.seen.changed(), if self.watching => match changed {
                    Ok(()) => if let Some(bytes) = self.pieces() { return Some(Bytes::from(bytes)) },
                    Err(_) => self.watching = false,
                },
                _ = self.keepalive.tick() => return Some(Bytes::from_static(b": keepalive\n\n")),
            }
        }
    }

    /// An event per piece the turn added since the last ones, if any.
    fn pieces(&mut self) -> Option<Vec<u8>> {
        let pieces: Vec<(String, String)> = {
            let progress = self.seen.borrow_and_update();
            let pieces = progress.pieces(self.sent).map(|(t, r)| (t.to_owned(), r.to_owned())).collect();
            self.sent = progress.additions();
            pieces
        };
        let out: Vec<u8> = pieces.iter().flat_map(|(t, r)| self.wire.piece(t, r)).collect();
        (!out.is_empty()).then_some(out)
    }

    /// The end: what is left, then the wire's end; or its error.
    fn end(&mut self, outcome: Result<Finished, OpenAiError>) -> Bytes {
        let mut out = self.pieces().unwrap_or_default();
        match outcome {
            Ok(finished) => {
                let text = self.seen.borrow().text().to_owned();
                out.extend(self.wire.end(&finished, &text));
            }
            Err(e) => out.extend(self.wire.error(e)),
        }
        Bytes::from(out)
    }
}

/// One `data:` event (with its `event:` name when it has one).
pub fn event(name: Option<&str>, value: &impl serde::Serialize) -> Vec<u8> {
    let json = serde_json::to_string(value).expect("events serialise");
    match name {
        Some(name) => format!("event: {name}\ndata: {json}\n\n").into_bytes(),
        None => format!("data: {json}\n\n").into_bytes(),
    }
}
