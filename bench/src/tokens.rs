//! The bearer tokens of a spawned bridge (the instances of one cluster share
//! them), drawn from the kernel's random source.

use std::io::Read;

/// The bearer tokens of a bridge.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub runtime: String,
    pub client: String,
    pub admin: String,
}

impl Tokens {
    /// Fresh random tokens.
    pub fn generate() -> anyhow::Result<Self> {
        Ok(Self { runtime: token()?, client: token()?, admin: token()? })
    }
}

/// 32 hex characters from the kernel's random source.
fn token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
