//! The `letta-bridge` binary: settings, logging, run until SIGINT/SIGTERM
//! (SIGHUP re-reads LETTA_BRIDGE_RUNTIME_TOKENS_FILE when it is set).

use clap::Parser;
use letta_bridge::{Application, Config, config, shutdown, startup, telemetry};

/// mimalloc instead of glibc's malloc: the request path allocates often, and
/// glibc's malloc/free were ~31% of the instructions per command (callgrind).
/// Built with `no_thp`: otherwise mimalloc asks for transparent huge pages on
/// its 1 GiB arena (`MADV_HUGEPAGE`) and every touched 2 MiB of heap becomes
/// resident whole: 17.6 MB idle RSS instead of 10, 63 KB instead of 49 KB per
/// idle SSE subscriber (bench `memory`, docs/perf-history.md).
/// The `system-alloc` feature leaves the system allocator in place, for
/// DHAT and massif (they replace `malloc`, which mimalloc bypasses).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut config = Config::parse();
    // Chosen here, not when joining: the traces' `service.instance.id` is this id.
    if config.cluster_url.is_some() && config.node_id.is_none() {
        config.node_id = Some(config::random_node_id());
    }
    let instance = config.node_id.as_deref().filter(|_| config.cluster_url.is_some());
    let traces = telemetry::init(config.log_format, instance);
    raise_open_file_limit();
    let app = match Application::build(config.clone()).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("letta-bridge: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    release_startup_memory();
    // Once, to stdout and never to the log: the generated tokens, and how to
    // start a runtime (against LETTA_BRIDGE_PUBLIC_URL when set).
    print!("{}", config::banner(app.tokens(), &config.runtime_base_url(app.local_addr())));
    let stop = app.shutdown_token();
    let device_tokens = app.device_tokens();
    let signals = shutdown::Signals::install(device_tokens.is_some());
    tokio::spawn(async move {
        signals
            .recv(|| {
                if let Some(tokens) = &device_tokens {
                    startup::reload_device_tokens(tokens);
                }
            })
            .await;
        stop.cancel();
    });
    let stopped = app.run_until_stopped().await;
    // The spans of the drain too, within a bounded wait.
    traces.shutdown(TRACES_FLUSH).await;
    match stopped {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("letta-bridge: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Longest the spans still queued at shutdown may take to export, after
/// the drain (docs/operations.md, "Traces"): a collector that does not
/// answer holds SIGTERM no longer than this.
const TRACES_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// Returns the heap that building the app used and freed (mostly the OpenAPI
/// document, ~2 MB) to the OS: mimalloc keeps freed pages resident until
/// asked. Idle RSS 10.5 -> 8.4 MB (bench `memory`, docs/perf-history.md).
fn release_startup_memory() {
    // SAFETY: `mi_collect` only walks mimalloc's own heaps; it is safe to
    // call at any time from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Raises the soft limit of open files to the hard one: every subscriber
/// holds a descriptor, and the connection limits derive from this one
/// (systemd and shells often start services at 1024 under a far higher
/// hard limit).
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max && {
            let wanted = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0
        }
    };
    if raised {
        tracing::debug!(from = limit.rlim_cur, to = limit.rlim_max, "raised the open-file limit");
    }
}
