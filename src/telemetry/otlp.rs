//! The OTLP exporter's HTTP client: one POST per export with hyper's
//! HTTP/1 client connection (on tokio-rustls for `https://`), as webhook
//! deliveries are sent. The SDK's batch processor exports from a thread of
//! its own, outside tokio: each POST runs as a task on the bridge's
//! runtime, bounded by the export timeout; the answer's body is not read.

use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;

use bytes::Bytes;
use hyper::header;
use hyper_util::rt::TokioIo;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::ServerName;

use full::Full;

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
    let host = uri.host().ok_or("the OTLP endpoint has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
    if !https {
        return exchange(request, tcp).await;
    }
    let tls = crate::auth::tls_client()?;
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())?;
    exchange(request, tls.connect(name, tcp).await?).await
}

async fn exchange<IO>(request: Request<Bytes>, io: IO) -> Result<Response<Bytes>, HttpError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (parts, body) = request.into_parts();
    let authority = parts.uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut request = hyper::Request::from_parts(parts, Full(Some(body)));
    *request.uri_mut() = path.parse()?;
    let headers = request.headers_mut();
    headers.insert(header::HOST, authority.parse()?);
    headers.insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Full>(TokioIo::new(io)).await?;
    let send = sender.send_request(request);
    // The connection is driven here, beside the request: no task of its own.
    let (mut connection, mut send) = (pin!(connection), pin!(send));
    let response = tokio::select! {
        biased;
        sent = &mut send => sent?,
        ended = &mut connection => {
            ended?;
            send.await?
        }
    };
    let (parts, _) = response.into_parts();
    Ok(Response::from_parts(parts, Bytes::new()))
}

/// A body of one chunk (hyper needs a `Body`).
mod full {
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body::{Body, Frame, SizeHint};

    /// The whole body, sent as one frame.
    pub struct Full(pub Option<Bytes>);

    impl Body for Full {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_none()
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
        }
    }
}
