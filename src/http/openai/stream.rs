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

use super::chat::Head;
use super::error::OpenAiError;
use super::shapes::{ChunkChoice, Delta, finish_reason};
use super::turn::Finished;
use crate::http::{ApiError, AppState};
use crate::protocol::turn::Progress;
use crate::runtime::Accepted;

type Run = Pin<Box<dyn Future<Output = Result<Finished, OpenAiError>> + Send>>;

/// Answers with the stream of `run`'s turn, once it `started`.
pub async fn answer(
    state: &AppState,
    run: impl Future<Output = Result<Finished, OpenAiError>> + Send + 'static,
    started: oneshot::Receiver<Accepted>,
    seen: watch::Receiver<Progress>,
    mut head: Head,
    include_usage: bool,
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
    head.id = format!("chatcmpl-{}", accepted.request_id);
    let period = state.settings.keepalive;
    let streaming = Streaming {
        run: Some(run),
        seen,
        watching: true,
        sent: 0,
        head,
        include_usage,
        keepalive: interval_at(tokio::time::Instant::now() + period, period),
        shutdown: state.streams_shutdown.clone(),
        phase: Phase::Start,
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
struct Streaming {
    /// The turn; `None` once it ended.
    run: Option<Run>,
    seen: watch::Receiver<Progress>,
    /// False once the progress has no sender left.
    watching: bool,
    /// How many of the progress' additions were sent.
    sent: usize,
    head: Head,
    include_usage: bool,
    keepalive: Interval,
    shutdown: CancellationToken,
    phase: Phase,
}

impl Streaming {
    /// The next bytes of the body; `None`: it ends.
    async fn next(&mut self) -> Option<Bytes> {
        match self.phase {
            Phase::Done => return None,
            Phase::Start => {
                self.phase = Phase::Running;
                let first = Delta { role: Some("assistant"), content: Some(String::new()), ..Delta::default() };
                return Some(self.event(first, None));
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
                    return Some(error_event(OpenAiError::from(stopping)));
                }
                outcome = run => {
                    self.run = None;
                    self.phase = Phase::Done;
                    return Some(self.end(outcome));
                }
                changed = self.seen.changed(), if self.watching => match changed {
                    Ok(()) => if let Some(bytes) = self.deltas() { return Some(bytes) },
                    Err(_) => self.watching = false,
                },
                _ = self.keepalive.tick() => return Some(Bytes::from_static(b": keepalive\n\n")),
            }
        }
    }

    /// A chunk per piece the turn added since the last ones, if any.
    fn deltas(&mut self) -> Option<Bytes> {
        let deltas: Vec<Delta> = {
            let progress = self.seen.borrow_and_update();
            let some = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
            let deltas = progress.pieces(self.sent);
            let deltas =
                deltas.map(|(t, r)| Delta { content: some(t), reasoning_content: some(r), role: None }).collect();
            self.sent = progress.additions();
            deltas
        };
        let out: Vec<u8> = deltas.into_iter().flat_map(|delta| self.event(delta, None)).collect();
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    /// The end: what is left, the last chunk, usage, `[DONE]`; or the error.
    fn end(&mut self, outcome: Result<Finished, OpenAiError>) -> Bytes {
        let mut out = self.deltas().map(|b| b.to_vec()).unwrap_or_default();
        match outcome {
            Ok(finished) => {
                out.extend_from_slice(&self.event(Delta::default(), Some(finish_reason(&finished.last.stop_reason))));
                if self.include_usage {
                    let chunk = self.head.chunk(Vec::new(), finished.usage.map(Into::into));
                    out.extend_from_slice(&data(&chunk));
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
            Err(e) => out.extend_from_slice(&error_event(e)),
        }
        Bytes::from(out)
    }

    fn event(&self, delta: Delta, finish_reason: Option<&'static str>) -> Bytes {
        let choice = ChunkChoice { index: 0, delta, finish_reason, logprobs: None };
        data(&self.head.chunk(vec![choice], None))
    }
}

/// One `data:` event.
fn data(value: &impl serde::Serialize) -> Bytes {
    let json = serde_json::to_string(value).expect("chunks serialise");
    Bytes::from(format!("data: {json}\n\n"))
}

/// An error after the stream began, as OpenAI's SDKs read it.
fn error_event(e: OpenAiError) -> Bytes {
    data(&e.into_body())
}
