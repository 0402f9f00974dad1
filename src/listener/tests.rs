//! The listener's arithmetic: its cap, its watchdog's tick, its log bursts.

use super::*;

#[test]
fn the_cap_leaves_descriptors_for_the_process_and_a_reserve_for_runtimes() {
    assert_eq!(cap(256, 224), 240);
    assert_eq!(cap(1024, 973), 1008);
    assert_eq!(cap(256, 250), 258, "a limit set by hand still keeps a reserve");
}

#[test]
fn the_watchdog_looks_four_times_per_shortest_timeout_within_bounds() {
    let t = |h, i| Timeouts { header: Duration::from_millis(h), idle: Duration::from_millis(i) };
    assert_eq!(tick(t(10_000, 60_000)), Duration::from_secs(1));
    assert_eq!(tick(t(200, 60_000)), Duration::from_millis(50));
    assert_eq!(tick(t(1, 1)), Duration::from_millis(10));
}

#[test]
fn a_burst_is_logged_once_with_what_it_suppressed() {
    let mut burst = Burst::default();
    assert_eq!(burst.note(), Some(0));
    assert_eq!(burst.note(), None);
    assert_eq!(burst.note(), None);
    burst.0 = burst.0.map(|(_, n)| (Instant::now() - LOG_EVERY, n));
    assert_eq!(burst.note(), Some(2));
}
