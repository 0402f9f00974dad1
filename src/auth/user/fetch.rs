//! One GET of an identity provider's key set over HTTP/1.1: hyper's own
//! client connection (the hyper the listener serves with) on tokio-rustls
//! (the listener's TLS, with the ring provider and the system's root
//! certificates). No redirects and no proxy: the configured URL is fetched
//! directly. Each fetch is one connection, bounded by [`FETCH_TIMEOUT`] and
//! [`MAX_JWKS_BYTES`], and runs inside the request that needs it.

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Request, Uri, header};
use http_body::Body;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

/// Longest a fetch may take, connection and TLS handshake included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest key set read.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Where the key set is, and how to reach it.
pub struct Fetcher {
    host: String,
    port: u16,
    /// `host[:port]`, for the `Host` header.
    authority: String,
    /// The path and query to GET.
    target: String,
    /// For `https://`.
    tls: Option<TlsConnector>,
}

impl Fetcher {
    /// A fetcher of `url` (`https://`, or `http://`; checked by the config).
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse()?;
        let https = uri.scheme_str() == Some("https");
        let authority = uri.authority().ok_or_else(|| anyhow::anyhow!("{url:?} names no host"))?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let tls = https.then(tls_connector).transpose()?;
        Ok(Self { host, port, authority: authority.as_str().to_owned(), target, tls })
    }

    /// The body of a `2xx` answer to a GET of the URL; else why not.
    pub async fn get(&self) -> Result<Vec<u8>, String> {
        match tokio::time::timeout(FETCH_TIMEOUT, self.connect_and_get()).await {
            Ok(got) => got,
            Err(_) => Err(format!("no answer within {FETCH_TIMEOUT:?}")),
        }
    }

    async fn connect_and_get(&self) -> Result<Vec<u8>, String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
        let Some(tls) = &self.tls else { return self.exchange(tcp).await };
        let name = ServerName::try_from(self.host.clone()).map_err(|e| format!("{}: {e}", self.host))?;
        let stream = tls.connect(name, tcp).await.map_err(|e| format!("TLS with {}: {e}", self.authority))?;
        self.exchange(stream).await
    }

    async fn exchange<IO>(&self, io: IO) -> Result<Vec<u8>, String>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, String>(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
        let request = Request::get(self.target.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(header::ACCEPT, "application/jwk-set+json, application/json")
            .header(header::USER_AGENT, concat!("letta-bridge/", env!("CARGO_PKG_VERSION")))
            .header(header::CONNECTION, "close")
            .body(String::new())
            .map_err(|e| e.to_string())?;
        let fetch = async move {
            let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                let frame = frame.map_err(|e| e.to_string())?;
                if let Some(data) = frame.data_ref() {
                    if bytes.len() + data.len() > MAX_JWKS_BYTES {
                        return Err(format!("the key set is larger than {MAX_JWKS_BYTES} bytes"));
                    }
                    bytes.extend_from_slice(data);
                }
            }
            Ok(bytes)
        };
        // The connection is driven here, beside the request: no task of its own.
        let (mut connection, mut fetch) = (pin!(connection), pin!(fetch));
        tokio::select! {
            biased;
            got = &mut fetch => got,
            ended = &mut connection => match ended {
                Ok(()) => fetch.await,
                Err(e) => Err(e.to_string()),
            },
        }
    }
}

/// rustls with the ring provider and the system's root certificates.
pub(crate) fn tls_connector() -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(errors = ?found.errors, "no system root certificate found: the key set's https:// will not verify");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}
