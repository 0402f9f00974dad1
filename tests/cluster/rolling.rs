//! A rolling deploy through nginx (the README's recipe): each of three
//! instances in turn stopped with SIGTERM and started again on its address,
//! while 100 clients stream with resume, a runtime streams events without a
//! pause (reconnecting, as the real runtime does, when its socket closes) and
//! a client sends commands, retrying each with its `Idempotency-Key` until it
//! is answered. Every client gets every event of the log once and in order,
//! every command reaches the runtime once, and the runtime is back online
//! soon after each restart (the figures are printed: docs/operations.md).

use std::sync::Arc;
use std::time::Duration;

use letta_bridge_testkit::bridge::{CLIENT_TOKEN, RUNTIME_TOKEN};
use letta_bridge_testkit::fake_runtime::Seen;
use letta_bridge_testkit::{FakeRuntime, Sse};
use serde_json::{Value, json};
use tokio::sync::{Barrier, watch};
use tokio::time::Instant;

use crate::harness::{Cluster, WAIT, input};

const CLIENTS: usize = 100;
/// The runtime emits an event this often.
const EMIT_EVERY: Duration = Duration::from_millis(10);
/// A client or the runtime reconnects after this long (EventSource's retry, the runtime's backoff).
const RETRY: Duration = Duration::from_millis(50);
/// The runtime is online again (through the balancer) within this long of
/// its instance's SIGTERM: the bound docs/cluster.md states (measured: under 1 s).
const BACK_ONLINE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_instance_loses_no_event_and_runs_every_retried_command_once() {
    let Some(mut cluster) = Cluster::start("rolling", 3) else { return };
    let Some(nginx) = cluster.balancer("rolling") else { return };
    let base = format!("http://{}", nginx.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // Every client subscribed before the first event.
    let ready = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(http.clone(), format!("{base}/events?types=marker"), ready.clone())))
        .collect();
    ready.wait().await;

    let (stop_runtime, runtime_stopped) = watch::channel(false);
    let (stop_commands, commands_stopped) = watch::channel(false);
    let runtime = tokio::spawn(runtime(format!("ws://{}/ws?deviceId=dev-roll", nginx.addr), runtime_stopped));
    wait_online(&http, &base, Instant::now() + WAIT).await;
    let commands = tokio::spawn(commander(http.clone(), base.clone(), commands_stopped));

    let mut restarts = Vec::new();
    for i in 1..=3 {
        // Traffic between restarts, and nginx's fail_timeout (1 s) past the
        // previous restart: the procedure docs/cluster.md gives.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let began = Instant::now();
        tokio::task::block_in_place(|| cluster.restart(i));
        let started = began.elapsed();
        wait_online(&http, &base, began + BACK_ONLINE).await;
        restarts.push((i, started, began.elapsed()));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // The commands end first: the runtime answers the last one.
    stop_commands.send(true).unwrap();
    let ran = commands.await.unwrap();
    stop_runtime.send(true).unwrap();
    let (received, outages) = runtime.await.unwrap();
    let truth = whole_log(&http, &base).await;
    assert!(truth.len() > 200, "the runtime's events reached the log: {}", truth.len());
    for (n, c) in clients.into_iter().enumerate() {
        let (got, reconnects) = c.await.unwrap();
        assert_eq!(got.len(), truth.len(), "client {n} ({reconnects} reconnects) got every event");
        assert_eq!(got, truth, "client {n} got every event once, in order");
        assert!(reconnects >= 1, "client {n} was moved at least once");
    }
    for (key, answers) in &ran {
        let times = received.iter().filter(|t| *t == key).count();
        assert_eq!(times, 1, "command {key} (answers {answers:?}) reached the runtime once, not {times} times");
    }
    assert!(ran.len() > 20, "commands kept coming: {}", ran.len());
    let retried = ran.iter().filter(|(_, a)| a.len() > 1).count();
    eprintln!(
        "rolling: {} events to each of {CLIENTS} clients; {} commands, {retried} retried; \
         restarts (instance, stopped and started, runtime online again): {restarts:?}; \
         runtime reconnects took {outages:?}",
        truth.len(),
        ran.len()
    );
}

/// One client: reads `url` from its first subscription on, resuming with
/// `Last-Event-ID` whenever the stream ends, until the runtime's last event.
/// Returns the `i` of every event and how often it reconnected.
async fn client(http: reqwest::Client, url: String, ready: Arc<Barrier>) -> (Vec<i64>, usize) {
    let mut first = Some(Sse::open(http.get(&url).bearer_auth(CLIENT_TOKEN)).await.waiting(WAIT));
    ready.wait().await;
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    let mut reconnects = 0;
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < give_up, "a client resumed for a minute without the last event");
        let mut sse = match first.take() {
            Some(sse) => sse,
            None => {
                let mut req = http.get(&url).bearer_auth(CLIENT_TOKEN);
                if let Some(c) = &cursor {
                    req = req.header("Last-Event-ID", c);
                }
                match req.send().await {
                    Ok(res) if res.status() == 200 => Sse::new(res).waiting(WAIT),
                    _ => {
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                }
            }
        };
        while let Some(e) = sse.try_next().await {
            assert_eq!(e.event, "marker", "only the runtime's events, no reset or lagged: {}", e.data);
            cursor = Some(e.id);
            got.push(e.data["i"].as_i64().unwrap());
            if e.data["last"] == true {
                return (got, reconnects);
            }
        }
        reconnects += 1;
    }
}

/// The runtime: emits `marker` events every [`EMIT_EVERY`] and records the
/// text of every message it is sent; when the bridge closes its socket it
/// reconnects through the balancer. Once `stop`, it emits the last event.
/// Returns the texts and how long each reconnect took.
async fn runtime(url: String, stop: watch::Receiver<bool>) -> (Vec<String>, Vec<Duration>) {
    let mut received = Vec::new();
    let mut rt = connect(&url, &mut received).await;
    let mut outages = Vec::new();
    let mut tick = tokio::time::interval(EMIT_EVERY);
    let mut i = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if *stop.borrow() {
                    break;
                }
                rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
                i += 1;
            }
            seen = rt.recv() => match seen {
                Seen::Frame(frame) => received.extend(message_text(&frame)),
                Seen::Close(_) | Seen::Ended => {
                    let lost = Instant::now();
                    rt = connect(&url, &mut received).await;
                    outages.push(lost.elapsed());
                }
                _ => {}
            },
        }
    }
    rt.emit("marker", "agent-1", "conv-1", json!({"i": i, "last": true}));
    (received, outages)
}

/// Connects the runtime through the balancer, retrying until an instance
/// answers its JSON ping; the texts of messages sent before that pong go
/// to `received`.
async fn connect(url: &str, received: &mut Vec<String>) -> FakeRuntime {
    let give_up = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < give_up, "the runtime could not connect through the balancer in {WAIT:?}");
        if let Ok(mut rt) = FakeRuntime::connect(url, Some(RUNTIME_TOKEN)).await {
            rt.send(json!({"type": "ping"}));
            loop {
                match tokio::time::timeout(WAIT, rt.recv()).await.expect("a pong or a close") {
                    Seen::Frame(f) if f == json!({"type": "pong"}) => return rt,
                    Seen::Frame(f) => received.extend(message_text(&f)),
                    Seen::Close(_) | Seen::Ended => break,
                    _ => continue,
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The text of a `create_message` command's message.
fn message_text(frame: &Value) -> Option<String> {
    frame.pointer("/payload/messages/0/content").and_then(Value::as_str).map(str::to_owned)
}

/// Sends `create_message` commands through the balancer one after another
/// until `stop`, each retried with its `Idempotency-Key` until answered
/// `200`. Returns each command's text and the statuses its attempts got.
async fn commander(http: reqwest::Client, base: String, stop: watch::Receiver<bool>) -> Vec<(String, Vec<String>)> {
    let mut ran = Vec::new();
    let mut n = 0;
    while !*stop.borrow() {
        let text = format!("cmd-{n}");
        let mut answers = Vec::new();
        let give_up = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < give_up, "{text} not answered in 30 s: {:?}", &answers[..answers.len().min(5)]);
            let res = http
                .post(format!("{base}/input?wait=true"))
                .bearer_auth(CLIENT_TOKEN)
                .header("Idempotency-Key", format!("rolling-{n}"))
                .json(&input(&text))
                .send()
                .await;
            let (status, problem) = match res {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap_or_default();
                    (status, format!("{status} {}", body["type"].as_str().unwrap_or_default()))
                }
                Err(e) => (0, format!("0 {e}")),
            };
            answers.push(problem);
            match status {
                200 => break,
                // Cut, no instance, no runtime online yet, a first attempt still running.
                0 | 409 | 502 | 503 | 504 => tokio::time::sleep(RETRY).await,
                _ => panic!("{text}: {answers:?}"),
            }
        }
        ran.push((text, answers));
        n += 1;
    }
    ran
}

/// Waits until `GET /runtimes` (through the balancer) shows the runtime
/// online; fails past `deadline`.
async fn wait_online(http: &reqwest::Client, base: &str, deadline: Instant) {
    loop {
        let online = match http.get(format!("{base}/runtimes")).bearer_auth(CLIENT_TOKEN).send().await {
            Ok(res) if res.status() == 200 => {
                let body: Value = res.json().await.unwrap();
                body.as_array()
                    .or_else(|| body["runtimes"].as_array())
                    .is_some_and(|rts| rts.iter().any(|r| r["id"] == "dev-roll" && r["online"] == true))
            }
            _ => false,
        };
        if online {
            return;
        }
        assert!(Instant::now() < deadline, "the runtime was not online in time (docs/cluster.md: {BACK_ONLINE:?})");
        tokio::time::sleep(RETRY).await;
    }
}

/// Every `marker` the log holds, read from its start by a reader that never
/// moved (the truth the clients are checked against): a malformed cursor's
/// `reset` names the oldest event held; the reader resumes just before it.
async fn whole_log(http: &reqwest::Client, base: &str) -> Vec<i64> {
    let url = format!("{base}/events?types=marker");
    let mut probe = Sse::open(http.get(&url).bearer_auth(CLIENT_TOKEN).header("Last-Event-ID", "x")).await;
    let reset = probe.next().await;
    assert_eq!(reset.event, "reset", "a malformed cursor is reset: {}", reset.data);
    let oldest = reset.data["oldest"].as_str().expect("the log holds events");
    let (epoch, seq) = oldest.rsplit_once('-').unwrap();
    let before = format!("{epoch}-{}", seq.parse::<u64>().unwrap() - 1);
    let req = http.get(&url).bearer_auth(CLIENT_TOKEN).header("Last-Event-ID", before);
    let mut sse = Sse::open(req).await.waiting(WAIT);
    let mut all = Vec::new();
    loop {
        let e = sse.next().await;
        assert_eq!(e.event, "marker", "the whole log, no reset: {}", e.data);
        all.push(e.data["i"].as_i64().unwrap());
        if e.data["last"] == true {
            return all;
        }
    }
}
