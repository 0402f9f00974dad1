//! Per-device runtime tokens (`LETTA_BRIDGE_RUNTIME_TOKENS_FILE`): which
//! devices each token may register and connect as, read from a file and
//! re-read on demand (SIGHUP), so that one person's runtime cannot take over
//! another's device.
//!
//! The file has one token a line, `<token> <deviceId>[,<deviceId>…]`, or
//! `<token> *` for any device; blank lines and lines starting with `#` are
//! ignored. A bad file is refused whole, with the line number of the first
//! problem: at start the process does not start; on a reload the tokens in
//! force stay. Neither an error nor a log line ever carries a token.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Shortest token the file may hold.
pub const MIN_FILE_TOKEN_LEN: usize = 16;

/// Largest tokens file read, in bytes (a file of a few thousand lines).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// What a runtime token lets its holder be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeGrant {
    /// Any device: the shared `LETTA_BRIDGE_RUNTIME_TOKEN`, or a `*` line.
    AnyDevice,
    /// Only these devices (a line of the file).
    Devices(Arc<[Box<str>]>),
}

impl RuntimeGrant {
    /// True when the holder may register and connect as `device_id`.
    pub fn allows(&self, device_id: &str) -> bool {
        match self {
            Self::AnyDevice => true,
            Self::Devices(ids) => ids.iter().any(|id| **id == *device_id),
        }
    }
}

/// 1-128 characters of `[A-Za-z0-9._:-]`: what a `deviceId` may be.
pub fn valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// What is wrong with a tokens file. The messages name the file and the
/// line, never a token.
#[derive(Debug, thiserror::Error)]
pub enum TokensFileError {
    /// The file cannot be read.
    #[error("LETTA_BRIDGE_RUNTIME_TOKENS_FILE {path}: cannot read it: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("LETTA_BRIDGE_RUNTIME_TOKENS_FILE {path}: larger than {MAX_FILE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// A line is wrong.
    #[error("LETTA_BRIDGE_RUNTIME_TOKENS_FILE {path}, line {line}: {problem}")]
    Line {
        /// The file.
        path: String,
        /// 1-based.
        line: usize,
        /// What is wrong with it.
        problem: LineProblem,
    },
}

impl TokensFileError {
    /// The 1-based line of the problem, when it is one line's.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Line { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// What is wrong with one line of a tokens file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    /// Not two fields.
    #[error("expected `<token> <deviceId>[,<deviceId>…]` or `<token> *` (two fields separated by spaces)")]
    Malformed,
    /// A token under [`MIN_FILE_TOKEN_LEN`] characters.
    #[error("the token is shorter than {MIN_FILE_TOKEN_LEN} characters")]
    Short,
    /// The same token on two lines.
    #[error("the same token as line {0}")]
    Duplicate(usize),
    /// A token that is also another role's token.
    #[error("the token is {0}'s; each token grants one role")]
    Reserved(&'static str),
    /// A device list entry that is not a device id.
    #[error("{0:?} is not a deviceId (1-128 characters of [A-Za-z0-9._:-]) nor `*`")]
    BadDevice(String),
    /// `*` together with device ids.
    #[error("`*` (any device) stands alone, without device ids")]
    StarWithDevices,
}

/// The tokens of one reading of the file.
struct TokenSet {
    entries: Vec<(Box<str>, RuntimeGrant)>,
}

impl TokenSet {
    /// Parses `text`; `reserved` are the other roles' tokens, with their
    /// settings' names, which no line may reuse.
    fn parse(text: &str, reserved: &[(&'static str, &str)]) -> Result<Self, (usize, LineProblem)> {
        let mut entries: Vec<(Box<str>, RuntimeGrant)> = Vec::new();
        let mut lines_of: Vec<usize> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let number = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(token), Some(devices), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err((number, LineProblem::Malformed));
            };
            if token.chars().count() < MIN_FILE_TOKEN_LEN {
                return Err((number, LineProblem::Short));
            }
            if let Some(&(name, _)) = reserved.iter().find(|(_, t)| ct_eq(token, t)) {
                return Err((number, LineProblem::Reserved(name)));
            }
            if let Some(at) = entries.iter().position(|(t, _)| ct_eq(token, t)) {
                return Err((number, LineProblem::Duplicate(lines_of[at])));
            }
            entries.push((token.into(), parse_devices(devices).map_err(|p| (number, p))?));
            lines_of.push(number);
        }
        Ok(Self { entries })
    }

    /// The grant of `presented`: every entry is compared, and which one
    /// matched is selected without a branch, so that timing tells neither
    /// whether nor where a token is in the file.
    fn grant(&self, presented: &str) -> Option<RuntimeGrant> {
        let mut found = u32::MAX;
        for (i, (token, _)) in self.entries.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            found.conditional_assign(&i, presented.as_bytes().ct_eq(token.as_bytes()));
        }
        self.entries.get(found as usize).map(|(_, grant)| grant.clone())
    }

    fn devices(&self) -> usize {
        self.entries.iter().map(|(_, g)| if let RuntimeGrant::Devices(d) = g { d.len() } else { 0 }).sum()
    }
}

fn parse_devices(field: &str) -> Result<RuntimeGrant, LineProblem> {
    if field == "*" {
        return Ok(RuntimeGrant::AnyDevice);
    }
    let mut ids: Vec<Box<str>> = Vec::new();
    for id in field.split(',') {
        if id == "*" {
            return Err(LineProblem::StarWithDevices);
        }
        if !valid_device_id(id) {
            return Err(LineProblem::BadDevice(id.to_owned()));
        }
        if !ids.iter().any(|known| **known == *id) {
            ids.push(id.into());
        }
    }
    Ok(RuntimeGrant::Devices(ids.into()))
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The runtime tokens of `LETTA_BRIDGE_RUNTIME_TOKENS_FILE`, re-read by
/// [`DeviceTokens::reload`]. Cheap to clone: every clone sees reloads.
#[derive(Clone)]
pub struct DeviceTokens {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The client and admin tokens (and the shared runtime token), which no
    /// line may reuse.
    reserved: Vec<(&'static str, String)>,
    /// The set in force. A `std` lock around an `Arc`: readers clone the
    /// `Arc` and let go at once (never across `.await`); a reload swaps it.
    current: RwLock<Arc<TokenSet>>,
    /// Counts the reloads, so that the sockets of runtimes can check again
    /// whether their token still grants their device.
    reloads: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for DeviceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceTokens {{ path: {:?}, <redacted> }}", self.inner.path)
    }
}

/// What a (re)load read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Tokens in the file.
    pub tokens: usize,
    /// Device ids named (over all tokens; `*` lines name none).
    pub devices: usize,
}

impl DeviceTokens {
    /// Reads `path`; `reserved` are the other tokens in force (setting name,
    /// token), which the file may not reuse.
    pub fn load(path: &Path, reserved: Vec<(&'static str, String)>) -> Result<Self, TokensFileError> {
        let set = read(path, &reserved)?;
        let (reloads, _) = tokio::sync::watch::channel(0);
        let inner = Inner { path: path.to_owned(), reserved, current: RwLock::new(Arc::new(set)), reloads };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Reads the file again. On success its tokens replace the ones in
    /// force; on an error the ones in force stay.
    pub fn reload(&self) -> Result<Loaded, TokensFileError> {
        let set = read(&self.inner.path, &self.inner.reserved)?;
        let loaded = Loaded { tokens: set.entries.len(), devices: set.devices() };
        *self.inner.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        self.inner.reloads.send_modify(|n| *n += 1);
        Ok(loaded)
    }

    /// Changes after each successful reload.
    pub fn reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.reloads.subscribe()
    }

    /// What the tokens in force are.
    pub fn loaded(&self) -> Loaded {
        let set = self.current();
        Loaded { tokens: set.entries.len(), devices: set.devices() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The grant of `presented`, if it is a token of the file.
    pub fn grant(&self, presented: &str) -> Option<RuntimeGrant> {
        self.current().grant(presented)
    }

    fn current(&self) -> Arc<TokenSet> {
        self.inner.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn read(path: &Path, reserved: &[(&'static str, String)]) -> Result<TokenSet, TokensFileError> {
    let name = || path.display().to_string();
    let size = std::fs::metadata(path).map_err(|source| TokensFileError::Read { path: name(), source })?.len();
    if size > MAX_FILE_BYTES {
        return Err(TokensFileError::TooLarge { path: name() });
    }
    let text = std::fs::read_to_string(path).map_err(|source| TokensFileError::Read { path: name(), source })?;
    let reserved: Vec<(&'static str, &str)> = reserved.iter().map(|(n, t)| (*n, t.as_str())).collect();
    TokenSet::parse(&text, &reserved).map_err(|(line, problem)| TokensFileError::Line { path: name(), line, problem })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "token-a-0123456789";
    const B: &str = "token-b-0123456789";

    fn parse(text: &str) -> Result<TokenSet, (usize, LineProblem)> {
        TokenSet::parse(text, &[("LETTA_BRIDGE_CLIENT_TOKEN", "client-token-0123456789")])
    }

    #[test]
    fn each_token_grants_the_devices_of_its_line() {
        let set = parse(&format!("# laptops\n\n{A} dev-a,dev-b\n  {B}   *  \n")).unwrap();
        let a = set.grant(A).unwrap();
        assert!(a.allows("dev-a") && a.allows("dev-b") && !a.allows("dev-c"));
        assert_eq!(set.grant(B), Some(RuntimeGrant::AnyDevice));
        assert_eq!(set.grant("token-c-0123456789"), None);
        assert_eq!(set.grant(&A[..A.len() - 1]), None);
        assert_eq!(set.grant(""), None);
        assert_eq!(set.devices(), 2);
    }

    #[test]
    fn malformed_lines_are_refused_with_their_line_number() {
        let cases = [
            (format!("{A}\n"), 1, LineProblem::Malformed),
            (format!("# c\n{A} dev-a extra\n"), 2, LineProblem::Malformed),
            ("\n\nshort dev-a\n".to_owned(), 3, LineProblem::Short),
            (format!("{A} dev-a\n{A} dev-b\n"), 2, LineProblem::Duplicate(1)),
            ("client-token-0123456789 dev-a\n".to_owned(), 1, LineProblem::Reserved("LETTA_BRIDGE_CLIENT_TOKEN")),
            (format!("{A} dev-a,has space\n"), 1, LineProblem::Malformed),
            (format!("{A} dev-a,,dev-b\n"), 1, LineProblem::BadDevice(String::new())),
            (format!("{A} dev/a\n"), 1, LineProblem::BadDevice("dev/a".into())),
            (format!("{A} dev-a,*\n"), 1, LineProblem::StarWithDevices),
        ];
        for (text, line, problem) in cases {
            assert_eq!(parse(&text).err(), Some((line, problem)), "{text:?}");
        }
    }

    #[test]
    fn errors_name_the_file_and_line_but_never_the_token() {
        let path = std::env::temp_dir().join(format!("lb-tokens-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, format!("{A} dev-a\n{A} dev-b\n")).unwrap();
        let err = DeviceTokens::load(&path, Vec::new()).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.line(), Some(2));
        assert!(text.contains("line 2") && text.contains(&path.display().to_string()), "{text}");
        assert!(!text.contains(A), "{text}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_reload_replaces_the_tokens_and_a_bad_file_keeps_them() {
        let path = std::env::temp_dir().join(format!("lb-tokens-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, format!("{A} dev-a\n")).unwrap();
        let tokens = DeviceTokens::load(&path, Vec::new()).unwrap();
        let reader = tokens.clone();
        std::fs::write(&path, format!("{B} dev-b\n")).unwrap();
        assert_eq!(tokens.reload().unwrap(), Loaded { tokens: 1, devices: 1 });
        assert!(reader.grant(A).is_none() && reader.grant(B).is_some());
        std::fs::write(&path, "nonsense\n").unwrap();
        assert_eq!(tokens.reload().unwrap_err().line(), Some(1));
        assert!(reader.grant(B).is_some(), "the tokens in force stay");
        let _ = std::fs::remove_file(&path);
    }
}
