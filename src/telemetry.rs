//! Logging: `tracing` to stderr, as text or JSON, filtered by `RUST_LOG`
//! (default `info`). Tokens are never logged; request spans carry the path
//! and request id, not the query string.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

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

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `info`).
pub fn init(format: LogFormat) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_new(filter_directives(rust_log.as_deref())).unwrap_or_else(|e| {
        eprintln!("letta-bridge: RUST_LOG is not a valid filter ({e}); logging at info");
        EnvFilter::new(filter_directives(None))
    });
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
