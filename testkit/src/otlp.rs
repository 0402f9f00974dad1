//! An OTLP/HTTP trace receiver for the traces tests: `POST /v1/traces`
//! with an `ExportTraceServiceRequest` in protobuf, each span kept with
//! the `service.instance.id` of its resource, awaited with a timeout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use prost::Message;
use tokio::sync::Notify;

/// One span as received.
#[derive(Debug, Clone)]
pub struct Span {
    /// `service.instance.id` of the span's resource (the node id in a cluster).
    pub instance: Option<String>,
    /// `service.name` of the span's resource.
    pub service: Option<String>,
    pub name: String,
    /// `server`, `client` or `internal` (OTLP's span kinds).
    pub kind: &'static str,
    /// Lowercase hex, as in a `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// String, integer and boolean attributes, as text.
    pub attributes: Vec<(String, String)>,
}

impl Span {
    /// The attribute `key`, as text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Received {
    spans: Mutex<Vec<Span>>,
    arrived: Notify,
}

/// The receiver, listening on loopback until dropped.
pub struct OtlpReceiver {
    received: Arc<Received>,
    /// `http://127.0.0.1:PORT`: the value of `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    _server: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let received = Arc::new(Received::default());
        let app = Router::new().route("/v1/traces", post(export)).with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { received, endpoint, _server: server }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.received.spans.lock().unwrap().clone()
    }

    /// Waits up to `wait` until `done` holds for the spans received;
    /// the spans then, or a panic naming `what` with what did arrive.
    pub async fn until(&self, what: &str, wait: Duration, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let waited = tokio::time::timeout(wait, async {
            loop {
                let arrived = self.received.arrived.notified();
                let spans = self.spans();
                if done(&spans) {
                    return spans;
                }
                arrived.await;
            }
        });
        match waited.await {
            Ok(spans) => spans,
            Err(_) => panic!("{what}: not within {wait:?}; received {:#?}", self.spans()),
        }
    }
}

impl OtlpReceiver {
    /// True when no span arrives within `quiet`.
    pub async fn quiet(&self, quiet: Duration) -> bool {
        let arrived = self.received.arrived.notified();
        self.spans().is_empty() && tokio::time::timeout(quiet, arrived).await.is_err()
    }
}

async fn export(State(received): State<Arc<Received>>, body: Bytes) -> axum::http::StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.map(|r| r.attributes).unwrap_or_default();
        let resource = text(&resource);
        let of = |key: &str| resource.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Span {
                    instance: of("service.instance.id"),
                    service: of("service.name"),
                    kind: match span.kind {
                        2 => "server",
                        3 => "client",
                        4 => "producer",
                        5 => "consumer",
                        _ => "internal",
                    },
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: text(&span.attributes),
                });
            }
        }
    }
    received.spans.lock().unwrap().extend(spans);
    received.arrived.notify_waiters();
    axum::http::StatusCode::OK
}

fn text(attributes: &[KeyValue]) -> Vec<(String, String)> {
    let value = |kv: &KeyValue| match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    };
    attributes.iter().filter_map(|kv| Some((kv.key.clone(), value(kv)?))).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
