use std::sync::Arc;
use std::time::Duration;

use super::*;

fn hub(events: usize) -> Hub {
    Hub::with_epoch("ep".into(), Limits { events, bytes: usize::MAX, max_age: Duration::from_secs(3600) })
}

fn publish(hub: &Hub, n: usize) {
    for i in 0..n {
        hub.publish(Draft {
            kind: "x".into(),
            runtime_id: None,
            agent_id: None,
            conversation_id: None,
            data: format!("{{\"i\":{i}}}"),
        });
    }
}

fn drain(sub: &mut Subscription) -> (Vec<u64>, Vec<(u64, String)>) {
    let (mut seqs, mut lags, mut buf) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(read) = sub.try_read(&mut buf, 3) {
        if let Next::Gap(Gap::Lagged { missed, resume_from }) = read {
            lags.push((missed, resume_from));
        }
        seqs.extend(buf.drain(..).map(|e: Arc<Event>| e.seq));
    }
    (seqs, lags)
}

#[test]
fn ids_are_epoch_and_a_gapless_sequence() {
    let hub = hub(10);
    assert_eq!(hub.cursor(), "ep-0");
    publish(&hub, 3);
    assert_eq!(hub.cursor(), "ep-3");
    assert!(hub.stats().replay_oldest.as_deref() == Some("ep-1"));
}

#[test]
fn a_live_subscriber_sees_only_later_events() {
    let hub = hub(10);
    publish(&hub, 2);
    let (mut sub, reset) = hub.open(Start::Live);
    assert!(reset.is_none());
    publish(&hub, 2);
    assert_eq!(drain(&mut sub).0, vec![3, 4]);
}

#[test]
fn resume_replays_exactly_the_events_after_the_cursor_then_continues_live() {
    let hub = hub(100);
    publish(&hub, 5);
    let (mut sub, reset) = hub.open(Start::After("ep-2"));
    assert!(reset.is_none());
    publish(&hub, 2); // published between subscribe and the first read
    assert_eq!(drain(&mut sub).0, vec![3, 4, 5, 6, 7]);
    publish(&hub, 1);
    assert_eq!(drain(&mut sub).0, vec![8]);
}

#[test]
fn resume_from_zero_replays_everything_held() {
    let hub = hub(100);
    publish(&hub, 4);
    let (mut sub, reset) = hub.open(Start::After("ep-0"));
    assert!(reset.is_none());
    assert_eq!(drain(&mut sub).0, vec![1, 2, 3, 4]);
}

#[test]
fn cursors_that_cannot_be_honoured_get_a_reason() {
    let hub = hub(3);
    publish(&hub, 6); // ring holds 4..=6
    for (cursor, reason) in [
        ("garbage", ResetReason::Malformed),
        ("other-2", ResetReason::OtherEpoch),
        ("ep-7", ResetReason::Unknown),
        ("ep-2", ResetReason::Expired),
    ] {
        let (mut sub, reset) = hub.open(Start::After(cursor));
        assert_eq!(reset, Some(ResetInfo { reason, oldest: Some(4), resume_after: 6 }), "{cursor}");
        assert!(drain(&mut sub).0.is_empty(), "a reset stream continues live");
    }
    let (_, reset) = hub.open(Start::After("ep-3"));
    assert!(reset.is_none(), "ep-3 needs 4.. which the ring still holds");
}

#[test]
fn a_subscriber_overtaken_by_the_ring_is_told_how_much_it_missed() {
    let hub = hub(4);
    let (mut sub, _) = hub.open(Start::Live);
    publish(&hub, 10); // ring holds 7..=10
    let (seqs, lags) = drain(&mut sub);
    assert_eq!(lags, vec![(6, "ep-6".to_owned())]);
    assert_eq!(seqs, vec![7, 8, 9, 10]);
}

#[test]
fn the_byte_limit_evicts_oldest_first_but_keeps_the_newest() {
    let hub = Hub::with_epoch("ep".into(), Limits { events: 100, bytes: 1, max_age: Duration::from_secs(60) });
    publish(&hub, 3);
    let stats = hub.stats();
    assert_eq!(stats.replay_events, 1);
    assert_eq!(stats.replay_oldest.as_deref(), Some("ep-3"));
}

#[test]
fn subscribers_are_counted_until_dropped() {
    let hub = hub(4);
    let (a, _) = hub.open(Start::Live);
    let (b, _) = hub.open(Start::Live);
    assert_eq!(hub.stats().subscribers, 2);
    drop((a, b));
    assert_eq!(hub.stats().subscribers, 0);
}

#[tokio::test]
async fn recv_wakes_on_publish() {
    let hub = hub(4);
    let (mut sub, _) = hub.open(Start::Live);
    let publisher = hub.clone();
    let task = tokio::spawn(async move {
        let mut buf = Vec::new();
        sub.recv(&mut buf, 8).await;
        buf.iter().map(|e| e.seq).collect::<Vec<_>>()
    });
    tokio::task::yield_now().await;
    publish(&publisher, 1);
    let got = tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    assert_eq!(got, vec![1]);
}

#[test]
fn a_read_stops_at_the_batch_byte_bound_and_always_takes_at_least_one_event() {
    let hub = hub(100);
    let (mut sub, _) = hub.open(Start::Live);
    let quarter = "q".repeat(MAX_BATCH_BYTES / 4);
    let publish_data = |data: &str| {
        hub.publish(Draft {
            kind: "x".into(),
            runtime_id: None,
            agent_id: None,
            conversation_id: None,
            data: data.into(),
        })
    };
    for _ in 0..6 {
        publish_data(&quarter); // a little over a quarter of the bound once framed
    }
    publish_data(&"L".repeat(2 * MAX_BATCH_BYTES));
    publish_data("{}");
    let mut buf = Vec::new();
    let mut batches = Vec::new();
    while let Some(read) = sub.try_read(&mut buf, 256) {
        assert_eq!(read, Next::Events);
        let bytes: usize = buf.iter().map(|e| e.size()).sum();
        assert!(buf.len() == 1 || bytes <= MAX_BATCH_BYTES, "a batch of {} events holds {bytes} bytes", buf.len());
        batches.push(buf.drain(..).map(|e| e.seq).collect::<Vec<_>>());
    }
    assert_eq!(batches, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7], vec![8]], "in order, none twice, none lost");
}

#[test]
fn a_reader_is_told_of_each_gap_once_before_the_events_after_it() {
    let hub = hub(4);
    let (mut reader, _) = hub.subscribe(Start::Live);
    publish(&hub, 10); // ring holds 7..=10
    assert_eq!(reader.try_next(), Some(Next::Gap(Gap::Lagged { missed: 6, resume_from: "ep-6".into() })));
    assert_eq!(reader.try_next(), Some(Next::Events));
    assert_eq!(reader.batch().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![7, 8, 9, 10]);
    assert_eq!(reader.try_next(), None, "nothing twice");
    assert!(reader.batch().is_empty(), "a read clears the batch before it");
    hub.rebase("fresh");
    publish(&hub, 1);
    let rebased = Gap::Rebased { previous: "ep-10".into(), resume_from: "fresh-0".into() };
    assert_eq!(reader.try_next(), Some(Next::Gap(rebased)));
    assert_eq!(reader.try_next(), Some(Next::Events));
    assert_eq!(reader.batch()[0].sse().split(|b| *b == b'\n').next(), Some(&b"id: fresh-1"[..]));
    assert_eq!(reader.position(), 1);
}
