//! Outbound HTTP/1 requests of the service's own (webhook deliveries, the
//! OTLP trace exporter): one connection per request with hyper's client
//! connection, tokio-rustls with the system's roots (read once) for
//! `https://`, the body sent as one frame, the connection driven beside the
//! request (no task of its own). Only the answer's head is read: callers
//! send `Connection: close`.

use std::convert::Infallible;
use std::pin::{Pin, pin};
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// The TLS client, built once (the system's roots are read from disk).
static TLS: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();

/// The TLS client for `https://` targets.
pub fn tls() -> Result<tokio_rustls::TlsConnector, String> {
    if let Some(tls) = TLS.get() {
        return Ok(tls.clone());
    }
    let tls = crate::auth::tls_client().map_err(|e| e.to_string())?;
    Ok(TLS.get_or_init(|| tls).clone())
}

/// Sends `request` on `io` (a connection opened for it); the answer's head.
pub async fn send<IO>(io: IO, request: Request<Body>) -> Result<Response<Incoming>, hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(io)).await?;
    let send = sender.send_request(request);
    let (mut connection, mut send) = (pin!(connection), pin!(send));
    tokio::select! {
        biased;
        sent = &mut send => sent,
        ended = &mut connection => {
            ended?;
            send.await
        }
    }
}

/// A request body of one chunk (hyper needs a `Body`; `String` would copy).
pub struct Body(Option<Bytes>);

impl Body {
    /// The whole body, sent as one frame.
    pub fn new(bytes: Bytes) -> Self {
        Self(Some(bytes))
    }
}

impl http_body::Body for Body {
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[test]
    fn a_body_is_its_bytes_in_one_frame_of_the_size_it_announces() {
        let mut body = Body::new(Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(body.size_hint().exact(), Some(7));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) else { panic!("one frame") };
        assert_eq!(frame.into_data().unwrap(), Bytes::from_static(b"{\"a\":1}"));
        assert!(body.is_end_stream());
        assert!(matches!(Pin::new(&mut body).poll_frame(&mut cx), Poll::Ready(None)));
    }
}
