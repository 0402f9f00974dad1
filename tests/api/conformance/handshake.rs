//! The handshake as recorded: registration, the WebSocket upgrade, the
//! runtime's JSON pings, and what the runtime does after each close code.

use letta_bridge_testkit::replay::realise;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::shape;
use crate::helpers::*;

/// Headers the HTTP client or the WebSocket handshake sets itself.
const TRANSPORT_HEADERS: &[&str] =
    &["host", "content-length", "connection", "authorization", "upgrade", "sec-websocket-key", "sec-websocket-version"];

/// The recorded headers of a request, as `(name, value)` to send again.
fn recorded_headers(request: &Value) -> Vec<(String, String)> {
    let headers = request["headers"].as_object().expect("recorded headers");
    headers
        .iter()
        .filter(|(k, _)| !TRANSPORT_HEADERS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), realise(v).as_str().unwrap_or_default().to_owned()))
        .collect()
}

#[tokio::test]
async fn the_recorded_registration_requests_are_answered_with_what_the_runtime_needs() {
    let app = spawn_app().await;
    for request in fixtures::fixture("register")["requests"].as_array().unwrap() {
        let path = request["path"].as_str().unwrap();
        let method = Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap();
        let mut req = app.http.request(method, app.url(path)).bearer_auth(RUNTIME_TOKEN);
        for (name, value) in recorded_headers(request) {
            req = req.header(name, value);
        }
        if !request["body"].is_null() {
            req = req.body(realise(&request["body"]).to_string());
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        if path != "/v1/environments/register" {
            continue;
        }
        let answer: Value = res.json().await.unwrap();
        assert!(answer["connectionId"].as_str().is_some_and(|id| !id.is_empty()), "{answer}");
        let ws_url = answer["wsUrl"].as_str().expect("wsUrl");
        assert!(ws_url.starts_with(&format!("ws://{}/", app.addr)), "{ws_url}");
        // One socket per runtime: split channels and paired generations off.
        assert_ne!(answer["supportsSplitStatusChannels"], true);
        assert_ne!(answer["supportsPairedListenerGenerations"], true);
        // The recorder answered as the bridge did when recording: same shape.
        assert_eq!(shape(&answer), shape(&request["answer"]["body"]), "the registration answer changed shape");
    }
}

#[tokio::test]
async fn the_recorded_websocket_upgrade_is_served_and_the_recorded_ping_gets_a_pong() {
    let app = spawn_app().await;
    let res = app.register_as(Some(RUNTIME_TOKEN), "conformance-device").await;
    assert_eq!(res.status(), 200);
    let ws_url = res.json::<Value>().await.unwrap()["wsUrl"].as_str().unwrap().to_owned();
    let upgrade = &fixtures::fixture("connect")["upgrade"];
    let query = realise(&upgrade["query"]).as_str().unwrap().replace(fixtures::DEVICE, "conformance-device");
    let mut req = format!("{ws_url}?{query}").into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {RUNTIME_TOKEN}").parse().unwrap());
    for (name, value) in recorded_headers(upgrade) {
        req.headers_mut()
            .insert(reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    let mut rt = FakeRuntime::connect_request(req).await.expect("the recorded upgrade is accepted");

    let pings = fixtures::fixture("ping")["runtime_pings"].as_array().unwrap();
    assert!(!pings.is_empty(), "the recording holds a JSON ping");
    for ping in pings {
        rt.send(ping["frame"].clone());
        assert_eq!(rt.next_frame().await, json!({"type": "pong"}), "a JSON ping gets a JSON pong");
    }
    let listed = app.get_json("/runtimes").await;
    assert_eq!(listed[0]["id"], "conformance-device");
    assert_eq!(listed[0]["online"], true);
    assert_eq!(listed[0]["version"], fixtures::RUNTIME_VERSION);
}

/// What the runtime did after a close with this fixture's code: (code,
/// reason, registered again, connected again).
fn recorded_close(name: &str) -> (u16, String, bool, bool) {
    let f = fixtures::fixture(name);
    let paths: Vec<&str> = f["requests"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    (
        f["close"]["code"].as_u64().unwrap() as u16,
        f["close"]["reason"].as_str().unwrap().to_owned(),
        paths.contains(&"/v1/environments/register"),
        f["reconnected"] == true,
    )
}

#[tokio::test]
async fn the_bridges_close_codes_make_the_runtime_do_what_the_recording_shows() {
    // A replaced socket: the runtime stops reconnecting (it would fight the new one).
    let (code, reason, _, reconnected) = recorded_close("replaced_1000");
    assert!(!reconnected, "the recording: no reconnect after {code} {reason:?}");
    let app = spawn_app().await;
    let mut old = app.runtime("dev-conf").await;
    let _new = app.runtime("dev-conf").await;
    assert_eq!(old.closed().await, Some((code, reason)));

    // An unknown connection id: the runtime registers again.
    let (code, _, registered, reconnected) = recorded_close("reregister_after_1008");
    assert!(registered && reconnected, "the recording: {code} makes the runtime register again");
    let url = app.ws_url("/ws/conn-unknown?deviceId=dev-x");
    let mut stale = FakeRuntime::connect(&url, Some(RUNTIME_TOKEN)).await.unwrap();
    assert_eq!(stale.closed().await.map(|(c, _)| c), Some(code));

    // Shutdown: the runtime reconnects at once, without registering again.
    let (code, reason, registered, reconnected) = recorded_close("reconnect_after_1001");
    assert!(reconnected && !registered, "the recording: {code} makes the runtime reconnect");
    let mut rt = app.runtime("dev-other").await;
    app.shutdown.cancel();
    assert_eq!(rt.closed().await, Some((code, reason)));
}
