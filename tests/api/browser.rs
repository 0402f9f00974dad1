//! Browser access: stream tickets for EventSource, CORS allow-list, Origin checks.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

async fn ticket(app: &TestApp) -> String {
    let res = app.post("/tickets", Value::Null).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scope"], "events");
    assert_eq!(body["expires_in"], 60);
    body["ticket"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_tickets_url_reconnects_as_eventsource_does_and_resumes_after_the_last_event() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    let t = ticket(&app).await;
    let url = format!("/events?ticket={t}&types=hello");
    let mut first = Sse::new(app.get_as(None, &url).await);
    rt.emit("hello", "a", "c", serde_json::json!({"n": 1}));
    let seen = first.next().await;
    drop(first); // the network drops
    rt.emit("hello", "a", "c", serde_json::json!({"n": 2}));
    // EventSource reconnects with the same URL and the last id it saw.
    let res = app.http.get(app.url(&url)).header("Last-Event-ID", &seen.id).send().await.unwrap();
    assert_eq!(res.status(), 200, "the ticket serves its stream's reconnects");
    let mut again = Sse::new(res);
    let next = again.next().await;
    assert_eq!(next.data["n"], 2, "the event published meanwhile, and not the one seen before");
}

#[tokio::test]
async fn a_ticket_opened_again_ends_its_earlier_stream() {
    let app = spawn_app().await;
    let t = ticket(&app).await;
    let mut first = Sse::new(app.get_as(None, &format!("/events?ticket={t}")).await);
    let second = app.get_as(None, &format!("/events?ticket={t}")).await;
    assert_eq!(second.status(), 200);
    assert!(first.ends().await, "a ticket never serves two streams at once");
}

#[tokio::test]
async fn tickets_need_a_client_token_and_open_nothing_but_events() {
    let app = spawn_app().await;
    assert_problem(app.post_as(None, "/tickets", Value::Null).await, 401).await;
    assert_problem(app.post_as(Some(RUNTIME_TOKEN), "/tickets", Value::Null).await, 401).await;
    assert_problem(app.get_as(None, "/events?ticket=tk_made_up").await, 401).await;
    let t = ticket(&app).await;
    for path in ["/status", "/runtimes"] {
        assert_problem(app.get_as(None, &format!("{path}?ticket={t}")).await, 401).await;
    }
    let res = app.http.post(app.url(&format!("/sync?ticket={t}"))).json(&Value::Null).send().await.unwrap();
    assert_problem(res, 401).await;
}

async fn with_origin(app: &TestApp, method: Method, path: &str, origin: &str) -> reqwest::Response {
    let mut req = app.http.request(method.clone(), app.url(path)).header("Origin", origin);
    if method == Method::OPTIONS {
        req = req
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization,content-type,idempotency-key");
    } else {
        req = req.bearer_auth(CLIENT_TOKEN);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn allowed_origins_get_cors_headers_and_a_preflight_answer() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["https://app.example.com".into()]).await;
    let pre = with_origin(&app, Method::OPTIONS, "/input", "https://app.example.com").await;
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(pre.headers()["access-control-allow-origin"], "https://app.example.com");
    let allowed = pre.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("idempotency-key"), "{allowed}");
    assert!(pre.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let res = with_origin(&app, Method::GET, "/status", "https://app.example.com").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
    let exposed = res.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
    for header in ["retry-after", "link", "www-authenticate", "idempotent-replayed", "x-request-id"] {
        assert!(exposed.contains(header), "a page reads {header}: {exposed}");
    }
}

#[tokio::test]
async fn other_origins_are_refused_with_403_preflight_included() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["https://app.example.com".into()]).await;
    for (method, path) in [(Method::OPTIONS, "/input"), (Method::GET, "/status"), (Method::GET, "/events")] {
        let res = with_origin(&app, method, path, "https://evil.example.net").await;
        assert!(res.headers().get("access-control-allow-origin").is_none());
        assert_problem(res, 403).await;
    }
}

#[tokio::test]
async fn without_configuration_only_the_bridges_own_origin_is_allowed() {
    let app = spawn_app().await;
    let own = format!("http://{}", app.addr);
    assert_eq!(with_origin(&app, Method::GET, "/status", &own).await.status(), 200);
    assert_problem(with_origin(&app, Method::GET, "/status", "http://localhost:3000").await, 403).await;
    assert_problem(with_origin(&app, Method::GET, "/status", "null").await, 403).await;
    // Clients that send no Origin (curl, backends, the runtime) are not affected.
    assert_eq!(app.get("/status").await.status(), 200);
}

#[tokio::test]
async fn a_cross_site_page_cannot_open_the_runtime_socket() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/ws"))
        .header("Origin", "https://evil.example.net")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_problem(res, 403).await;
}

#[tokio::test]
async fn a_ticket_does_not_excuse_a_bad_authorization_header() {
    let app = spawn_app().await;
    let t = ticket(&app).await;
    let res =
        app.http.get(app.url(&format!("/events?ticket={t}"))).header("Authorization", "Bearer ").send().await.unwrap();
    assert_problem(res, 401).await;
}
