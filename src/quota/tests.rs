//! Per-credential limits, by themselves.

use super::*;
use crate::protocol::access::{Grants, UserPrincipal};
use crate::store::MemoryRates;

fn quotas(per_second: f64, burst: u32, streams: usize) -> Arc<Quotas> {
    Quotas::new(Settings { rate: Rate { per_second, burst }, streams }, Arc::new(MemoryRates::default()))
}

fn user(sub: &str) -> Role {
    Role::User(Arc::new(UserPrincipal { sub: sub.into(), exp: 0, jti: None, grants: Grants::default() }))
}

#[tokio::test(start_paused = true)]
async fn a_credential_beyond_its_burst_is_refused_and_told_when_to_retry() {
    let quotas = quotas(1.0, 2, 10);
    assert!(quotas.request(&Role::Client).await.is_ok());
    assert!(quotas.request(&Role::Client).await.is_ok());
    let refused = quotas.request(&Role::Client).await.unwrap_err();
    assert_eq!(refused.reason(), "commands");
    assert_eq!(refused.retry_after_secs(), 1);
    assert!(quotas.request(&user("alice")).await.is_ok(), "an end user is another credential");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(quotas.request(&Role::Client).await.is_ok(), "a token came back");
}

#[tokio::test]
async fn the_admin_token_is_exempt() {
    let quotas = quotas(1.0, 1, 0);
    for _ in 0..5 {
        assert!(quotas.request(&Role::Admin).await.is_ok());
    }
    assert!(quotas.stream(&Role::Admin).unwrap().is_none());
}

#[test]
fn streams_are_counted_per_credential_and_freed_when_dropped() {
    let quotas = quotas(1.0, 1, 2);
    let a = quotas.stream(&user("alice")).unwrap();
    let _b = quotas.stream(&user("alice")).unwrap();
    assert_eq!(quotas.stream(&user("alice")).unwrap_err().reason(), "streams");
    assert!(quotas.stream(&user("bob")).is_ok(), "bob's are his own");
    assert_eq!(quotas.streams_of(&user("alice")), 2);
    drop(a);
    assert_eq!(quotas.streams_of(&user("alice")), 1);
    assert!(quotas.stream(&user("alice")).is_ok());
}
