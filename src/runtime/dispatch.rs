//! Sending one command to its runtime, and waiting for what the caller
//! asked: the frame written to the socket, the runtime's reply with the
//! same `request_id`, or the whole turn an `input` starts.
//!
//! Waits are registered (or the turn subscribed) *before* the frame is
//! queued, so a fast reply cannot be missed; a frame whose request gave up
//! before the socket took it is dropped by the socket task, never sent late.
//! Both kinds of wait count against LETTA_BRIDGE_MAX_PENDING and claim their
//! `request_id` ([`super::Pending`]).
//!
//! With traces on, the trip is a `dispatch` span (runtime, command type,
//! outcome) and a followed turn a `turn` span within it, from the follower's
//! start to the turn's end (its stop reason, or why it was not followed to
//! one); with traces off neither is opened.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, timeout_at};
use tracing::field::Empty;
use tracing::{Instrument, Span};
use utoipa::ToSchema;

use super::pending::Outcome;
use super::turn::Follower;
use super::{CommandFrame, DispatchError, Runtimes, Target};
use crate::protocol::Command;
use crate::protocol::commands::is_answered;
use crate::protocol::turn::{Progress, TurnResult};
use crate::telemetry;

/// Longest a command that waits for nothing waits for its frame to reach the socket.
pub const WRITE_WAIT: Duration = Duration::from_secs(15);

/// What the caller waits for, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The frame written to the runtime's socket (within [`WRITE_WAIT`]).
    Written,
    /// The runtime's reply with the frame's `request_id`. Commands the
    /// runtime never answers are treated as [`Wait::Written`].
    Reply(Instant),
    /// The end of the turn an `input` starts.
    Turn(Instant),
}

/// A command for a runtime: the named one, or the only one online.
pub struct Order {
    /// The runtime to send to; `None`: the only one online.
    pub runtime: Option<String>,
    /// The checked frame.
    pub command: Command,
    /// What to wait for.
    pub wait: Wait,
    /// Told once the frame is on the runtime's socket (or on its way to the
    /// instance holding it), before the wait: how a turn answered later
    /// (`202`, then polled) learns that it started. Dropped unsent when the
    /// command fails before that.
    pub written: Option<oneshot::Sender<Accepted>>,
    /// With [`Wait::Turn`]: kept up to date with the turn's text as it
    /// grows, for a door that streams it. A `watch` holds only the latest
    /// text, so a slow reader makes the follower wait for nothing: it reads
    /// the deltas merged.
    pub progress: Option<watch::Sender<Progress>>,
}

/// A command was queued and written to the runtime's socket.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    /// The frame's `request_id` (yours, or generated).
    pub request_id: String,
    /// The runtime it went to.
    pub runtime_id: String,
    /// The frame's `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Event id at acceptance: `GET /events` with `Last-Event-ID` set to it
    /// yields everything that happened after this command was accepted.
    pub cursor: String,
}

/// What happened to a command.
#[derive(Debug)]
pub enum Dispatched {
    /// Written to the runtime's socket.
    Written(Accepted),
    /// The runtime's reply frame (JSON, with `runtime_id`).
    Reply(Bytes),
    /// The turn finished (with any stop reason but `error`).
    Turn(Box<TurnResult>),
}

impl Runtimes {
    /// Sends `order.command` to its runtime and waits as asked.
    pub async fn dispatch(&self, order: Order) -> Result<Dispatched, DispatchError> {
        if !telemetry::traces_on() {
            return self.send(order, Span::none()).await;
        }
        let span = tracing::info_span!("dispatch", runtime = Empty, command = %order.command.kind(), outcome = Empty);
        let dispatched = self.send(order, span.clone()).instrument(span.clone()).await;
        let outcome = match &dispatched {
            Ok(Dispatched::Written(_)) => "written",
            Ok(Dispatched::Reply(_)) => "replied",
            Ok(Dispatched::Turn(_)) => "turn_finished",
            Err(e) => e.name(),
        };
        span.record("outcome", outcome);
        dispatched
    }

    async fn send(&self, order: Order, span: Span) -> Result<Dispatched, DispatchError> {
        let Order { runtime, mut command, wait, written, progress } = order;
        let wait = match wait {
            Wait::Reply(_) if !is_answered(command.kind()) => Wait::Written,
            other => other,
        };
        if let Some(peers) = &self.inner.peers {
            peers.check()?;
        }
        let target = self.resolve(runtime.as_deref())?;
        let (runtime_id, generation) = match &target {
            Target::Local(link) => (link.runtime_id.clone(), link.generation),
            Target::Remote(remote) => (remote.runtime_id.clone(), remote.generation),
        };
        span.record("runtime", &*runtime_id);
        let request_id = command.request_id().to_owned();
        // Register (or subscribe) before sending, so that a fast reply cannot be missed.
        let mut waiting = None;
        let mut follower = None;
        match wait {
            Wait::Written => {}
            Wait::Reply(_) => waiting = Some(self.pending().register(&runtime_id, generation, &request_id)?),
            Wait::Turn(_) => {
                // Held until the turn is over: counted, and its id claimed.
                let held = self.pending().hold(&runtime_id, generation, &request_id)?;
                let started = Follower::start(&self.inner.hub, &runtime_id, &mut command, progress)?;
                let turn = if telemetry::traces_on() {
                    tracing::info_span!("turn", runtime = %runtime_id, outcome = Empty)
                } else {
                    Span::none()
                };
                follower = Some((started, held, turn));
            }
        }
        let cursor = self.inner.hub.cursor();
        let deadline = match wait {
            Wait::Written => Instant::now() + WRITE_WAIT,
            Wait::Reply(at) | Wait::Turn(at) => at,
        };
        let frame = CommandFrame::of(&command);
        match &target {
            Target::Local(_) => self.write_local(&runtime_id, generation, frame, deadline).await?,
            Target::Remote(remote) => {
                let peers = self.inner.peers.as_ref().expect("remote targets exist only in a cluster");
                peers.forward(remote, frame, deadline).await?;
            }
        }
        let accepted = || {
            let (runtime_id, kind) = (runtime_id.to_string(), command.kind().to_owned());
            Accepted { request_id: request_id.clone(), runtime_id, kind, cursor: cursor.clone() }
        };
        if let Some(written) = written {
            let _ = written.send(accepted());
        }
        if let Some((follower, held, span)) = follower {
            let turn = follower.finish(deadline).instrument(span.clone()).await;
            span.record("outcome", turn.as_ref().map_or_else(|e| e.name(), |t| t.stop_reason.as_str()));
            drop(held);
            return Ok(Dispatched::Turn(Box::new(turn?)));
        }
        let Some(mut waiting) = waiting else { return Ok(Dispatched::Written(accepted())) };
        match timeout_at(deadline, waiting.outcome()).await {
            Ok(Outcome::Reply(bytes)) => Ok(Dispatched::Reply(bytes)),
            Ok(Outcome::Disconnected) => Err(DispatchError::Gone(request_id)),
            Err(_) => Err(DispatchError::NoReply(request_id)),
        }
    }
}
