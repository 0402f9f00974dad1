//! Per-credential limits, by themselves.

use super::*;
use crate::protocol::access::UserPrincipal;
use crate::protocol::access::grants::Grants;
use crate::store::MemoryRates;

/// The same limits for the client token and end users.
fn quotas(per_second: f64, burst: u32, streams: usize) -> Arc<Quotas> {
    let limit = Limit { rate: Some(Rate { per_second, burst }), streams: Some(streams) };
    Quotas::new(Settings { user: limit, client: limit }, Arc::new(MemoryRates::default()))
}

fn user_role(sub: &str) -> Role {
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
    assert!(quotas.request(&user_role("alice")).await.is_ok(), "an end user is another credential");
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
    let a = quotas.stream(&user_role("alice")).unwrap();
    let _b = quotas.stream(&user_role("alice")).unwrap();
    assert_eq!(quotas.stream(&user_role("alice")).err().map(|e| e.reason()), Some("streams"));
    assert!(quotas.stream(&user_role("bob")).is_ok(), "bob's are his own");
    assert_eq!(quotas.streams_of(&user_role("alice")), 2);
    drop(a);
    assert_eq!(quotas.streams_of(&user_role("alice")), 1);
    assert!(quotas.stream(&user_role("alice")).is_ok());
}

#[tokio::test]
async fn a_credential_without_limits_of_its_own_is_not_counted() {
    let user = Limit { rate: Some(Rate { per_second: 1.0, burst: 1 }), streams: Some(1) };
    let quotas = Quotas::new(Settings { user, client: Limit::default() }, Arc::new(MemoryRates::default()));
    for _ in 0..5 {
        assert!(quotas.request(&Role::Client).await.is_ok());
    }
    assert!(quotas.stream(&Role::Client).unwrap().is_none());
    assert!(quotas.request(&user_role("alice")).await.is_ok());
    let refused = quotas.request(&user_role("alice")).await.unwrap_err();
    assert!(refused.to_string().contains("LETTA_BRIDGE_USER_RATE"), "{refused}");
}
