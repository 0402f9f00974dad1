//! The service each connection runs: the application's router, with the
//! connection's [`Activity`] told when a request starts and when its
//! response ends (the response body is dropped), and when a response
//! switches protocols (a WebSocket: the listener's timeouts stop there);
//! on a connection accepted beyond the connect rate, each request carries
//! the mark ([`OverConnectRate`]).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tower::ServiceExt;
use tower::util::Oneshot;

use super::rate::OverConnectRate;
use super::watch::Activity;

/// The router, for one connection.
#[derive(Clone)]
pub struct Tracking {
    app: axum::Router,
    activity: Arc<Activity>,
    /// Set when the connection came beyond the connect rate: each request carries it.
    over: Option<OverConnectRate>,
}

impl Tracking {
    /// Serves `app`, reporting to `activity`; marks each request with `over`.
    pub fn new(app: axum::Router, activity: Arc<Activity>, over: Option<OverConnectRate>) -> Self {
        Self { app, activity, over }
    }
}

impl hyper::service::Service<Request<Incoming>> for Tracking {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Responding;

    fn call(&self, mut req: Request<Incoming>) -> Responding {
        self.activity.begin_request();
        if let Some(over) = self.over {
            req.extensions_mut().insert(over);
        }
        Responding { inner: self.app.clone().oneshot(req.map(Body::new)), guard: Some(InFlight(self.activity.clone())) }
    }
}

pin_project_lite::pin_project! {
    /// The router's response, with the request's place in flight.
    pub struct Responding {
        #[pin]
        inner: Oneshot<axum::Router, Request<Body>>,
        guard: Option<InFlight>,
    }
}

impl Future for Responding {
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = std::task::ready!(this.inner.poll(cx));
        let guard = this.guard.take().expect("polled after completion");
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            guard.0.set_upgraded();
        }
        Poll::Ready(Ok(response.map(|inner| TrackedBody { inner, _guard: guard })))
    }
}

/// A request whose response has not ended; ends it when dropped (with the
/// response body, or with the request when the connection closes first).
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// A response body that holds its request's place in flight.
pub struct TrackedBody {
    inner: Body,
    _guard: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
