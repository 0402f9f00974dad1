//! Rotating the HS256 secret without downtime: tokens signed with the
//! previous secret verify until LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL, and
//! not after.

use serde_json::json;

use super::*;

const PREVIOUS_SECRET: &str = "test-user-token-secret-000000000000000";

async fn rotating(until: &str) -> TestApp {
    let until = until.to_owned();
    spawn_with_user_tokens(None, |c| {
        c.user_token_previous_secret = Some(PREVIOUS_SECRET.into());
        c.user_token_previous_until = Some(until);
    })
    .await
}

#[tokio::test]
async fn the_previous_secret_is_taken_until_its_time_at_every_door() {
    let app = rotating("2999-01-01T00:00:00Z").await;
    let _rt = app.runtime(DEVICE).await;
    let (old, new) =
        (hs256(PREVIOUS_SECRET.as_bytes(), &claims(json!({}))), hs256(USER_SECRET.as_bytes(), &claims(json!({}))));
    for door in DOORS {
        let expected = app.knock(door, CLIENT_TOKEN).await.status;
        assert_eq!(app.knock(door, &old).await.status, expected, "{door:?}: the previous secret's token");
        assert_eq!(app.knock(door, &new).await.status, expected, "{door:?}: the new secret's token");
    }
}

#[tokio::test]
async fn after_its_time_the_previous_secret_is_refused_saying_it_was_retired() {
    let app = rotating("2020-01-01T00:00:00+01:00").await;
    let _rt = app.runtime(DEVICE).await;
    let old = hs256(PREVIOUS_SECRET.as_bytes(), &claims(json!({})));
    for door in DOORS {
        let challenge = app.knock(door, &old).await.assert_invalid_token(&format!("{door:?}"));
        assert!(challenge.contains("LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL"), "{challenge}");
    }
    let new = hs256(USER_SECRET.as_bytes(), &claims(json!({})));
    assert_eq!(app.knock(Door::Rest, &new).await.status, 200);
}
