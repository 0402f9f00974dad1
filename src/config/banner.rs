//! What the binary prints to stdout once at start (never to the log): the
//! tokens generated here, and the command line that points a runtime at this
//! bridge — at LETTA_BRIDGE_PUBLIC_URL when it is set (a cluster's balancer).

use std::fmt::Write;
use std::net::SocketAddr;

use super::{Config, Tokens};

/// The runtime's API key in the printed command line when the shared runtime
/// token was set, not generated: a token from the settings is never printed,
/// and in the shell that exported it this expands to it.
const GIVEN_RUNTIME_TOKEN: &str = "$LETTA_BRIDGE_RUNTIME_TOKEN";

/// The runtime's API key in the printed command line when only the per-device
/// file grants runtimes: each runtime uses its own.
const DEVICE_TOKEN: &str = "<the device's token from LETTA_BRIDGE_RUNTIME_TOKENS_FILE>";

impl Config {
    /// The URL a runtime reaches this bridge at (its `LETTA_BASE_URL`):
    /// LETTA_BRIDGE_PUBLIC_URL in its http(s) form when set, else this
    /// listener's address `addr`.
    pub fn runtime_base_url(&self, addr: SocketAddr) -> String {
        let Some(url) = &self.public_url else {
            return format!("{}://{addr}", if self.tls_cert.is_some() { "https" } else { "http" });
        };
        let url = url.trim_end_matches('/');
        if let Some(rest) = url.strip_prefix("wss://") {
            format!("https://{rest}")
        } else if let Some(rest) = url.strip_prefix("ws://") {
            format!("http://{rest}")
        } else {
            url.to_owned()
        }
    }
}

/// The start-up banner: the tokens generated here (never any in cluster
/// mode), then the command line that starts a runtime against `base_url`.
pub fn banner(tokens: &Tokens, base_url: &str) -> String {
    let mut out = String::new();
    if !tokens.generated.is_empty() {
        out.push_str(
            "letta-bridge generated these tokens (set them in the environment to keep them across restarts):\n",
        );
        for (name, token) in &tokens.generated {
            let _ = writeln!(out, "  {name}={token}");
        }
    }
    let generated_runtime =
        tokens.generated.iter().find(|(name, _)| *name == "LETTA_BRIDGE_RUNTIME_TOKEN").map(|(_, token)| token);
    let key = match (generated_runtime, &tokens.runtime) {
        (Some(token), _) => token.as_str(),
        (None, Some(_)) => GIVEN_RUNTIME_TOKEN,
        (None, None) => DEVICE_TOKEN,
    };
    out.push_str("Point a runtime at this bridge with:\n");
    let _ = writeln!(
        out,
        "  LETTA_BASE_URL={base_url} IGNORE_SELF_HOSTED_LISTENER_ERROR=1 LETTA_API_KEY={key} letta remote --env-name local-dev --backend local"
    );
    out
}
