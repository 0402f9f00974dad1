//! The tokens in force: given, or generated on a loopback bind (never in
//! cluster mode, where every instance must share them), and never
//! formatted.

use super::{Config, ConfigError, MIN_TOKEN_LEN};

/// The three roles' tokens after defaults were applied.
#[derive(Clone)]
pub struct Tokens {
    /// What every runtime may present (any device); `None` when only
    /// LETTA_BRIDGE_RUNTIME_TOKENS_FILE grants runtimes.
    pub runtime: Option<String>,
    /// What ordinary HTTP clients present.
    pub client: String,
    /// What privileged clients present; `None`: privileged commands are refused.
    pub admin: Option<String>,
    /// Which tokens were generated here (to print them once).
    pub generated: Vec<(&'static str, String)>,
}

impl Tokens {
    /// Each token in force with its setting's name (what a runtime tokens
    /// file may not reuse).
    pub fn named(&self) -> Vec<(&'static str, String)> {
        let all = [
            ("LETTA_BRIDGE_RUNTIME_TOKEN", self.runtime.as_ref()),
            ("LETTA_BRIDGE_CLIENT_TOKEN", Some(&self.client)),
            ("LETTA_BRIDGE_ADMIN_TOKEN", self.admin.as_ref()),
        ];
        all.into_iter().filter_map(|(name, token)| Some((name, token?.clone()))).collect()
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { <redacted> }")
    }
}

impl Config {
    /// Checks the settings and settles the tokens (generating missing ones on
    /// a loopback bind, outside cluster mode).
    pub fn tokens(&self) -> Result<Tokens, ConfigError> {
        for (name, token) in self.named_tokens() {
            if token.is_some_and(|t| t.trim().is_empty()) {
                return Err(ConfigError::EmptyToken(name));
            }
            if token.is_some_and(|t| t.len() < MIN_TOKEN_LEN) {
                tracing::warn!(setting = name, "token is shorter than {MIN_TOKEN_LEN} characters");
            }
        }
        let loopback = self.listen.ip().is_loopback();
        let runtimes_granted = self.runtime_token.is_some() || self.runtime_tokens_file.is_some();
        // Instances behind one balancer must accept the same tokens: tokens
        // generated per instance would each be refused by the others.
        if self.cluster_url.is_some() {
            let missing: Vec<&'static str> = [
                (!runtimes_granted, "LETTA_BRIDGE_RUNTIME_TOKEN (or LETTA_BRIDGE_RUNTIME_TOKENS_FILE)"),
                (self.client_token.is_none(), "LETTA_BRIDGE_CLIENT_TOKEN"),
                (self.admin_token.is_none(), "LETTA_BRIDGE_ADMIN_TOKEN"),
            ]
            .into_iter()
            .filter_map(|(missing, name)| missing.then_some(name))
            .collect();
            if !missing.is_empty() {
                return Err(ConfigError::ClusterTokensRequired(missing));
            }
        }
        if !loopback && (!runtimes_granted || self.client_token.is_none()) {
            return Err(ConfigError::TokensRequired(self.listen));
        }
        let mut generated = Vec::new();
        let mut settle = |name: &'static str, given: &Option<String>| -> String {
            given.clone().unwrap_or_else(|| {
                let token = generate_token();
                generated.push((name, token.clone()));
                token
            })
        };
        // With the per-device file and no shared token, none is generated:
        // every runtime then presents its device's token.
        let runtime = match (&self.runtime_token, &self.runtime_tokens_file) {
            (None, Some(_)) => None,
            (given, _) => Some(settle("LETTA_BRIDGE_RUNTIME_TOKEN", given)),
        };
        let client = settle("LETTA_BRIDGE_CLIENT_TOKEN", &self.client_token);
        let admin = match (&self.admin_token, loopback) {
            (Some(t), _) => Some(t.clone()),
            (None, true) => Some(settle("LETTA_BRIDGE_ADMIN_TOKEN", &None)),
            (None, false) => None,
        };
        let pairs = [
            ("LETTA_BRIDGE_RUNTIME_TOKEN", runtime.as_ref(), "LETTA_BRIDGE_CLIENT_TOKEN", Some(&client)),
            ("LETTA_BRIDGE_RUNTIME_TOKEN", runtime.as_ref(), "LETTA_BRIDGE_ADMIN_TOKEN", admin.as_ref()),
            ("LETTA_BRIDGE_CLIENT_TOKEN", Some(&client), "LETTA_BRIDGE_ADMIN_TOKEN", admin.as_ref()),
        ];
        for (a_name, a, b_name, b) in pairs {
            if a.is_some() && a == b {
                return Err(ConfigError::SameTokens(a_name, b_name));
            }
        }
        Ok(Tokens { runtime, client, admin, generated })
    }

    fn named_tokens(&self) -> [(&'static str, Option<&String>); 3] {
        [
            ("LETTA_BRIDGE_RUNTIME_TOKEN", self.runtime_token.as_ref()),
            ("LETTA_BRIDGE_CLIENT_TOKEN", self.client_token.as_ref()),
            ("LETTA_BRIDGE_ADMIN_TOKEN", self.admin_token.as_ref()),
        ]
    }
}

/// 244 random bits from the OS generator: `lb_` and 64 hex characters.
fn generate_token() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("lb_{a}{b}")
}
