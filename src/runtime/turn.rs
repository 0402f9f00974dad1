//! Following one `input` command's turn on the event hub, for
//! `?wait=completion`. The follower subscribes *before* the frame is
//! written, so no event of the turn can slip past it; which events belong
//! to the turn is the protocol's rule ([`crate::protocol::turn`]). A door
//! that streams the turn gets its text as it grows ([`Progress`]).

use tokio::sync::watch;
use tokio::time::Instant;

use crate::hub::{Gap, Hub, Next, Reader, Start};
use crate::protocol::Command;
use crate::protocol::turn::{Progress, Seen, Turn, TurnError, TurnResult};

/// One turn being followed on the hub.
pub(super) struct Follower {
    reader: Reader,
    hub: Hub,
    turn: Turn,
    progress: Option<watch::Sender<Progress>>,
}

impl Follower {
    /// Checks that `command` can be followed (filling in its messages'
    /// `client_message_id`s) and subscribes; call it before sending.
    pub(super) fn start(
        hub: &Hub,
        runtime_id: &str,
        command: &mut Command,
        progress: Option<watch::Sender<Progress>>,
    ) -> Result<Self, TurnError> {
        let mut turn = Turn::expect(command.frame_mut(), runtime_id)?;
        let (reader, _) = hub.subscribe(Start::Live);
        turn.set_cursor(hub.event_id(reader.position()));
        if let Some(progress) = &progress {
            progress.send_modify(Progress::next_part);
        }
        Ok(Self { reader, hub: hub.clone(), turn, progress })
    }

    /// Reads the hub until the turn finishes, the runtime goes offline, or
    /// `deadline` passes. A gap fails the wait: the turn's events are lost.
    pub(super) async fn finish(mut self, deadline: Instant) -> Result<TurnResult, TurnError> {
        loop {
            let Ok(next) = tokio::time::timeout_at(deadline, self.reader.next()).await else {
                return Err(self.turn.timed_out());
            };
            match next {
                Next::Events => {}
                Next::Gap(Gap::Lagged { missed, .. }) => return Err(self.turn.lagged(missed)),
                Next::Gap(Gap::Rebased { .. }) => return Err(self.turn.log_reset()),
            }
            for event in self.reader.batch().drain(..) {
                let data = event.data();
                let seen = Seen {
                    kind: &event.kind,
                    runtime_id: event.runtime_id.as_deref(),
                    agent_id: event.agent_id.as_deref(),
                    conversation_id: event.conversation_id.as_deref(),
                    data: &data,
                };
                if let Some(done) = self.turn.on_event(seen, || self.hub.event_id(event.seq))? {
                    if let Some(progress) = &self.progress {
                        progress.send_if_modified(|p| p.sync(&done.text, &done.reasoning));
                    }
                    return Ok(done);
                }
                if let (Some(progress), Some((text, reasoning))) = (&self.progress, self.turn.so_far()) {
                    progress.send_if_modified(|p| p.sync(text, reasoning));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
