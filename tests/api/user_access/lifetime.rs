//! The life of what a user token opens: a stream ends with `reauth` at the
//! token's `exp` (and resuming with a fresh ticket loses nothing), a ticket
//! opens nothing after it, and a revoked token is refused everywhere and
//! ends its streams at once.

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use super::*;

/// Alice's grants, in a token that expires `life` seconds from now.
fn short(life: u64, jti: &str) -> String {
    token("alice", life, jti, ALL, json!([{"runtime": "dev-1", "agent_id": "agent-1", "conversation_id": "conv-a"}]))
}

async fn open_ticket(app: &TestApp, ticket: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let resume = last_event_id.map(|id| format!("&last_event_id={id}")).unwrap_or_default();
    app.http.get(app.url(&format!("/events?ticket={ticket}{resume}"))).send().await.unwrap()
}

#[tokio::test]
async fn a_stream_ends_with_reauth_at_exp_and_a_fresh_ticket_resumes_it_losing_nothing() {
    let app = spawn_with_users().await;
    let rt = app.runtime("dev-1").await;
    let first = ticket(&app, &short(2, "a-1")).await;
    let mut sse = Sse::new(open_ticket(&app, &first, None).await).waiting(Duration::from_secs(5));
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 1}));
    assert_eq!(sse.next().await.data["n"], 1);
    let reauth = sse.next_of("reauth").await;
    assert_eq!(reauth.data["reason"], "token_expired");
    assert_eq!(reauth.id, reauth.data["resume_from"].as_str().unwrap());
    assert!(sse.ends().await, "the stream ends after `reauth`");
    assert_eq!(open_ticket(&app, &first, None).await.status(), 401, "the ticket opens nothing after exp");
    // What happens meanwhile is not lost.
    rt.emit("update_queue", "agent-1", "conv-b", json!({"n": 2}));
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 3}));
    let fresh = ticket(&app, &short(600, "a-2")).await;
    let mut resumed = Sse::new(open_ticket(&app, &fresh, Some(&reauth.id)).await);
    assert_eq!(resumed.next().await.data["n"], 3, "the first event after the reauth, once");
}

#[tokio::test]
async fn revocation_ends_the_tokens_streams_with_token_revoked_and_refuses_it_everywhere() {
    let app = spawn_with_users().await;
    let _rt = app.runtime("dev-1").await;
    let doomed = short(600, "doomed-1");
    let kept = short(600, "kept-1");
    let mut by_header = events_as(&app, &doomed, "", None).await;
    let its_ticket = ticket(&app, &doomed).await;
    let mut by_ticket = Sse::new(open_ticket(&app, &its_ticket, None).await);
    let mut other = events_as(&app, &kept, "", None).await.waiting(Duration::from_millis(300));
    let mut relay = app.client_socket(&format!("/v1/environments/dev-1/status/ws?token={doomed}"), None).await;
    let revocation = json!({"jti": "doomed-1", "exp": now() + 600});
    let res = app.post("/revocations", revocation.clone()).await;
    assert_problem(res, 403).await;
    let res = app.post_as(Some(ADMIN_TOKEN), "/revocations", revocation).await;
    assert_eq!(res.status(), 204);
    for sse in [&mut by_header, &mut by_ticket] {
        let reauth = sse.next_of("reauth").await;
        assert_eq!(reauth.data["reason"], "token_revoked");
        assert!(sse.ends().await);
    }
    assert_eq!(relay.closed().await, Some((4001, "token_revoked".into())));
    assert!(!other.ends().await, "another token's stream goes on");
    let res = app.get_as(Some(&doomed), "/events").await;
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("invalid_token") && challenge.contains("revoked"), "{challenge}");
    assert_problem(res, 401).await;
    assert_problem(app.post_as(Some(&doomed), "/tickets", json!({})).await, 401).await;
    assert_problem(app.post_as(Some(&doomed), "/input", message("conv-a")).await, 401).await;
    assert_eq!(open_ticket(&app, &its_ticket, None).await.status(), 401, "its ticket too");
    assert_eq!(app.post_as(Some(&kept), "/input", message("conv-a")).await.status(), 202);
}

#[tokio::test]
async fn a_revoked_token_stays_refused_through_the_clock_skew_it_is_taken_with_after_its_exp() {
    let app = spawn_with_users().await;
    // Expired half a minute ago: still taken, within the minute of clock skew.
    let exp = now() - 30;
    let claims = json!({"sub": "alice", "aud": "letta-bridge", "exp": exp, "jti": "late-1",
        "authorization_details": [{"type": "letta-bridge", "actions": ALL, "scopes": [conv("conv-a")]}]});
    let late = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
    assert_eq!(app.get_as(Some(&late), "/runtimes").await.status(), 200, "taken within the skew");
    let res = app.post_as(Some(ADMIN_TOKEN), "/revocations", json!({"jti": "late-1", "exp": exp})).await;
    assert_eq!(res.status(), 204);
    assert_problem(app.get_as(Some(&late), "/runtimes").await, 401).await;
}

#[tokio::test]
async fn a_revocation_needs_a_jti_of_printable_characters() {
    let app = spawn_with_users().await;
    for bad in [json!({"jti": "", "exp": 1}), json!({"jti": "a\u{0}b", "exp": 1}), json!({"exp": 1})] {
        let res = app.post_as(Some(ADMIN_TOKEN), "/revocations", bad.clone()).await;
        assert_eq!(res.status(), 422, "{bad}");
    }
    for bad in [json!({"jti": "j", "exp": 1.5}), json!({"jti": "j", "exp": -1}), json!({"jti": "j", "exp": "1"})] {
        let res = app.post_as(Some(ADMIN_TOKEN), "/revocations", bad.clone()).await;
        assert_eq!(res.status(), 422, "{bad}");
    }
    // JSON Schema's `integer` (the document's) also takes a zero fraction.
    let res = app.post_as(Some(ADMIN_TOKEN), "/revocations", json!({"jti": "j", "exp": 500.0})).await;
    assert_eq!(res.status(), 204);
}
