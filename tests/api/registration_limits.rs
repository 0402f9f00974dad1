//! Registrations cannot fill the bridge: each field has a limit (`422`
//! naming the field), `GET /runtimes` answers a page at a time, and the
//! registry keeps a bounded number of devices without a socket.

use futures_util::StreamExt;
use letta_bridge::runtime::MAX_OFFLINE_DEVICES;
use letta_bridge_testkit::replay::registration_body;
use serde_json::{Value, json};

use crate::helpers::*;

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

impl TestApp {
    async fn register_body(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/environments/register"))
            .bearer_auth(RUNTIME_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Registers `devices` (ids only), a few at a time; all must succeed.
    async fn register_many(&self, devices: impl Iterator<Item = String>) {
        let statuses: Vec<u16> = futures_util::stream::iter(devices)
            .map(|d| async move { self.register_body(&json!({"deviceId": d})).await.status().as_u16() })
            .buffer_unordered(16)
            .collect()
            .await;
        assert!(statuses.iter().all(|s| *s == 200), "every registration succeeds");
    }
}

#[tokio::test]
async fn registration_fields_over_their_limits_are_422_naming_the_field() {
    let app = spawn_app().await;
    let with = |field: &str, value: Value| {
        let mut body = registration_body("dev-a", "dev-a-name");
        body[field] = value;
        body
    };
    let with_metadata = |key: &str, value: Value| {
        let mut body = registration_body("dev-a", "dev-a-name");
        body["metadata"][key] = value;
        body
    };
    let kib = |n: usize| "x".repeat(n * 1024);
    let cases = [
        (with("connectionName", json!("n".repeat(257))), "connectionName"),
        (with("listenerInstanceId", json!("l".repeat(129))), "listenerInstanceId"),
        (with_metadata("os", json!(kib(300))), "metadata.os is longer than 1024 bytes"),
        (with_metadata("self_update", json!({"note": kib(2)})), "metadata.self_update.note is longer"),
        (with_metadata("supported_commands", json!(["input", kib(2)])), "metadata.supported_commands[1] is longer"),
        (with_metadata("extra", json!((0..20).map(|_| kib(1)).collect::<Vec<_>>())), "at most 16384 are accepted"),
    ];
    for (body, field) in cases {
        let problem = assert_problem(app.register_body(&body).await, 422).await;
        assert!(problem["detail"].as_str().unwrap().contains(field), "{field}: {problem}");
    }
    // The real runtime's registration fits, and nothing refused was kept.
    assert_eq!(app.register_body(&registration_body("dev-b", "dev-b-name")).await.status(), 200);
    assert_eq!(ids(&app.get_json("/runtimes").await), ["dev-b"]);
}

#[tokio::test]
async fn get_runtimes_answers_pages_by_id_with_a_link_to_the_next() {
    let app = spawn_app().await;
    app.register_many((0..=100).rev().map(|i| format!("dev-{i:03}"))).await;

    let res = app.get("/runtimes").await;
    assert_eq!(res.status(), 200);
    let link = res.headers()["link"].to_str().unwrap().to_owned();
    assert_eq!(link, r#"</runtimes?limit=100&after=dev-099>; rel="next""#);
    let first: Value = res.json().await.unwrap();
    assert_eq!(ids(&first), (0..100).map(|i| format!("dev-{i:03}")).collect::<Vec<_>>(), "100 by default, by id");
    let last = app.get("/runtimes?limit=100&after=dev-099").await;
    assert!(last.headers().get("link").is_none(), "no next page after the last");
    assert_eq!(ids(&last.json().await.unwrap()), ["dev-100"]);

    // Following the links with a smaller limit visits every runtime once.
    let (mut seen, mut next, mut pages) = (Vec::new(), Some("/runtimes?limit=40".to_owned()), 0);
    while let Some(url) = next.take() {
        let res = app.get(&url).await;
        next = res.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            l[1..l.find('>').unwrap()].to_owned()
        });
        seen.extend(ids(&res.json().await.unwrap()));
        pages += 1;
    }
    assert_eq!((pages, seen.len()), (3, 101));
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "sorted, none twice");

    // /status lists the first page and says where the rest is.
    let status = app.status().await;
    assert_eq!(status["runtimes"].as_array().unwrap().len(), 100);
    assert_eq!(status["runtimes_next"], "/runtimes?limit=100&after=dev-099");

    for bad in ["0", "1001", "ten", "-1"] {
        let problem = assert_problem(app.get(&format!("/runtimes?limit={bad}")).await, 400).await;
        assert!(problem["detail"].as_str().unwrap().contains("limit"), "{problem}");
    }
    assert_eq!(ids(&app.get_json("/runtimes?limit=1000").await).len(), 101);
}

#[tokio::test]
async fn the_registry_takes_no_new_device_beyond_its_bound_but_keeps_serving_known_ones() {
    let app = spawn_app().await;
    let _online = app.runtime("dev-online").await;
    app.register_many((1..MAX_OFFLINE_DEVICES).map(|i| format!("idle-{i}"))).await;
    assert_eq!(app.register_as(Some(RUNTIME_TOKEN), "dev-known").await.status(), 200, "the last place");

    let res = app.register_as(Some(RUNTIME_TOKEN), "dev-new").await;
    assert!(res.headers().contains_key("retry-after"), "the runtime retries registrations on 503");
    let problem = assert_problem(res, 503).await;
    assert!(problem["detail"].as_str().unwrap().contains(&MAX_OFFLINE_DEVICES.to_string()), "{problem}");
    let mut direct = FakeRuntime::connect(&app.ws_url("/ws?deviceId=dev-new"), Some(RUNTIME_TOKEN)).await.unwrap();
    let (code, _) = direct.closed().await.expect("a close frame");
    assert_eq!(code, 1013, "try again later");

    // Known devices register and connect as before.
    let _known = app.runtime("dev-known").await;
    assert_eq!(app.register_as(Some(RUNTIME_TOKEN), "idle-1").await.status(), 200);
    let page = app.get_json("/runtimes?after=dev-&limit=3").await;
    assert_eq!(ids(&page), ["dev-known", "dev-online", "idle-1"], "dev-new was not kept");
}
