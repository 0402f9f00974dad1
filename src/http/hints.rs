//! What an answer tells its caller to do next, where the bare error would
//! leave a newcomer stuck: with no runtime online, the exact `letta remote`
//! line that connects one to this bridge.

use axum::http::{HeaderMap, header};

use super::Settings;
use crate::runtime::{DispatchError, RouteError};

/// This bridge's base URL as its caller reaches it: LETTA_BRIDGE_PUBLIC_URL,
/// else the request's `Host` (`https` when this listener speaks TLS).
pub fn base_url(settings: &Settings, headers: &HeaderMap) -> String {
    known_base_url(settings, headers).unwrap_or_else(|| format!("{}://<this bridge's host:port>", scheme(settings)))
}

/// [`base_url`], or `None` when no public URL is set and the request has no
/// usable `Host` (the OpenAPI document then names no address).
pub fn known_base_url(settings: &Settings, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &settings.public_url {
        // In its http(s) form: LETTA_BRIDGE_PUBLIC_URL may be given as ws(s)://.
        let url = url.trim_end_matches('/');
        let http = match url.split_once("://") {
            Some(("ws", rest)) => format!("http://{rest}"),
            Some(("wss", rest)) => format!("https://{rest}"),
            _ => url.to_owned(),
        };
        return Some(http);
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| valid_host(h))?;
    Some(format!("{}://{host}", scheme(settings)))
}

fn scheme(settings: &Settings) -> &'static str {
    if settings.tls { "https" } else { "http" }
}

fn valid_host(host: &str) -> bool {
    !host.is_empty() && host.parse::<axum::http::uri::Authority>().is_ok_and(|a| a.as_str() == host)
}

/// The detail of a command refused because no runtime is online.
pub fn no_runtime(base: &str) -> String {
    format!(
        "no runtime is online. Connect one: LETTA_BASE_URL={base} IGNORE_SELF_HOSTED_LISTENER_ERROR=1 LETTA_API_KEY=<runtime token> letta remote --env-name <name> --backend local (GET /runtimes lists the runtimes this bridge knows)"
    )
}

/// A dispatch error as a problem, with the hint for "no runtime is online".
pub fn dispatch_error(e: DispatchError, base: &str) -> super::ApiError {
    match e {
        DispatchError::Route(RouteError::NoneOnline) => super::ApiError::Unavailable(no_runtime(base)),
        e => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(public_url: Option<&str>, tls: bool) -> Settings {
        let mut s = Settings::for_tests();
        s.public_url = public_url.map(Into::into);
        s.tls = tls;
        s
    }

    #[test]
    fn the_base_url_is_the_public_url_else_the_host_the_caller_used() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "bridge.lan:8284".parse().unwrap());
        assert_eq!(base_url(&settings(Some("https://b.example.com/"), false), &headers), "https://b.example.com");
        assert_eq!(base_url(&settings(Some("wss://b.example.com/x"), false), &headers), "https://b.example.com/x");
        assert_eq!(base_url(&settings(None, false), &headers), "http://bridge.lan:8284");
        assert_eq!(base_url(&settings(None, true), &headers), "https://bridge.lan:8284");
        headers.insert(header::HOST, "bad host".parse().unwrap());
        assert!(base_url(&settings(None, false), &headers).contains("<this bridge's host:port>"));
        assert_eq!(known_base_url(&settings(None, false), &headers), None);
    }

    #[test]
    fn the_no_runtime_hint_is_the_command_line_that_connects_one() {
        let hint = no_runtime("http://127.0.0.1:8284");
        assert!(hint.starts_with("no runtime is online."), "{hint}");
        assert!(hint.contains("LETTA_BASE_URL=http://127.0.0.1:8284 IGNORE_SELF_HOSTED_LISTENER_ERROR=1"), "{hint}");
        assert!(hint.contains("letta remote") && hint.contains("GET /runtimes"), "{hint}");
    }
}
