//! Stream tickets and idempotency keys hold across instances, within limits applied in Redis.

use serde_json::Value;

use crate::harness::{Cluster, authed, input, online_on};

#[tokio::test]
async fn a_ticket_issued_on_one_instance_serves_one_stream_at_a_time_on_any_instance() {
    let Some(cluster) = Cluster::start("tickets_across", 3) else { return };
    let res = authed(cluster.at(1).http.post(cluster.at(1).url("/tickets"))).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let ticket: Value = res.json().await.unwrap();
    let ticket = ticket["ticket"].as_str().unwrap();
    let open = |i: usize| cluster.at(i).http.get(cluster.at(i).url(&format!("/events?ticket={ticket}"))).send();
    let first = open(2).await.unwrap();
    assert_eq!(first.status(), 200);
    let mut first = letta_bridge_testkit::Sse::new(first).waiting(crate::harness::WAIT);
    // A reconnect landing on another instance takes the ticket over.
    let again = open(3).await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(first.ends().await, "the earlier stream, on another instance, ends");
    let made_up = cluster.at(1).http.get(cluster.at(1).url("/events?ticket=tk_made_up")).send().await.unwrap();
    assert_eq!(made_up.status(), 401);
}

#[tokio::test]
async fn an_idempotency_key_replays_on_another_instance_and_concurrent_uses_run_once() {
    let Some(cluster) = Cluster::start("idempotency_across", 3) else { return };
    let mut on2 = cluster.events(2, "").await;
    let mut rt = cluster.runtime(1, "dev-idem").await;
    online_on(&mut [&mut on2], "dev-idem").await;
    let post = |i: usize, key: &str, text: &str| {
        let b = cluster.at(i);
        authed(b.http.post(b.url("/input?wait=true"))).header("Idempotency-Key", key).json(&input(text)).send()
    };

    let first = post(2, "key-1", "once").await.unwrap();
    assert_eq!(first.status(), 200);
    let first_body = first.text().await.unwrap();
    let replay = post(3, "key-1", "once").await.unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.unwrap(), first_body);
    assert_eq!(post(3, "key-1", "another body").await.unwrap().status(), 422);

    let (a, b) = tokio::join!(post(2, "key-2", "concurrent"), post(3, "key-2", "concurrent"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let replayed = [&a, &b].iter().filter(|r| r.headers().contains_key("idempotent-replayed")).count();
    assert_eq!(replayed, 1, "one ran, one was replayed");
    // The runtime got exactly two inputs: `once` and one `concurrent`.
    let texts: Vec<Value> = vec![rt.next_frame().await, rt.next_frame().await];
    let texts: Vec<&str> = texts.iter().map(|f| f["payload"]["messages"][0]["content"].as_str().unwrap()).collect();
    assert_eq!(texts, ["once", "concurrent"]);
    let marker = serde_json::json!({"type": "sync", "runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"}});
    cluster.at(2).post("/commands", &marker).await;
    assert_eq!(rt.next_frame().await["type"], "sync", "no second `concurrent` input came before this sync");
}

/// How many of the cluster's Redis keys match `pattern` (e.g. `idem:*`).
fn count_keys(cluster: &Cluster, pattern: &str) -> usize {
    let reply =
        cluster.redis.command(&format!("EVAL \"return #redis.call('KEYS', ARGV[1])\" 0 {}", cluster.key(pattern)));
    reply.trim().trim_start_matches(':').parse().unwrap_or_else(|_| panic!("a count, not {reply:?}"))
}

#[tokio::test]
async fn the_idempotency_key_limit_holds_across_the_cluster_and_the_oldest_keys_go_first() {
    let Some(cluster) =
        Cluster::start_args("idempotency_limit", 3, crate::harness::NODE_TTL, &["--idempotency-keys", "100"])
    else {
        return;
    };
    let (mut on2, mut on3) = (cluster.events(2, "").await, cluster.events(3, "").await);
    let mut rt = cluster.runtime(1, "dev-idem").await;
    online_on(&mut [&mut on2, &mut on3], "dev-idem").await;
    let post = |i: usize, key: String| {
        let b = cluster.at(i);
        authed(b.http.post(b.url("/input"))).header("Idempotency-Key", key).json(&input("limited")).send()
    };
    for k in 0..300 {
        let res = post(1 + k % 3, format!("key-{k}")).await.unwrap();
        assert_eq!(res.status(), 202, "key-{k}");
        rt.next_frame().await;
    }
    let remembered = count_keys(&cluster, "idem:*");
    assert!(remembered <= 100, "{remembered} keys remembered against a limit of 100");
    assert_eq!(cluster.redis.command(&format!("ZCARD {}", cluster.key("idem-keys"))).trim(), ":100", "the index too");
    let newest = post(2, "key-299".into()).await.unwrap();
    assert_eq!(newest.headers().get("idempotent-replayed").map(|v| v.as_bytes()), Some(&b"true"[..]));
    let oldest = post(3, "key-0".into()).await.unwrap();
    assert_eq!(oldest.status(), 202);
    assert!(!oldest.headers().contains_key("idempotent-replayed"), "the oldest key was forgotten first");
}

#[tokio::test]
async fn tickets_stop_at_their_limit_across_the_cluster_the_soonest_to_expire_going_first() {
    use futures_util::StreamExt;
    let Some(cluster) = Cluster::start("tickets_limit", 3) else { return };
    let issue = |i: usize| issue_ticket(&cluster, i);
    let first = issue(1).await;
    let issued = letta_bridge::store::MAX_TICKETS + 50;
    futures_util::stream::iter(1..issued).map(|n| issue(1 + n % 3)).buffer_unordered(32).collect::<Vec<_>>().await;
    let last = issue(2).await;
    let held = count_keys(&cluster, "ticket:*");
    assert!(held <= letta_bridge::store::MAX_TICKETS, "{held} tickets against a limit of 10,000");
    let open =
        |i: usize, ticket: &str| cluster.at(i).http.get(cluster.at(i).url(&format!("/events?ticket={ticket}"))).send();
    assert_eq!(open(3, &first).await.unwrap().status(), 401, "the first ticket issued went first");
    assert_eq!(open(3, &last).await.unwrap().status(), 200);
}

/// A ticket from `POST /tickets` on instance `i`.
async fn issue_ticket(cluster: &Cluster, i: usize) -> String {
    let b = cluster.at(i);
    let res = authed(b.http.post(b.url("/tickets"))).send().await.unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned()
}
