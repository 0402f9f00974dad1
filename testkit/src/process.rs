//! Child processes that cannot outlive the test: each runs in a process group
//! of its own under a tiny `sh` guard that kills it when the test process's
//! end of its stdin closes (a test that panics, or is killed, included).
//! [`Guarded::stop`] closes that stdin (the guard sends SIGTERM and reaps the
//! process), then SIGKILLs the group after a bound; `Drop` stops it too.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a stopped process may take to exit before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs `"$@"` in the background, waits for stdin to close, then terminates
/// it (SIGKILL 10 s after SIGTERM if it is still there) and waits for it, so
/// it is reaped here and never left a zombie. The escalation matters when the
/// test process died: then nothing reads the child's stderr either, and a
/// process that cannot log may not stop on SIGTERM (seen with the bridge).
const GUARD: &str = r#""$@" & pid=$!; read _ignored; kill -TERM "$pid" 2> /dev/null; (sleep 10; kill -KILL "$pid" 2> /dev/null) & wait "$pid""#;

pub struct Guarded {
    child: Child,
    /// The process group id (the guard shell's pid).
    pgid: u32,
    stopped: bool,
}

impl Guarded {
    /// Builds the guarded command for `program args…`; set env, cwd and
    /// stdout/stderr on it, then pass it to [`Guarded::spawn`].
    pub fn command(program: impl AsRef<OsStr>, args: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(GUARD).arg("sh").arg(program).args(args);
        cmd
    }

    pub fn spawn(mut cmd: Command) -> std::io::Result<Self> {
        let child = cmd.stdin(Stdio::piped()).process_group(0).spawn()?;
        let pgid = child.id();
        Ok(Self { child, pgid, stopped: false })
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// True while any process of the group is alive.
    pub fn alive(&self) -> bool {
        signal_group("-0", self.pgid)
    }

    /// Sends `signal` (e.g. `-KILL`, `-STOP`, `-CONT`) to the whole group.
    pub fn signal(&self, signal: &str) -> bool {
        signal_group(signal, self.pgid)
    }

    /// Kills the group at once (SIGKILL, no shutdown) and reaps it.
    pub fn kill(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        signal_group("-KILL", self.pgid);
        let _ = self.child.wait();
    }

    /// Stops the process: closing the guard's stdin makes it SIGTERM the
    /// process and reap it; past [`STOP_GRACE`] the whole group gets SIGKILL.
    /// Returns once the group is gone.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        drop(self.child.stdin.take());
        let deadline = Instant::now() + STOP_GRACE;
        // Another process's exit is not an event we can await here: poll, bounded.
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.alive() {
            // Past the grace, or grandchildren left behind.
            signal_group("-KILL", self.pgid);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_group(signal: &str, pgid: u32) -> bool {
    Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
