//! Resume cursors: never panic; a cursor either resumes inside the ring or
//! gets a reset, and parsing is stable.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use letta_bridge::hub::{Cursor, Draft, Hub, Limits, ResetInfo, Start};
use libfuzzer_sys::fuzz_target;

fn hub() -> &'static Hub {
    static HUB: OnceLock<Hub> = OnceLock::new();
    HUB.get_or_init(|| {
        let hub = Hub::with_epoch("ep".into(), Limits { events: 8, bytes: usize::MAX, max_age: Duration::from_secs(3600) });
        for i in 0..20 {
            hub.publish(Draft {
                kind: "e".into(),
                runtime_id: None,
                agent_id: None,
                conversation_id: None,
                data: format!("{{\"i\":{i}}}"),
            });
        }
        hub
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(cursor) = Cursor::parse(text) {
        let again = format!("{}-{}", cursor.epoch, cursor.seq);
        assert_eq!(Cursor::parse(&again), Some(cursor.clone()));
    }
    let (sub, reset) = hub().subscribe(Start::After(text));
    match reset {
        None => assert!((12..=20).contains(&sub.position()), "resumes inside the ring: {}", sub.position()),
        Some(ResetInfo { oldest, resume_after, .. }) => {
            assert_eq!(oldest, Some(13));
            assert_eq!(resume_after, 20);
        }
    }
});
