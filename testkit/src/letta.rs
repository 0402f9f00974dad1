//! The real Letta Code runtime as a child process: finds its launcher, runs
//! `letta remote --env-name <name> --backend local` with the environment the
//! README gives users, and stops it (always, also on `Drop`: a runtime left
//! alive keeps reconnecting to whatever listens on that port).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::process::Guarded;

/// The pinned runtime version `.ci/letta-runtime` installs.
pub const LETTA_CODE_VERSION: &str = "0.32.18";

/// What to run when the launcher is missing.
pub const INSTALL_HINT: &str =
    "install the runtime with `.ci/letta-runtime` (it prints the launcher's path; export it as LETTA_CODE_BIN)";

/// The launcher: `$LETTA_CODE_BIN`, else the one `.ci/letta-runtime`
/// installs under `.ci/cache`. `None` when it does not exist.
pub fn launcher() -> Option<PathBuf> {
    let path = launcher_path();
    path.is_file().then_some(path)
}

/// Where the launcher is looked for.
pub fn launcher_path() -> PathBuf {
    match std::env::var_os("LETTA_CODE_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(format!(".ci/cache/letta-code-{LETTA_CODE_VERSION}/bin/letta")),
    }
}

/// The repository's root folder (the kit is `testkit/` in it).
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The launcher, or `None` after printing why the test is skipped. Under CI
/// (env `CI` set) a missing runtime fails the test instead: it must never
/// pass silently there.
pub fn launcher_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(path) = launcher() {
        return Some(path);
    }
    let at = launcher_path();
    if std::env::var_os("CI").is_some() {
        panic!("{test}: no Letta Code runtime at {} and CI is set: {INSTALL_HINT}", at.display());
    }
    eprintln!("SKIPPED: {test}: no Letta Code runtime at {}; {INSTALL_HINT}", at.display());
    None
}

/// A fresh directory under the system temp dir, for a throwaway `HOME` and logs.
pub fn temp_dir(label: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("letta-live-{}-{label}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// How to start the runtime.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    pub launcher: PathBuf,
    /// `--env-name` (the `connectionName` the bridge shows).
    pub env_name: String,
    /// `LETTA_BASE_URL`: the bridge, `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// `LETTA_API_KEY`: the bridge's runtime token.
    pub api_key: String,
    /// `LMSTUDIO_BASE_URL`, the model server (`http://127.0.0.1:<port>/v1`).
    pub model_base_url: Option<String>,
    /// The throwaway `HOME`, also the working directory. Reuse it to restart
    /// the same device (the runtime keeps its `deviceId` under `~/.letta`).
    pub home: PathBuf,
    /// Log every frame (`--debug`).
    pub debug: bool,
    /// More environment, e.g. `NODE_OPTIONS`.
    pub extra_env: Vec<(String, String)>,
}

impl RuntimeOptions {
    pub fn new(launcher: PathBuf, base_url: String, api_key: String, home: PathBuf) -> Self {
        Self {
            launcher,
            env_name: "live-test".into(),
            base_url,
            api_key,
            model_base_url: None,
            home,
            debug: true,
            extra_env: Vec::new(),
        }
    }
}

/// A running `letta remote`; stopped on `Drop`.
pub struct LettaRuntime {
    process: Guarded,
    /// stdout and stderr of the runtime.
    pub log_path: PathBuf,
}

impl LettaRuntime {
    /// Starts `letta remote --env-name <name> --backend local [--debug]`.
    /// Each start appends to `<home>/../runtime.log`.
    pub fn start(opts: &RuntimeOptions) -> Self {
        std::fs::create_dir_all(&opts.home).expect("runtime HOME");
        let log_path = opts.home.with_extension("log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("runtime log file");
        let mut args = vec!["remote", "--env-name", opts.env_name.as_str(), "--backend", "local"];
        if opts.debug {
            args.push("--debug");
        }
        let mut cmd = Guarded::command(&opts.launcher, &args);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("LETTA_") || key.starts_with("LMSTUDIO_") || key == "NODE_OPTIONS" {
                cmd.env_remove(&*key);
            }
        }
        cmd.current_dir(&opts.home)
            .env("HOME", &opts.home)
            .env("LETTA_BASE_URL", &opts.base_url)
            .env("IGNORE_SELF_HOSTED_LISTENER_ERROR", "1")
            .env("LETTA_API_KEY", &opts.api_key)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(url) = &opts.model_base_url {
            cmd.env("LMSTUDIO_BASE_URL", url);
        }
        for (key, value) in &opts.extra_env {
            cmd.env(key, value);
        }
        let process = Guarded::spawn(cmd).expect("the runtime launcher starts");
        Self { process, log_path }
    }

    /// True while the runtime's process group is alive.
    pub fn alive(&self) -> bool {
        self.process.alive()
    }

    /// SIGTERM, then SIGKILL after a bound; returns when it is gone.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// What the runtime printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for LettaRuntime {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- runtime log ({}), last lines:\n{}", self.log_path.display(), tail(&self.log(), 60));
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `git` must be on `PATH` (the runtime runs `git init` for agents' memory).
pub fn git_available() -> bool {
    Command::new("git").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}
