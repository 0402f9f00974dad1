//! TLS: with a certificate and key configured, the one port serves HTTPS and
//! `wss://`. The certificate is made here, for `localhost`, with rcgen; the
//! fixture ([`spawn_tls_app`]) is shared with the HTTP/2 tests (http2.rs).

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

pub struct TlsApp {
    pub app: TestApp,
    /// Trusts the test certificate; offers no ALPN protocol (as the runtime's
    /// `ws` library and tokio-tungstenite do).
    client: ClientConfig,
    _dir: TempDir,
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn spawn_tls_app() -> TlsApp {
    spawn_tls_app_with(|_| {}).await
}

/// A TLS app with `tweak` applied to its config.
pub async fn spawn_tls_app_with(tweak: impl FnOnce(&mut letta_bridge::Config)) -> TlsApp {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("letta-bridge-tls-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let app = spawn_app_with(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
        tweak(c);
    })
    .await;
    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let client = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    TlsApp { app, client, _dir: TempDir(dir) }
}

fn uuid_like() -> String {
    format!("{}-{:?}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap())
        .replace(['.', ' '], "")
}

impl TlsApp {
    async fn tls(&self) -> TlsStream<TcpStream> {
        self.tls_offering(&[]).await
    }

    /// A TLS connection whose client offers these ALPN protocols (none: no
    /// ALPN extension); the server's pick is `stream.get_ref().1.alpn_protocol()`.
    pub async fn tls_offering(&self, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        let mut client = self.client.clone();
        client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = TcpStream::connect(self.app.addr).await.unwrap();
        let connector = TlsConnector::from(Arc::new(client));
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.expect("TLS handshake")
    }

    /// One HTTP/1.1 request over TLS; reads until `until` appears in what came back.
    async fn https(&self, head: &str, body: &str, until: &str) -> (TlsStream<TcpStream>, String) {
        let mut stream = self.tls().await;
        let port = self.app.addr.port();
        let request = format!("{head}\r\nHost: localhost:{port}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while !seen.contains(until) {
            let n = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("bytes in time").unwrap();
            assert!(n > 0, "connection closed before {until:?}: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        (stream, seen)
    }
}

#[tokio::test]
async fn a_runtime_connects_over_wss_and_registration_hands_out_wss_urls() {
    let t = spawn_tls_app().await;
    let body = json!({"deviceId": "dev-tls", "connectionName": "tls"}).to_string();
    let head = format!(
        "POST /v1/environments/register HTTP/1.1\r\nAuthorization: Bearer {RUNTIME_TOKEN}\r\nContent-Type: application/json\r\nConnection: close"
    );
    let (_, reply) = t.https(&head, &body, "}").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let json: Value = serde_json::from_str(&reply[reply.find('{').unwrap()..]).unwrap();
    let ws_url = json["wsUrl"].as_str().unwrap();
    assert!(ws_url.starts_with(&format!("wss://localhost:{}/ws/conn-", t.app.addr.port())), "{ws_url}");

    let mut request = format!("{ws_url}?deviceId=dev-tls").into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {RUNTIME_TOKEN}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::client_async(request, t.tls().await).await.expect("wss upgrade");
    socket.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    // The bridge pings first (it holds commands until the first pong); the JSON pong follows.
    let pong = loop {
        match tokio::time::timeout(WAIT, socket.next()).await.unwrap().unwrap().unwrap() {
            Message::Ping(_) => continue,
            other => break other,
        }
    };
    assert_eq!(pong.into_text().unwrap().as_str(), r#"{"type":"pong"}"#);
    let runtimes: Value = serde_json::from_str(&{
        let head = format!("GET /runtimes HTTP/1.1\r\nAuthorization: Bearer {CLIENT_TOKEN}\r\nConnection: close");
        let (_, reply) = t.https(&head, "", "]").await;
        reply[reply.find('[').unwrap()..].to_owned()
    })
    .unwrap();
    assert_eq!(runtimes[0]["online"], true);
}

#[tokio::test]
async fn an_sse_client_reads_events_over_https() {
    let t = spawn_tls_app().await;
    let (runtime, _) = {
        let mut request =
            format!("wss://localhost:{}/ws?deviceId=dev-tls", t.app.addr.port()).into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {RUNTIME_TOKEN}").parse().unwrap());
        tokio_tungstenite::client_async(request, t.tls().await).await.expect("wss upgrade")
    };
    let head = format!("GET /events?types=hello HTTP/1.1\r\nAuthorization: Bearer {CLIENT_TOKEN}");
    let (mut stream, seen) = t.https(&head, "", "retry: ").await;
    assert!(seen.contains("content-type: text/event-stream"), "{seen}");
    let mut runtime = runtime;
    runtime.send(Message::text(r#"{"type":"hello","n":1}"#)).await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("event: hello") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("event in time").unwrap();
        assert!(n > 0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains(r#""runtime_id":"dev-tls","type":"hello","n":1"#), "{seen}");
}

#[tokio::test]
async fn plain_http_is_not_served_on_a_tls_port() {
    let t = spawn_tls_app().await;
    let res = t.app.http.get(t.app.url("/healthz")).send().await;
    assert!(res.map(|r| !r.status().is_success()).unwrap_or(true), "plain HTTP must not be answered with a success");
}

#[test]
fn a_certificate_without_its_key_is_refused_at_start() {
    use clap::Parser;
    let err = letta_bridge::Config::try_parse_from(["letta-bridge", "--tls-cert", "/tmp/cert.pem"]).err().unwrap();
    assert!(err.to_string().contains("--tls-key"), "{err}");
}

#[tokio::test]
async fn the_connection_limit_holds_on_the_tls_listener_too() {
    let t = spawn_tls_app_with(|c| c.max_connections = Some(1)).await;
    let head = format!("GET /events HTTP/1.1\r\nAuthorization: Bearer {CLIENT_TOKEN}");
    let (_held, _) = t.https(&head, "", "retry: ").await;
    let (_, refused) =
        t.https(&format!("GET /status HTTP/1.1\r\nAuthorization: Bearer {CLIENT_TOKEN}"), "", "\r\n\r\n").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("connection: close"), "{refused}");
}
