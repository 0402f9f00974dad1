//! The peer (issue 14): a bridge a user would write by hand, by default the
//! Node one in `bench/peers/node-bridge/`, that `--peer` measures next to the
//! bridge in the same run. Owns how the peer is started (which program, how
//! each side takes its port and tokens) and why the peer has no figure for
//! some scenarios.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::options::Args;
use crate::scenario::Scenario;
use crate::side::Side;
use crate::tokens::Tokens;

/// How to start the peer.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The script (run by `node`) or executable.
    pub path: PathBuf,
    /// The interpreter in front of `path`, for a `.mjs`/`.js` script.
    pub interpreter: Option<PathBuf>,
}

impl Peer {
    /// The peer named by `--peer` (and `--peer-node`), checked to be startable.
    pub fn from_args(args: &Args) -> anyhow::Result<Option<Peer>> {
        let Some(path) = &args.peer else { return Ok(None) };
        let script = matches!(path.extension().and_then(|e| e.to_str()), Some("mjs" | "js" | "cjs"));
        if !path.exists() {
            bail!("--peer {}: no such file", path.display());
        }
        if script {
            let dir = path.parent().unwrap_or(Path::new("."));
            if dir.join("package.json").exists() && !dir.join("node_modules").exists() {
                bail!("the peer's packages are not installed: npm ci --prefix {}", dir.display());
            }
        }
        Ok(Some(Peer { path: path.clone(), interpreter: script.then(|| args.peer_node.clone()) }))
    }

    /// The program and its arguments before `path`.
    pub fn wrapper(&self) -> Vec<OsString> {
        self.interpreter.iter().map(|p| p.clone().into_os_string()).collect()
    }

    /// What the report says the peer was: interpreter version, script, `ws` version.
    pub fn describe(&self) -> String {
        let interpreter = self.interpreter.as_ref().map(|node| {
            let v = std::process::Command::new(node)
                .arg("--version")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_else(|| "unknown version".into());
            format!("{} {v}, ", node.display())
        });
        let ws = self.path.parent().map(|d| d.join("node_modules/ws/package.json")).and_then(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            Some(format!(", ws {}", v["version"].as_str()?))
        });
        format!(
            "{}{}{} (spawned per case)",
            interpreter.unwrap_or_default(),
            self.path.display(),
            ws.unwrap_or_default()
        )
    }
}

/// The environment a spawned `side` takes its address and tokens from: the
/// bridge's settings, or the peer's (the names of Letta's snippet, which
/// calls the runtime token `REMOTE_TOKEN`).
pub fn env(side: Side, addr: &str, tokens: &Tokens) -> Vec<(&'static str, String)> {
    match side {
        Side::Ours => vec![
            ("LETTA_BRIDGE_LISTEN", addr.to_owned()),
            ("LETTA_BRIDGE_RUNTIME_TOKEN", tokens.runtime.clone()),
            ("LETTA_BRIDGE_CLIENT_TOKEN", tokens.client.clone()),
            ("LETTA_BRIDGE_ADMIN_TOKEN", tokens.admin.clone()),
        ],
        Side::Peer => {
            let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "8284"));
            vec![
                ("HOST", host.to_owned()),
                ("PORT", port.to_owned()),
                ("REMOTE_TOKEN", tokens.runtime.clone()),
                ("CLIENT_TOKEN", tokens.client.clone()),
            ]
        }
    }
}

/// Why the peer has no figures for `scenario`, if it has none.
pub fn cannot(scenario: Scenario) -> Option<&'static str> {
    match scenario {
        Scenario::Hop | Scenario::Relay => Some("a baseline (raw tokio-tungstenite), measured once for both"),
        Scenario::Instructions => Some(
            "not measured: callgrind counts of V8's JIT-compiled code depend on when tiering and GC happen, and node runs ~50x slower under valgrind",
        ),
        s if s.is_cluster() => Some("no cluster mode: one process with its state in memory"),
        _ => None,
    }
}

/// Figures of a scenario the peer runs that it still cannot produce, and why.
pub const MISSING_FIGURES: [(&str, &str); 3] = [
    ("release binary size", "a script run by node; node's binary is not the peer's size"),
    ("raw relay idle RSS", "a baseline, measured once for both"),
    ("raw relay per idle receiver", "a baseline, measured once for both"),
];
