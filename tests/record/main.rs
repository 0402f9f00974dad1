//! Re-records the conformance fixtures from the real Letta Code runtime.
//!
//! The recorder plays the server side itself (no bridge): it answers health,
//! registration, the WebSocket and runtime-status, runs `letta remote
//! --backend local` against it with a scripted model server, sends each
//! command of the protocol and writes what the runtime sent back, normalised,
//! to `tests/fixtures/letta-code-<version>/`. Ignored by `cargo test`: run
//! `tests/fixtures/record.sh` (it installs the runtime first).

use letta_bridge_testkit::letta;

mod normalise;
mod plan;
mod recorder;
mod recording;
mod script;
mod server;
mod session;
mod write;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real runtime; run tests/fixtures/record.sh"]
async fn record_fixtures_from_the_real_runtime() {
    let launcher = letta::launcher().unwrap_or_else(|| panic!("no runtime launcher: {}", letta::INSTALL_HINT));
    let recording = script::run(launcher.clone()).await;
    let package = std::fs::canonicalize(&launcher).ok().and_then(|l| Some(l.parent()?.parent()?.join("package")));
    let dir = write::fixtures(&recording, package.as_deref());
    eprintln!("fixtures written to {}", dir.display());
    // The runtime's throwaway HOME and log (kept when the recording fails).
    if let Some(tmp) = recording.home.parent() {
        let _ = std::fs::remove_dir_all(tmp);
    }
}
