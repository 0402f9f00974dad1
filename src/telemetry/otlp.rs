//! The OTLP exporter's HTTP client: one POST per export
//! ([`crate::outbound`], as webhook deliveries are sent). The SDK's batch
//! processor exports from a thread of its own, outside tokio: each POST
//! runs as a task on the bridge's runtime, bounded by the export timeout;
//! the answer's body is not read.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use hyper::header;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use tokio_rustls::rustls::pki_types::ServerName;

use crate::outbound;

/// Posts on the runtime `runtime`, each within `timeout`.
#[derive(Debug)]
pub struct HyperClient {
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl HyperClient {
    pub fn new(runtime: tokio::runtime::Handle, timeout: Duration) -> Self {
        Self { runtime, timeout }
    }
}

type Sent<'a> = Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'a>>;

impl HttpClient for HyperClient {
    // `async_trait`'s shape, written out.
    fn send_bytes<'a, 'b>(&'a self, request: Request<Bytes>) -> Sent<'b>
    where
        'a: 'b,
        Self: 'b,
    {
        let timeout = self.timeout;
        let task = self.runtime.spawn(async move { tokio::time::timeout(timeout, post(request)).await });
        Box::pin(async move {
            match task.await {
                Ok(Ok(sent)) => sent,
                Ok(Err(_)) => Err(format!("no answer within {timeout:?}").into()),
                Err(e) => Err(e.into()),
            }
        })
    }
}

async fn post(request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
    let uri = request.uri().clone();
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or("the OTLP endpoint has no host")?.trim_matches(['[', ']']).to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let (parts, body) = request.into_parts();
    let authority = parts.uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut request = hyper::Request::from_parts(parts, outbound::Body::new(body));
    *request.uri_mut() = path.parse()?;
    let headers = request.headers_mut();
    headers.insert(header::HOST, authority.parse()?);
    headers.insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    let response = if https {
        let name = ServerName::try_from(host)?;
        outbound::send(outbound::tls()?.connect(name, tcp).await?, request).await?
    } else {
        outbound::send(tcp, request).await?
    };
    let (parts, _) = response.into_parts();
    Ok(Response::from_parts(parts, Bytes::new()))
}
