//! Turns that outlive a request (`POST /input?wait=completion` answered
//! `202`, then `GET /turns/{id}`): each followed turn's record, running
//! and then finished with the answer its request would have given, and the
//! finished ones listed in the order they finished (`GET /turns`).
//!
//! Retention, the same in memory and in a cluster's Redis: a finished turn
//! is kept [`TURN_RETENTION`] after it finished, and at most [`MAX_TURNS`]
//! of them (the earliest finished go first); a running turn is kept until
//! it finishes, or until its deadline plus [`RUNNING_GRACE`] when the
//! instance following it stopped before it could record the end (then
//! forgotten). Running turns are bounded by LETTA_BRIDGE_MAX_PENDING, as
//! every followed turn is a pending wait.
//!
//! Every finished turn gets the next position of the store's sequence; a
//! [`Position`] (`<epoch>-<seq>`) is the cursor of `GET /turns?after=`. The
//! epoch changes when the store starts afresh (an embedded bridge
//! restarted, a cluster's Redis lost its data): a cursor of another epoch
//! lists from the earliest turn kept.

mod memory;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::StoreFuture;
pub use memory::MemoryTurns;

/// Most finished turns kept (over the cluster in Redis); the earliest finished go first.
pub const MAX_TURNS: usize = 1_000;

/// How long a finished turn is kept after it finished.
pub const TURN_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a running turn's record outlives its deadline: long enough for
/// its follower to record the end, short enough to forget a turn whose
/// instance stopped.
pub const RUNNING_GRACE: Duration = Duration::from_secs(60);

/// One followed turn, as kept: who started it, where, and once finished the
/// answer its request would have given. A record that leaves the process
/// (Redis), hence [`TurnRecord::to_json`] / [`TurnRecord::from_json`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// The bridge's id of the turn (`tn_…`).
    pub id: String,
    /// The principal that started it (`client`, `admin`, `user:<sub>`).
    pub principal: String,
    /// The runtime it runs on.
    pub runtime_id: String,
    /// The agent of its input's scope.
    pub agent_id: String,
    /// The conversation of its input's scope.
    pub conversation_id: Option<String>,
    /// The input frame's `request_id`.
    pub request_id: String,
    /// Event id just before its input was sent.
    pub cursor: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_at: u64,
    /// How it ended; `None` while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Finished>,
}

/// How a turn ended: the answer its request would have given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    /// The answer's status: `200` with the turn, or a problem's.
    pub status: u16,
    /// The answer's JSON body.
    pub body: String,
    /// The answer's `Retry-After` (seconds), when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
    /// When it finished, in milliseconds since the Unix epoch.
    pub finished_at: u64,
}

impl TurnRecord {
    /// The record as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("records serialise")
    }

    /// A stored record; `None` when it is not one.
    pub fn from_json(json: &str) -> Option<Self> {
        serde_json::from_str(json).ok()
    }
}

/// A place in the order turns finished: the cursor of `GET /turns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The store's epoch (changes when it starts afresh).
    pub epoch: String,
    /// The last turn finished at this place (0: none yet).
    pub seq: u64,
}

impl Position {
    /// `<epoch>-<seq>`, as `next` and `after` carry it.
    pub fn to_cursor(&self) -> String {
        format!("{}-{}", self.epoch, self.seq)
    }

    /// A cursor back; `None` when it is not one (an epoch of 1 to 32
    /// letters and digits, a dash, 1 to 19 decimal digits).
    pub fn parse(cursor: &str) -> Option<Self> {
        let (epoch, seq) = cursor.rsplit_once('-')?;
        let epoch_ok = !epoch.is_empty() && epoch.len() <= 32 && epoch.bytes().all(|b| b.is_ascii_alphanumeric());
        let digits = (1..=19).contains(&seq.len()) && seq.bytes().all(|b| b.is_ascii_digit());
        if !(epoch_ok && digits) {
            return None;
        }
        Some(Self { epoch: epoch.to_owned(), seq: seq.parse().ok()? })
    }
}

/// A page of finished turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Newest first.
    pub turns: Vec<TurnRecord>,
    /// Where the next poll continues (`after=`): the newest listed turn's
    /// place when the page is full, else the store's newest place.
    pub next: Position,
}

/// Where turns are kept.
pub trait TurnStore: Send + Sync + 'static {
    /// Records a running turn (`finished: None`) for `keep` at most,
    /// unless the turn is recorded already (it finished first).
    fn start<'a>(&'a self, record: &'a TurnRecord, keep: Duration) -> StoreFuture<'a, ()>;
    /// Records a finished turn at the store's next position, in place of
    /// its running record, within the retention (see the module doc).
    fn finish<'a>(&'a self, record: &'a TurnRecord) -> StoreFuture<'a, ()>;
    /// The turn `id`, running or finished, while kept.
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TurnRecord>>;
    /// Finished turns started by `principal` (`None`: everyone's): without
    /// `after`, the newest `limit`; with it, the first `limit` that
    /// finished after it (from the earliest kept when it is of another
    /// epoch). Newest first either way.
    fn list<'a>(
        &'a self,
        principal: Option<&'a str>,
        after: Option<&'a Position>,
        limit: usize,
    ) -> StoreFuture<'a, Listed>;
}

#[cfg(test)]
mod tests;
