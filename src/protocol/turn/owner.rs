//! Whose turn a frame belongs to, when the runtime says so by the
//! `client_message_id`s of the inputs (PROTOCOL.md §9):
//! - `turn_finished.client_message_ids` (runtimes newer than 0.32.18): the
//!   inputs the turn owned, ours or not;
//! - `loop_status.client_message_ids_by_run_id` (already sent by 0.32.18, a
//!   snapshot of the recent runs): a `turn_finished` whose `run_id` is
//!   listed with one of our ids is ours. Only that positive answer is
//!   taken from it: a run listed without our ids (or not listed) tells
//!   nothing, so a 0.32.18 runtime's turns follow the order of events as
//!   before unless it names our input;
//! - a `loop_status.failure`'s `client_message_ids` (newer runtimes).
//!
//! Without them the answer is [`Owner::Unknown`]: the order of events decides.

use std::collections::HashSet;

use serde_json::Value;

/// Most runs read from one `client_message_ids_by_run_id` snapshot (the
/// runtime keeps the 32 most recent per conversation; of a bigger one, the
/// first are read).
const MAX_RUNS: usize = 64;

/// Whose a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// It names one of our messages.
    Ours,
    /// It names messages, none of them ours.
    Other,
    /// It names none (or we have none to look for).
    Unknown,
}

/// Our messages' ids, and what the runtime said about its runs.
#[derive(Debug, Default)]
pub(super) struct Owners {
    /// The `client_message_id`s of the command's messages.
    ours: Vec<String>,
    /// From the latest `client_message_ids_by_run_id`: the runs that sent one of ours.
    runs: HashSet<String>,
}

impl Owners {
    pub(super) fn new(ours: Vec<String>) -> Self {
        Self { ours, runs: HashSet::new() }
    }

    /// True when the command has messages to match.
    pub(super) fn any(&self) -> bool {
        !self.ours.is_empty()
    }

    /// True for one of our ids.
    pub(super) fn is_ours(&self, id: &str) -> bool {
        self.ours.iter().any(|m| m == id)
    }

    /// Whose a list of `client_message_ids` is (`Unknown` when it is not a list).
    pub(super) fn of_ids(&self, ids: Option<&Value>) -> Owner {
        match ids.and_then(Value::as_array) {
            Some(ids) if self.any() => {
                if ids.iter().filter_map(Value::as_str).any(|id| self.is_ours(id)) {
                    Owner::Ours
                } else {
                    Owner::Other
                }
            }
            _ => Owner::Unknown,
        }
    }

    /// Whose a `turn_finished` is: by its `client_message_ids`, else by its
    /// `run_id` in the runs the runtime correlated.
    pub(super) fn of_turn(&self, turn_finished: &Value) -> Owner {
        match self.of_ids(turn_finished.get("client_message_ids")) {
            Owner::Unknown => {}
            known => return known,
        }
        turn_finished.get("run_id").and_then(Value::as_str).map_or(Owner::Unknown, |run| self.of_run(run))
    }

    /// Whose a run is, by the runs the runtime correlated: ours, or unknown.
    pub(super) fn of_run(&self, run: &str) -> Owner {
        if self.runs.contains(run) { Owner::Ours } else { Owner::Unknown }
    }

    /// Takes the runs of a `loop_status` that correlates them
    /// (`client_message_ids_by_run_id`, a snapshot of the recent ones).
    pub(super) fn read_loop_status(&mut self, loop_status: &Value) {
        let Some(runs) = loop_status.get("client_message_ids_by_run_id").and_then(Value::as_object) else {
            return;
        };
        if !self.any() {
            return;
        }
        self.runs = runs
            .iter()
            .take(MAX_RUNS)
            .filter(|(_, ids)| self.of_ids(Some(ids)) == Owner::Ours)
            .map(|(run, _)| run.clone())
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_turn_is_ours_when_it_names_one_of_our_messages_and_unknown_when_it_names_none() {
        let owners = Owners::new(vec!["cm-b".into(), "cm-c".into()]);
        assert_eq!(owners.of_turn(&json!({"client_message_ids": ["cm-a", "cm-c"]})), Owner::Ours);
        assert_eq!(owners.of_turn(&json!({"client_message_ids": ["cm-a"]})), Owner::Other);
        assert_eq!(owners.of_turn(&json!({"run_id": "run-1"})), Owner::Unknown, "0.32.18 names none");
        let none = Owners::new(Vec::new());
        assert_eq!(none.of_turn(&json!({"client_message_ids": ["cm-a"]})), Owner::Unknown, "nothing to look for");
    }

    #[test]
    fn a_turn_without_ids_is_ours_when_the_loop_status_snapshot_lists_its_run_with_our_message() {
        let mut owners = Owners::new(vec!["cm-b".into()]);
        owners.read_loop_status(&json!({"status": "PROCESSING_API_RESPONSE",
            "client_message_ids_by_run_id": {"run-a": ["cm-a"], "run-b": ["cm-b", "cm-c"]}}));
        assert_eq!(owners.of_turn(&json!({"run_id": "run-b"})), Owner::Ours);
        assert_eq!(owners.of_turn(&json!({"run_id": "run-a"})), Owner::Unknown, "only a run naming ours tells");
        assert_eq!(owners.of_turn(&json!({"run_id": "run-z"})), Owner::Unknown);
        assert_eq!(owners.of_turn(&json!({"run_id": "run-b", "client_message_ids": []})), Owner::Other, "ids first");
    }
}
