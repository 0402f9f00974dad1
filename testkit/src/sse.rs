//! The reader of `GET /events`, as a browser reads it: one event at a time,
//! each wait bounded, everything read kept for failure messages.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::WAIT;

/// One SSE event as a client sees it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, String>> + Send>>;

/// An SSE reader over a live `GET /events` response; keeps what it read.
pub struct Sse {
    stream: EventStream,
    /// How long one expectation may wait ([`WAIT`] unless set).
    timeout: Duration,
    /// Every event read so far, in order.
    pub seen: Vec<SseEvent>,
}

impl Sse {
    pub fn new(res: reqwest::Response) -> Self {
        use eventsource_stream::Eventsource;
        let stream = res.bytes_stream().eventsource().map(|r| r.map_err(|e| e.to_string()));
        Self { stream: Box::pin(stream), timeout: WAIT, seen: Vec::new() }
    }

    /// Sends `req` (a `GET /events`), expects a 200 and reads its stream.
    pub async fn open(req: reqwest::RequestBuilder) -> Self {
        let res = req.send().await.expect("GET /events sent");
        assert_eq!(res.status(), 200, "GET {}", res.url());
        Self::new(res)
    }

    /// This reader, each expectation waiting up to `timeout`.
    pub fn waiting(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The next event; panics if none comes in time or the stream ends.
    pub async fn next(&mut self) -> SseEvent {
        self.next_matching("event", |_| true).await
    }

    /// The next event of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> SseEvent {
        self.next_matching(kind, |e| e.event == kind).await
    }

    /// The next event matching `pred` (`what` names it in the failure),
    /// skipping others; the whole search is bounded by the timeout.
    pub async fn next_matching(&mut self, what: &str, pred: impl Fn(&SseEvent) -> bool) -> SseEvent {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let item = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no {what} in {:?}; seen: {}", self.timeout, self.summary()));
            let e = item.expect("stream ended").expect("stream error");
            let data = serde_json::from_str(&e.data).unwrap_or_else(|_| panic!("event data is JSON: {}", e.data));
            let event = SseEvent { id: e.id, event: e.event, data };
            self.seen.push(event.clone());
            if pred(&event) {
                return event;
            }
        }
    }

    /// The next event, or `None` once the stream ends or breaks (a client
    /// that resumes then reconnects); panics if nothing comes in time.
    pub async fn try_next(&mut self) -> Option<SseEvent> {
        let item = tokio::time::timeout(self.timeout, self.stream.next())
            .await
            .unwrap_or_else(|_| panic!("nothing in {:?}; seen: {}", self.timeout, self.summary()));
        let e = item?.ok()?;
        let data = serde_json::from_str(&e.data).unwrap_or_else(|_| panic!("event data is JSON: {}", e.data));
        let event = SseEvent { id: e.id, event: e.event, data };
        self.seen.push(event.clone());
        Some(event)
    }

    /// True when the stream ends in time (no more events).
    pub async fn ends(&mut self) -> bool {
        loop {
            match tokio::time::timeout(self.timeout, self.stream.next()).await {
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Event types read so far (with their `request_id`), for failure messages.
    pub fn summary(&self) -> String {
        let names: Vec<String> = self
            .seen
            .iter()
            .map(|e| match e.data.get("request_id").and_then(Value::as_str) {
                Some(r) => format!("{}({r})", e.event),
                None => e.event.clone(),
            })
            .collect();
        format!("[{}]", names.join(", "))
    }
}
