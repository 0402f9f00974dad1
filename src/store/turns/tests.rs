use std::time::Duration;

use super::*;

fn record(id: &str, principal: &str) -> TurnRecord {
    TurnRecord {
        id: id.to_owned(),
        principal: principal.to_owned(),
        runtime_id: "dev-a".into(),
        agent_id: "agent-1".into(),
        conversation_id: Some("conv-1".into()),
        request_id: format!("req-{id}"),
        cursor: "e-0".into(),
        started_at: 1_767_225_600_000,
        finished: None,
    }
}

fn finished(id: &str, principal: &str) -> TurnRecord {
    let body = format!("{{\"id\":\"{id}\"}}");
    let finished = Finished { status: 200, body, retry_after: None, finished_at: 1_767_225_601_000 };
    TurnRecord { finished: Some(finished), ..record(id, principal) }
}

fn ids(listed: &Listed) -> Vec<&str> {
    listed.turns.iter().map(|t| t.id.as_str()).collect()
}

#[test]
fn a_turn_record_reads_back_as_written() {
    let mut failed = finished("tn_3", "client");
    failed.finished.as_mut().unwrap().retry_after = Some(8);
    for sent in [record("tn_1", "client"), finished("tn_2", "user:alice"), failed] {
        assert_eq!(TurnRecord::from_json(&sent.to_json()), Some(sent));
    }
    assert_eq!(TurnRecord::from_json("{\"id\":1}"), None);
}

#[test]
fn a_cursor_is_an_epoch_a_dash_and_a_sequence_number() {
    let at = Position { epoch: "ab12".into(), seq: 7 };
    assert_eq!(at.to_cursor(), "ab12-7");
    assert_eq!(Position::parse("ab12-7"), Some(at));
    for bad in
        ["", "7", "-7", "ab12-", "ab12-x", "a b-1", "ab-1-2x", "ab-99999999999999999999", "ab-1234567890123456789x"]
    {
        assert_eq!(Position::parse(bad), None, "{bad:?}");
    }
}

#[tokio::test]
async fn a_running_turn_is_replaced_by_its_end_and_never_the_other_way_round() {
    let store = MemoryTurns::new();
    store.start(&record("tn_1", "client"), Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.get("tn_1").await.unwrap().unwrap().finished, None);
    store.finish(&finished("tn_1", "client")).await.unwrap();
    assert!(store.get("tn_1").await.unwrap().unwrap().finished.is_some());
    // A start recorded after the end (the follower was faster) changes nothing.
    store.start(&record("tn_1", "client"), Duration::from_secs(60)).await.unwrap();
    assert!(store.get("tn_1").await.unwrap().unwrap().finished.is_some());
    assert_eq!(store.get("tn_unknown").await.unwrap(), None);
}

#[tokio::test]
async fn turns_list_newest_first_and_continue_after_a_cursor_without_a_gap() {
    let store = MemoryTurns::new();
    let empty = store.list(None, None, 10).await.unwrap();
    assert_eq!((empty.turns.len(), empty.next.seq), (0, 0));
    for i in 1..=5 {
        store.finish(&finished(&format!("tn_{i}"), "client")).await.unwrap();
    }
    let newest = store.list(None, None, 2).await.unwrap();
    assert_eq!(ids(&newest), ["tn_5", "tn_4"]);
    assert_eq!(newest.next.seq, 5, "without after, next is the newest place");

    // After a cursor: the first `limit` that finished after it, newest first.
    let at_one = Position { epoch: empty.next.epoch.clone(), seq: 1 };
    let page = store.list(None, Some(&at_one), 2).await.unwrap();
    assert_eq!(ids(&page), ["tn_3", "tn_2"]);
    let page = store.list(None, Some(&page.next), 2).await.unwrap();
    assert_eq!(ids(&page), ["tn_5", "tn_4"]);
    let page = store.list(None, Some(&page.next), 2).await.unwrap();
    assert_eq!((ids(&page).len(), page.next.seq), (0, 5));

    // A cursor of another epoch (a store that started afresh) lists from the earliest kept.
    let foreign = Position { epoch: "other".into(), seq: 4 };
    assert_eq!(ids(&store.list(None, Some(&foreign), 2).await.unwrap()), ["tn_2", "tn_1"]);
}

#[tokio::test]
async fn a_principal_lists_only_the_turns_it_started_and_the_cursor_passes_the_others() {
    let store = MemoryTurns::new();
    store.finish(&finished("tn_1", "user:alice")).await.unwrap();
    store.finish(&finished("tn_2", "user:bob")).await.unwrap();
    store.finish(&finished("tn_3", "user:alice")).await.unwrap();
    let alice = store.list(Some("user:alice"), None, 10).await.unwrap();
    assert_eq!(ids(&alice), ["tn_3", "tn_1"]);
    assert_eq!(ids(&store.list(None, None, 10).await.unwrap()), ["tn_3", "tn_2", "tn_1"]);
    let first = store.list(Some("user:alice"), Some(&Position { seq: 0, ..alice.next.clone() }), 1).await.unwrap();
    assert_eq!((ids(&first), first.next.seq), (vec!["tn_1"], 1));
    let rest = store.list(Some("user:alice"), Some(&first.next), 1).await.unwrap();
    assert_eq!((ids(&rest), rest.next.seq), (vec!["tn_3"], 3));
}

#[tokio::test]
async fn at_most_max_turns_are_kept_and_the_earliest_finished_go_first() {
    let store = MemoryTurns::with_limits(3, TURN_RETENTION);
    for i in 1..=4 {
        store.finish(&finished(&format!("tn_{i}"), "client")).await.unwrap();
    }
    assert_eq!(store.get("tn_1").await.unwrap(), None);
    assert_eq!(ids(&store.list(None, None, 10).await.unwrap()), ["tn_4", "tn_3", "tn_2"]);
}

#[tokio::test(start_paused = true)]
async fn a_finished_turn_is_kept_for_the_retention_and_then_forgotten() {
    let store = MemoryTurns::new();
    store.finish(&finished("tn_1", "client")).await.unwrap();
    tokio::time::advance(TURN_RETENTION - Duration::from_secs(1)).await;
    store.finish(&finished("tn_2", "client")).await.unwrap();
    assert!(store.get("tn_1").await.unwrap().is_some());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(store.get("tn_1").await.unwrap(), None);
    assert_eq!(ids(&store.list(None, None, 10).await.unwrap()), ["tn_2"]);
}

#[tokio::test(start_paused = true)]
async fn a_running_turn_whose_end_never_comes_is_forgotten_after_its_time() {
    let store = MemoryTurns::new();
    store.start(&record("tn_1", "client"), Duration::from_secs(90)).await.unwrap();
    tokio::time::advance(Duration::from_secs(89)).await;
    assert!(store.get("tn_1").await.unwrap().is_some());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(store.get("tn_1").await.unwrap(), None);
}
