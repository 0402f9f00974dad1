//! A `?wait=completion` turn that may outlive its request. Its
//! [`Runtimes::dispatch`](crate::runtime::Runtimes::dispatch) runs in a
//! task of its own ([`Followers`], in the shutdown tree), which records
//! the turn's end in the turn store — the answer the request would have
//! given. The request answers with that end when it comes within
//! LETTA_BRIDGE_ASYNC_AFTER; otherwise, or at once with `Prefer:
//! respond-async` (RFC 7240), `202` with `Location: /turns/{id}` and
//! `Retry-After`, once the input is on the runtime's socket (a command
//! refused or unroutable answers its problem as before, and is no turn).

use std::sync::Arc;
use std::time::Duration;

use axum::body::to_bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{POLL_AFTER_SECS, TurnRunning, unix_ms};
use crate::http::{ApiError, AppState, hints};
use crate::protocol::turn::TurnError;
use crate::runtime::{Accepted, DispatchError, Dispatched, Order, Runtimes, Wait};
use crate::store::{Finished, RUNNING_GRACE, TurnRecord, TurnStore};
use crate::telemetry;

/// The followers of turns answered `202`: one task per turn, each bounded
/// by its deadline (and the turns by LETTA_BRIDGE_MAX_PENDING). At shutdown
/// ([`Followers::close`]) the runtime sockets are closed already, so their
/// turns have ended; those still followed (a cluster's runtime on another
/// instance) are recorded as stopped.
pub struct Followers {
    store: Arc<dyn TurnStore>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Followers {
    /// Followers recording into `store`.
    pub fn new(store: Arc<dyn TurnStore>) -> Self {
        Self { store, tasks: TaskTracker::new(), stop: CancellationToken::new() }
    }

    /// Where turns are recorded.
    pub fn store(&self) -> &dyn TurnStore {
        &*self.store
    }

    /// Stops following: turns still running are recorded as stopped, and
    /// their tasks awaited within `grace`.
    pub async fn close(&self, grace: Duration) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(tasks = self.tasks.len(), "turn followers did not end in time");
        }
    }
}

/// The `Prefer` header of `POST /input` and `POST /approval`, as documented
/// (read by [`prefers_async`]).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct Prefer {
    /// `respond-async` (RFC 7240): with `wait=completion`, answer `202` with
    /// `Location: /turns/{id}` as soon as the input is written, rather than
    /// after LETTA_BRIDGE_ASYNC_AFTER; the answer then carries
    /// `Preference-Applied: respond-async`. Other preferences are ignored.
    #[param(rename = "Prefer")]
    #[allow(dead_code)] // documentation only
    prefer: Option<String>,
}

/// True when `headers` hold `Prefer: respond-async` (among other
/// preferences, any case, parameters ignored).
pub fn prefers_async(headers: &HeaderMap) -> bool {
    headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|pref| {
        let name = pref.split([';', '=']).next().unwrap_or("").trim();
        name.eq_ignore_ascii_case("respond-async")
    })
}

/// What the follower tells the request.
enum News {
    /// The input is on the runtime's socket: the turn started.
    Started(Accepted),
    /// The answer: the turn's end, or why there was none.
    Done(Response),
}

/// Follows `order`'s turn (its wait is `Wait::Turn`) for `principal` and
/// answers as the module doc says.
pub async fn follow(
    state: &AppState,
    principal: String,
    mut order: Order,
    prefer_async: bool,
    base: String,
) -> Result<Response, ApiError> {
    let id = format!("tn_{}", uuid::Uuid::new_v4().simple());
    let until = match order.wait {
        Wait::Turn(until) => until,
        _ => tokio::time::Instant::now() + state.settings.max_wait_timeout,
    };
    let (written, accepted) = oneshot::channel();
    order.written = Some(written);
    let scope = order.command.frame().get("runtime").and_then(|s| s.as_object()).cloned().unwrap_or_default();
    let field = |name: &str| scope.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let record = TurnRecord {
        id: id.clone(),
        principal,
        runtime_id: String::new(),
        agent_id: field("agent_id").unwrap_or_default(),
        conversation_id: field("conversation_id"),
        request_id: String::new(),
        cursor: String::new(),
        started_at: unix_ms(),
        finished: None,
    };
    // Two messages at most: started, then done.
    let (news, mut heard) = mpsc::channel(2);
    let followers = &state.turns;
    let follower = Follower {
        runtimes: state.runtimes.clone(),
        store: followers.store.clone(),
        stop: followers.stop.clone(),
        record: record.clone(),
        base,
    };
    // With traces on, its own span in the request's trace: the request's
    // span ends with its `202`, not with the turn.
    let span = if telemetry::traces_on() {
        let span = tracing::info_span!(parent: None, "turn.follow", turn = %id);
        telemetry::adopt(&span, &tracing::Span::current());
        span
    } else {
        tracing::Span::none()
    };
    followers.tasks.spawn(follower.run(order, accepted, news).instrument(span));
    let accepted = match heard.recv().await {
        Some(News::Started(accepted)) => accepted,
        Some(News::Done(answer)) => return Ok(answer),
        None => return Err(ApiError::Internal(anyhow::anyhow!("the follower of turn {id} ended without an answer"))),
    };
    if !prefer_async {
        tokio::select! {
            news = heard.recv() => if let Some(News::Done(answer)) = news { return Ok(answer) },
            () = tokio::time::sleep(state.settings.async_after) => {}
        }
    }
    let record = TurnRecord {
        runtime_id: accepted.runtime_id,
        request_id: accepted.request_id,
        cursor: accepted.cursor,
        ..record
    };
    // Recorded before the `202`, so that any instance answers the poll; a
    // follower that finished first has recorded the end, which stays.
    let keep = until.saturating_duration_since(tokio::time::Instant::now()) + RUNNING_GRACE;
    if let Err(e) = followers.store.start(&record, keep).await {
        tracing::warn!(error = %e, turn = %id, "a running turn could not be recorded; its end will be");
    }
    let mut answer = (StatusCode::ACCEPTED, axum::Json(TurnRunning::of(&record))).into_response();
    let headers = answer.headers_mut();
    let location = HeaderValue::from_str(&super::location(&id)).expect("turn ids are header-safe");
    headers.insert(header::LOCATION, location);
    headers.insert(header::RETRY_AFTER, HeaderValue::from(POLL_AFTER_SECS));
    if prefer_async {
        headers.insert("preference-applied", HeaderValue::from_static("respond-async"));
    }
    Ok(answer)
}

/// One turn's follower task.
struct Follower {
    runtimes: Runtimes,
    store: Arc<dyn TurnStore>,
    stop: CancellationToken,
    /// The turn as known before it started.
    record: TurnRecord,
    /// This bridge's URL as the caller reached it (for hints in problems).
    base: String,
}

impl Follower {
    /// Dispatches `order`, tells `news` once it is written, then records
    /// the end (of a turn that started) and passes it on.
    async fn run(self, order: Order, mut accepted: oneshot::Receiver<Accepted>, news: mpsc::Sender<News>) {
        let Self { runtimes, store, stop, record, base } = self;
        let dispatch = runtimes.dispatch(order);
        tokio::pin!(dispatch);
        let (mut started, mut writing) = (None, true);
        let outcome = loop {
            tokio::select! {
                biased;
                outcome = &mut dispatch => break Some(outcome),
                written = &mut accepted, if writing => {
                    writing = false;
                    if let Ok(a) = written {
                        started = Some(a.clone());
                        let _ = news.send(News::Started(a)).await;
                    }
                }
                () = stop.cancelled() => break None,
            }
        };
        if writing {
            started = accepted.try_recv().ok();
        }
        let answer = render(outcome, &record.id, &base, started.as_ref());
        let Some(started) = started else {
            let _ = news.send(News::Done(answer)).await;
            return;
        };
        let (parts, body) = answer.into_parts();
        let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
        let retry_after = parts.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse().ok());
        let finished = Finished {
            status: parts.status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
            retry_after,
            finished_at: unix_ms(),
        };
        let record = TurnRecord {
            runtime_id: started.runtime_id,
            request_id: started.request_id,
            cursor: started.cursor,
            finished: Some(finished),
            ..record
        };
        if let Err(e) = store.finish(&record).await {
            tracing::warn!(error = %e, turn = %record.id, "a finished turn could not be recorded");
        }
        let _ = news.send(News::Done(Response::from_parts(parts, body.into()))).await;
    }
}

/// The answer for a dispatch's outcome, the turn (or the failed turn of a
/// `502`) carrying its id; `None`: the follower was stopped.
fn render(
    outcome: Option<Result<Dispatched, DispatchError>>,
    id: &str,
    base: &str,
    started: Option<&Accepted>,
) -> Response {
    match outcome {
        Some(Ok(Dispatched::Turn(mut turn))) => {
            turn.id = id.to_owned();
            axum::Json(turn).into_response()
        }
        Some(Ok(_)) => ApiError::Internal(anyhow::anyhow!("a followed turn answered with no turn")).into_response(),
        Some(Err(DispatchError::Turn(TurnError::Failed(mut turn)))) => {
            turn.id = id.to_owned();
            ApiError::from(TurnError::Failed(turn)).into_response()
        }
        Some(Err(e)) => hints::dispatch_error(e, base).into_response(),
        None => {
            let from = started.map_or(String::new(), |a| {
                format!("; its events can be read from GET /events with Last-Event-ID: {}", a.cursor)
            });
            let detail = format!("the bridge instance following turn {id} stopped before the turn ended{from}");
            ApiError::Unavailable(detail).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefer(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("prefer", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn respond_async_is_read_among_other_preferences_in_any_case() {
        assert!(prefers_async(&prefer(&["respond-async"])));
        assert!(prefers_async(&prefer(&["return=minimal, Respond-Async; foo=bar"])));
        assert!(prefers_async(&prefer(&["wait=10", "respond-async"])));
        assert!(!prefers_async(&prefer(&[])));
        assert!(!prefers_async(&prefer(&["wait=10, return=representation"])));
        assert!(!prefers_async(&prefer(&["respond-asynchronously"])));
    }
}
