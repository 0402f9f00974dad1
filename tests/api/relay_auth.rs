//! The relay socket's URL credentials: the client token or a stream ticket
//! in the query, never the admin token (URLs end up in browser history and
//! proxy logs); the admin token only in the `Authorization` header.

use serde_json::{Value, json};

use crate::helpers::*;

const RELAY: &str = "/v1/environments/dev-a/status/ws";

impl TestApp {
    /// A plain GET of `path` (no upgrade): the status and body of a refusal.
    async fn relay_refusal(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
            .await
            .unwrap()
    }

    async fn ticket(&self) -> String {
        let res = self.http.post(self.url("/tickets")).bearer_auth(CLIENT_TOKEN).send().await.unwrap();
        let body: Value = res.json().await.unwrap();
        body["ticket"].as_str().unwrap().to_owned()
    }
}

/// `runtime_start` creating an agent: refused on a socket of the client role.
fn create_agent(request_id: &str) -> Value {
    json!({"type": "runtime_start", "request_id": request_id,
           "create_agent": {"body": {"name": "x", "model": "lmstudio/fake-model"}}, "create_conversation": {}})
}

#[tokio::test]
async fn the_admin_token_in_the_relay_url_is_401_saying_to_send_it_in_the_header() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    let res = app.relay_refusal(&format!("{RELAY}?token={ADMIN_TOKEN}")).await;
    let problem = assert_problem(res, 401).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("admin token") && detail.contains("Authorization"), "{problem}");
    assert!(!detail.contains(ADMIN_TOKEN), "{problem}");
    assert_problem(app.relay_refusal(&format!("{RELAY}?token=wrong-token")).await, 401).await;

    // In the header it is the admin's socket.
    let mut admin = app.client_socket(RELAY, Some(ADMIN_TOKEN)).await;
    admin.send(create_agent("as-admin")).await;
    let created = admin.next_of("runtime_start_response").await;
    assert_eq!(created["success"], true, "{created}");
    // The client token in the URL still works (Letta's clients put their API key there).
    let mut client = app.client_socket(&format!("{RELAY}?token={CLIENT_TOKEN}"), None).await;
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.next().await["type"], "pong");
}

#[tokio::test]
async fn a_stream_ticket_opens_the_relay_socket_with_the_client_role() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    let ticket = app.ticket().await;
    let mut socket = app.client_socket(&format!("{RELAY}?ticket={ticket}"), None).await;
    socket.send(json!({"type": "ping"})).await;
    assert_eq!(socket.next().await["type"], "pong");
    socket.send(create_agent("by-ticket")).await;
    let refused = socket.next_of("runtime_start_response").await;
    assert_eq!(refused["success"], false, "a ticket's socket has the client role: {refused}");
    assert!(refused["error"].as_str().unwrap().contains("admin token"), "{refused}");

    // The ticket opened again (a reconnect) takes it over: the first socket
    // ends with 1008 (a policy close: its client must not take it back).
    let mut again = app.client_socket(&format!("{RELAY}?ticket={ticket}"), None).await;
    let (code, reason) = socket.closed().await.expect("a close frame");
    assert_eq!((code, reason.as_str()), (1008, "ticket opened by another connection"));
    again.send(json!({"type": "ping"})).await;
    assert_eq!(again.next().await["type"], "pong");

    let problem = assert_problem(app.relay_refusal(&format!("{RELAY}?ticket=tk_unknown")).await, 401).await;
    assert!(problem["detail"].as_str().unwrap().contains("POST /tickets"), "{problem}");
}
