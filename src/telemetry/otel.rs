//! OpenTelemetry traces, on when the standard `OTEL_*` variables ask for
//! them ([`wanted`]): the `tracing` spans [`TRACED`] names become OTLP spans
//! (tracing-opentelemetry), batched in a bounded queue and posted over
//! HTTP + protobuf ([`super::otlp`]); W3C `traceparent` in and out.
//! Unset, nothing here runs: no layer, no exporter, no thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Status, TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tracing::Metadata;
use tracing::Span;
use tracing::subscriber::Interest;
use tracing::subscriber::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use super::otlp::HyperClient;

/// The spans a trace holds; any other span (a runtime's socket task, a
/// client socket) and every log line stay out of it.
pub const TRACED: &[&str] = &["http", "dispatch", "forward", "forwarded", "turn", "turn.follow", "webhook.delivery"];

/// The exporting layer's filter: [`TRACED`] spans of this crate, decided
/// once per callsite (a `filter_fn` is asked at every event, and turned
/// every disabled `debug!` into a dynamic check).
struct Traced;

impl Traced {
    fn traced(meta: &Metadata<'_>) -> bool {
        meta.is_span() && meta.target().starts_with("letta_bridge") && TRACED.contains(&meta.name())
    }
}

impl<S> Filter<S> for Traced {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::traced(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if Self::traced(meta) { Interest::always() } else { Interest::never() }
    }
}

/// `service.name` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` names one.
const SERVICE_NAME: &str = "letta-bridge";

/// The exporter's wait for one POST when `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` is unset (the spec's default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

static ON: AtomicBool = AtomicBool::new(false);

/// True once [`start`] built an exporter.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Whether the variables ask for traces: an OTLP endpoint is set
/// (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`),
/// the SDK is not disabled (`OTEL_SDK_DISABLED=true`) and the traces
/// exporter is not `none` (`OTEL_TRACES_EXPORTER`).
pub fn wanted(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let endpoint = set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let none = var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    endpoint && !disabled && !none
}

/// The exporter's provider, flushed at shutdown (none with traces off).
#[derive(Default)]
pub struct Traces {
    provider: Option<SdkTracerProvider>,
}

impl Traces {
    /// Exports the spans still queued, waiting at most `wait` (a collector
    /// that does not answer does not hold the shutdown longer).
    pub async fn shutdown(self, wait: Duration) {
        let Some(provider) = self.provider else { return };
        // Blocking: the batch thread exports through this runtime's tasks.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(wait));
        match tokio::time::timeout(wait + Duration::from_millis(100), flushed).await {
            Ok(Ok(Ok(()))) => tracing::debug!("traces flushed"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "traces not flushed at shutdown"),
            _ => tracing::warn!(?wait, "traces not flushed at shutdown in time"),
        }
    }
}

/// The layer that exports [`TRACED`] spans, when [`wanted`]; call within
/// the tokio runtime (exports run on it).
pub fn start<S>(instance: Option<&str>) -> Option<(impl Layer<S>, Traces)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let var = |name: &str| std::env::var(name).ok();
    if !wanted(var) {
        return None;
    }
    let provider = match provider(instance) {
        Ok(provider) => provider,
        Err(e) => {
            eprintln!("letta-bridge: traces are off: {e}");
            return None;
        }
    };
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("letta-bridge"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(Traced);
    ON.store(true, Ordering::Relaxed);
    Some((layer, Traces { provider: Some(provider) }))
}

/// The provider: the resource, the bounded batch processor (its queue
/// `OTEL_BSP_MAX_QUEUE_SIZE`, default 2048: spans beyond it are dropped),
/// the sampler of `OTEL_TRACES_SAMPLER`, the OTLP/HTTP exporter.
fn provider(instance: Option<&str>) -> Result<SdkTracerProvider, String> {
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_default();
    if !protocol.is_empty() && protocol != "http/protobuf" {
        eprintln!("letta-bridge: traces are sent as OTLP http/protobuf only, not {protocol}");
    }
    let timeout = ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.trim().parse::<u64>().ok())
        .map_or(EXPORT_TIMEOUT, Duration::from_millis);
    let client = HyperClient::new(tokio::runtime::Handle::current(), timeout);
    // The endpoint and `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` are read by the builder.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(client)
        .build()
        .map_err(|e| e.to_string())?;
    let processor = BatchSpanProcessor::builder(exporter).build();
    Ok(SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource(instance)).build())
}

/// `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (read by the SDK),
/// with `service.name` defaulting to `letta-bridge` and
/// `service.instance.id` to the node id.
fn resource(instance: Option<&str>) -> Resource {
    let attributes = std::env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    let names = |key: &str| attributes.split(',').any(|kv| kv.split('=').next().is_some_and(|k| k.trim() == key));
    let mut resource = Resource::builder().with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() && !names("service.name") {
        resource = resource.with_service_name(SERVICE_NAME);
    }
    if let Some(id) = instance.filter(|_| !names("service.instance.id")) {
        resource = resource.with_attribute(KeyValue::new("service.instance.id", id.to_owned()));
    }
    resource.build()
}

/// One header, as the propagator reads it.
struct Traceparent<'a>(&'a str);

impl Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// `span`'s parent: the span a `traceparent` names, when it is valid.
pub fn continue_trace(span: &Span, traceparent: &str) {
    let parent = TraceContextPropagator::new().extract(&Traceparent(traceparent));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// `span`'s parent in the trace: `parent`, by its ids only.
pub fn adopt(span: &Span, parent: &Span) {
    let _ = span.set_parent(parent.context());
}

/// The request `span`'s name and route.
pub fn routed(span: &Span, method: &str, route: &str) {
    let context = span.context();
    let otel = context.span();
    otel.update_name(format!("{method} {route}"));
    otel.set_attribute(KeyValue::new("route", route.to_owned()));
}

/// The request `span`'s status; an error from `500` on.
pub fn answered(span: &Span, status: u16) {
    let context = span.context();
    let otel = context.span();
    otel.set_attribute(KeyValue::new("status", i64::from(status)));
    if status >= 500 {
        otel.set_status(Status::error(format!("HTTP {status}")));
    }
}

/// `span`'s W3C `traceparent` (version `00`).
pub fn traceparent(span: &Span) -> Option<String> {
    let context = span.context();
    let span = context.span();
    let ids = span.span_context();
    ids.is_valid().then(|| format!("00-{}-{}-{:02x}", ids.trace_id(), ids.span_id(), ids.trace_flags().to_u8()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(set: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| set.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn traces_are_on_only_with_an_endpoint_and_neither_disabled_nor_exported_to_none() {
        assert!(!wanted(vars(&[])), "off by default");
        assert!(wanted(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")])));
        assert!(wanted(vars(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")])));
        assert!(!wanted(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        assert!(!wanted(vars(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")])));
        assert!(wanted(vars(&[endpoint, ("OTEL_SDK_DISABLED", "false")])));
        assert!(!wanted(vars(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])));
        assert!(wanted(vars(&[endpoint, ("OTEL_TRACES_EXPORTER", "otlp")])));
        assert!(!wanted(vars(&[("OTEL_SERVICE_NAME", "bridge")])), "naming the service alone exports nothing");
    }
}
