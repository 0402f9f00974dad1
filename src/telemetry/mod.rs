//! Logging and traces: `tracing` to stderr, as text or JSON, filtered by
//! `RUST_LOG` (default `info`); and, when the `OTEL_*` variables ask for
//! them, the service's spans exported over OTLP/HTTP ([`otel`], cargo
//! feature `otel`). Tokens are never logged nor traced; request spans carry
//! the path and request id, not the query string.
//!
//! The spans a trace holds (docs/operations.md, "Traces") are opened where
//! their work is: the request (`http`), a command's trip (`dispatch`), its
//! hop to the instance holding the runtime (`forward`, continued there as
//! `forwarded`), a followed turn (`turn`) and a webhook attempt
//! (`webhook.delivery`). With traces off they are not opened at all
//! ([`traces_on`] is checked first) and no `traceparent` is read or written.

use std::io::IsTerminal;

use tracing::Span;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

#[cfg(feature = "otel")]
mod otel;
#[cfg(feature = "otel")]
mod otlp;

#[cfg(feature = "otel")]
pub use otel::Traces;

/// Without the `otel` feature: nothing to flush.
#[cfg(not(feature = "otel"))]
#[derive(Default)]
pub struct Traces;

#[cfg(not(feature = "otel"))]
impl Traces {
    /// Nothing to flush.
    pub async fn shutdown(self, _wait: std::time::Duration) {}
}

/// True when spans are exported (set once, at [`init`]): the only check a
/// span or a `traceparent` costs with traces off.
pub fn traces_on() -> bool {
    #[cfg(feature = "otel")]
    return otel::on();
    #[cfg(not(feature = "otel"))]
    false
}

/// Makes `span` continue the trace of a W3C `traceparent` header value
/// (ignored when malformed or when traces are off).
pub fn continue_trace(span: &Span, traceparent: &str) {
    #[cfg(feature = "otel")]
    if traces_on() {
        otel::continue_trace(span, traceparent);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, traceparent);
}

/// Makes `span` a child of `parent` in the trace without keeping `parent`
/// open (work that outlives the request that started it).
pub fn adopt(span: &Span, parent: &Span) {
    #[cfg(feature = "otel")]
    if traces_on() {
        otel::adopt(span, parent);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, parent);
}

/// The current request span in its trace, once routed: named `METHOD
/// route` (e.g. `POST /input`), with its `route`. Not a field of the span:
/// the log lines stay as they are.
pub fn routed(method: &str, route: &str) {
    #[cfg(feature = "otel")]
    if traces_on() {
        otel::routed(&Span::current(), method, route);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (method, route);
}

/// The current request span in its trace, answered `status` (an error from `500` on).
pub fn answered(status: u16) {
    #[cfg(feature = "otel")]
    if traces_on() {
        otel::answered(&Span::current(), status);
    }
    #[cfg(not(feature = "otel"))]
    let _ = status;
}

/// The W3C `traceparent` header value of `span`; `None` with traces off
/// or for a span not sampled into a trace.
pub fn traceparent(span: &Span) -> Option<String> {
    #[cfg(feature = "otel")]
    if traces_on() {
        return otel::traceparent(span);
    }
    let _ = span;
    None
}

/// Libraries whose `trace` lines carry whole WebSocket frames — commands
/// with their secrets (`secret_apply`), files, replies — are kept at
/// `debug` unless `RUST_LOG` names them: `RUST_LOG=trace` must not write
/// what a runtime and its clients send each other.
const QUIET_TARGETS: &[&str] = &["tungstenite", "tokio_tungstenite"];

/// `RUST_LOG` (default `info`) with [`QUIET_TARGETS`] held at `debug`
/// unless it names them.
pub fn filter_directives(rust_log: Option<&str>) -> String {
    let mut spec = rust_log.map(str::trim).filter(|s| !s.is_empty()).unwrap_or("info").to_owned();
    for target in QUIET_TARGETS {
        let named = spec.split(',').any(|d| d.split(['=', '[']).next().is_some_and(|t| t.trim() == *target));
        if !named {
            spec.push_str(&format!(",{target}=debug"));
        }
    }
    spec
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `info`),
/// and exports spans when the `OTEL_*` variables ask for it
/// (`instance`: this instance's node id in a cluster, its
/// `service.instance.id`). Flush the traces at shutdown.
pub fn init(format: LogFormat, instance: Option<&str>) -> Traces {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_new(filter_directives(rust_log.as_deref())).unwrap_or_else(|e| {
        eprintln!("letta-bridge: RUST_LOG is not a valid filter ({e}); logging at info");
        EnvFilter::new(filter_directives(None))
    });
    #[cfg(feature = "otel")]
    if let Some((layer, traces)) = otel::start(instance) {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .log_internal_errors(false)
            .with_ansi(std::io::stderr().is_terminal());
        let logs = match format {
            LogFormat::Text => logs.boxed(),
            LogFormat::Json => logs.json().flatten_event(true).boxed(),
        };
        // Each layer its own filter: `RUST_LOG` says what is logged, not
        // what is traced.
        let _ = tracing_subscriber::registry().with(logs.with_filter(filter)).with(layer).try_init();
        return traces;
    }
    #[cfg(not(feature = "otel"))]
    let _ = instance;
    // Traces off: the subscriber as it always was, one global filter.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log line that cannot be written is dropped. By default the
        // subscriber reports the failure with `eprintln!`, which panics when
        // stderr is a closed pipe — in whatever task was logging, e.g. the
        // signal handler, and then SIGTERM no longer stopped the bridge.
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
    Traces::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_frame_tracing_stays_off_unless_asked_for_by_name() {
        assert_eq!(filter_directives(None), "info,tungstenite=debug,tokio_tungstenite=debug");
        assert_eq!(filter_directives(Some("trace")), "trace,tungstenite=debug,tokio_tungstenite=debug");
        assert_eq!(
            filter_directives(Some("debug,tungstenite=trace")),
            "debug,tungstenite=trace,tokio_tungstenite=debug",
            "named: the operator asked for it"
        );
    }
}
