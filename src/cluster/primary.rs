//! Where the cluster's Redis primary is: the one address of a
//! `redis://`, `rediss://` or `redis+unix://` URL, or, for
//! `redis+sentinel://host:port[,host:port…]/<master-name>`, the primary the
//! Redis Sentinels name (redis-rs' own sentinel client, which also checks
//! that the node it names answers `ROLE` as a primary). The engine asks
//! again after a failure or a refused write ([`super::engine`]), so every
//! connection the cluster opens follows a failover.

use std::time::Duration;

use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Client, ConnectionAddr, RedisConnectionInfo, RedisError};

/// The scheme of a Sentinel URL.
const SCHEME: &str = "redis+sentinel://";

/// The Sentinel port when a host names none.
const SENTINEL_PORT: u16 = 26379;

/// Where the primary comes from.
pub(super) enum Source {
    /// One address, for good (a plain Redis, or a proxy in front of one).
    Fixed(Client),
    /// Whatever the Sentinels name at each ask.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

impl Source {
    /// The source `url` names.
    pub(super) fn open(url: &str) -> Result<Self, RedisError> {
        let Some(sentinel) = SentinelUrl::parse(url) else { return Ok(Self::Fixed(Client::open(url)?)) };
        let sentinel = sentinel
            .map_err(|e| RedisError::from((redis::ErrorKind::InvalidClientConfig, "LETTA_BRIDGE_CLUSTER_URL", e)))?;
        let sentinels: Vec<_> = sentinel.hosts.iter().map(|(h, p)| ConnectionAddr::Tcp(h.clone(), *p)).collect();
        let mut redis = RedisConnectionInfo::default().set_db(sentinel.db);
        if let Some(user) = &sentinel.username {
            redis = redis.set_username(user);
        }
        if let Some(password) = &sentinel.password {
            redis = redis.set_password(password);
        }
        let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis);
        let client = SentinelClient::build(sentinels, sentinel.master, Some(node), SentinelServerType::Master)?;
        Ok(Self::Sentinel(tokio::sync::Mutex::new(client)))
    }

    /// True when the primary may move (Sentinel).
    pub(super) fn moves(&self) -> bool {
        matches!(self, Self::Sentinel(_))
    }

    /// A client for the primary as of now (at most `timeout` to ask).
    pub(super) async fn primary(&self, timeout: Duration) -> Result<Client, RedisError> {
        match self {
            Self::Fixed(client) => Ok(client.clone()),
            Self::Sentinel(sentinel) => {
                let ask = async { sentinel.lock().await.async_get_client().await };
                tokio::time::timeout(timeout, ask)
                    .await
                    .map_err(|_| RedisError::from((redis::ErrorKind::Io, "asking the Sentinels timed out")))?
            }
        }
    }
}

/// The address a client connects to, to tell two primaries apart.
pub(super) fn address(client: &Client) -> String {
    client.get_connection_info().addr().to_string()
}

/// A `redis+sentinel://[user:password@]host[:port][,host[:port]…]/<master-name>[/<db>]` URL.
#[derive(Debug, PartialEq, Eq)]
struct SentinelUrl {
    hosts: Vec<(String, u16)>,
    master: String,
    db: i64,
    /// For the Redis nodes (not the Sentinels).
    username: Option<String>,
    password: Option<String>,
}

impl SentinelUrl {
    /// `None` for a URL of another scheme; else the URL or what is wrong with it.
    fn parse(url: &str) -> Option<Result<Self, String>> {
        let rest = url.strip_prefix(SCHEME)?;
        Some(Self::parse_rest(rest))
    }

    fn parse_rest(rest: &str) -> Result<Self, String> {
        let (authority, path) = rest.split_once('/').ok_or("a Sentinel URL ends with /<master-name>")?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo.map(|u| u.split_once(':').unwrap_or(("", u))) {
            Some((user, password)) => {
                (Some(user).filter(|u| !u.is_empty()).map(decode), Some(password).filter(|p| !p.is_empty()).map(decode))
            }
            None => (None, None),
        };
        let hosts = hosts.split(',').map(host).collect::<Result<Vec<_>, _>>()?;
        let mut segments = path.trim_end_matches('/').splitn(2, '/');
        let master =
            segments.next().filter(|m| !m.is_empty()).ok_or("a Sentinel URL names its master: /<master-name>")?;
        let db = match segments.next() {
            Some(db) => {
                db.parse().map_err(|_| format!("the database after the master name is a number (got {db:?})"))?
            }
            None => 0,
        };
        Ok(Self { hosts, master: decode(master), db, username, password })
    }
}

/// `host[:port]` or `[v6]:port`.
fn host(part: &str) -> Result<(String, u16), String> {
    let bad = || format!("a Sentinel is host[:port] (got {part:?})");
    let (host, port) = if let Some(v6) = part.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match part.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (part, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = port.map_or(Ok(SENTINEL_PORT), |p| p.parse().map_err(|_| bad()))?;
    Ok((host.to_owned(), port))
}

/// Percent-decodes a URL part (a password may hold `@`, `:` or `/` encoded).
fn decode(part: &str) -> String {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<SentinelUrl, String> {
        SentinelUrl::parse(url).expect("a sentinel URL")
    }

    #[test]
    fn a_sentinel_url_names_its_sentinels_and_the_master() {
        let url = parse("redis+sentinel://10.0.0.1:26379,10.0.0.2,[::1]:5000/mymaster").unwrap();
        assert_eq!(
            url.hosts,
            vec![("10.0.0.1".into(), 26379), ("10.0.0.2".into(), SENTINEL_PORT), ("::1".into(), 5000)]
        );
        assert_eq!((url.master.as_str(), url.db), ("mymaster", 0));
        assert_eq!((url.username, url.password), (None, None));
    }

    #[test]
    fn credentials_and_a_database_in_a_sentinel_url_are_the_redis_nodes() {
        let url = parse("redis+sentinel://app:s%40cret@h:1/primary/2").unwrap();
        assert_eq!((url.username.as_deref(), url.password.as_deref()), (Some("app"), Some("s@cret")));
        assert_eq!((url.master.as_str(), url.db), ("primary", 2));
        let url = parse("redis+sentinel://:pw@h/m").unwrap();
        assert_eq!((url.username, url.password.as_deref()), (None, Some("pw")));
    }

    #[test]
    fn a_sentinel_url_without_a_master_or_with_a_bad_port_is_refused() {
        assert!(parse("redis+sentinel://h:26379").is_err());
        assert!(parse("redis+sentinel://h:26379/").is_err());
        assert!(parse("redis+sentinel://h:port/m").is_err());
        assert!(parse("redis+sentinel://h,/m").is_err());
        assert!(parse("redis+sentinel://h/m/db").is_err());
    }

    #[test]
    fn other_urls_are_not_sentinel_urls() {
        assert!(SentinelUrl::parse("redis://h:6379").is_none());
        assert!(Source::open("redis://127.0.0.1:6379").is_ok_and(|s| !s.moves()));
        assert!(Source::open("redis+sentinel://127.0.0.1:26379/m").is_ok_and(|s| s.moves()));
    }
}
