//! Graceful shutdown: SSE streams end, runtime sockets close with 1001.

use crate::helpers::*;

#[tokio::test]
async fn shutdown_ends_streams_and_closes_runtime_sockets_with_1001() {
    let mut app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let mut sse = app.events("").await;
    app.shutdown.cancel();
    assert_eq!(rt.closed().await, Some((1001, "bridge shutting down".into())));
    let offline = sse.next_of("runtime_offline").await;
    assert_eq!(offline.data["reason"], "shutdown", "subscribers see the runtime go before their stream ends");
    assert!(sse.ends().await, "the SSE stream ends");
    let server = app.server.take().unwrap();
    let result = tokio::time::timeout(WAIT, server).await.expect("the server stops in time").unwrap();
    assert!(result.is_ok(), "{result:?}");
}
