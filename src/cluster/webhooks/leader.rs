//! The webhooks leader: the one instance of the cluster that reads the
//! shared log for webhooks and delivers them. Every instance tries to take
//! the lease (`wh-lease`, a TTL key of LETTA_BRIDGE_NODE_TTL, renewed every
//! third of it); the holder reads its mirror of the log from the cursor in
//! Redis (`wh-cursor`), queues each event's deliveries for the hooks it
//! matches in one fenced script call per batch (which moves the cursor
//! too), and runs one delivery task per hook ([`super::deliver`]). A
//! leader that cannot renew (another holds the lease, or Redis failed for
//! half the TTL) stops leading; its writes are fenced already. So a dead
//! leader's work is taken over within one TTL plus a third.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::super::Node;
use super::super::engine::Lua;
use super::records::{DeliveryRecord, HookRecord};
use super::{RedisWebhooks, deliver};
use crate::hub::{Gap, Next, Start};
use crate::protocol::UserPrincipal;
use crate::protocol::turn::Flats;
use crate::store::{RevocationStore, unix_now};
use crate::webhooks::dispatch::{Subscriber, deliveries};
use crate::webhooks::worker::count_dropped;
use crate::webhooks::{MAX_PENDING, MAX_RECORDED, Settings, Status};

/// How often hooks are looked up again when no event comes (new hooks get
/// their task, deleted ones lose it).
const RESYNC: Duration = Duration::from_secs(1);

/// What a leader's tasks share.
pub(super) struct Term {
    pub node: Arc<Node>,
    /// `<node>:<random>`: what the lease holds, and what fences every write.
    pub holder: String,
    pub settings: Arc<Settings>,
    pub revocations: Arc<dyn RevocationStore>,
    /// Cancelled when this instance stops leading.
    pub end: CancellationToken,
}

/// Tries to lead until the instance leaves the cluster.
pub(in crate::backend::cluster) async fn run(
    node: Arc<Node>,
    settings: Arc<Settings>,
    revocations: Arc<dyn RevocationStore>,
) {
    let holder = format!("{}:{}", node.id, &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ttl = node.settings.node_ttl;
    let mut loaded = node.loaded.subscribe();
    tokio::select! {
        _ = loaded.wait_for(|l| *l) => {}
        () = node.stop.cancelled() => return,
    }
    loop {
        if let Ok(1) = lease(&node, &holder, ttl).await {
            tracing::info!(node = %node.id, "this instance leads the cluster's webhooks");
            let term = Arc::new(Term {
                node: node.clone(),
                holder: holder.clone(),
                settings: settings.clone(),
                revocations: revocations.clone(),
                end: node.stop.child_token(),
            });
            lead(term).await;
            tracing::info!(node = %node.id, "this instance no longer leads the cluster's webhooks");
        }
        tokio::select! {
            () = node.stop.cancelled() => break,
            () = tokio::time::sleep(ttl / 3) => {}
        }
    }
    let release = node.engine.script(Lua::Webhooks, "release").arg(&holder);
    let _: Result<i64, _> = release.run().await;
}

async fn lease(node: &Node, holder: &str, ttl: Duration) -> Result<i64, redis::RedisError> {
    node.engine.script(Lua::Webhooks, "lease").arg(holder).arg(ttl.as_millis().max(1) as u64).run().await
}

/// Leads until the lease is lost or the instance leaves.
async fn lead(term: Arc<Term>) {
    let tasks = TaskTracker::new();
    tasks.spawn(renew(term.clone()));
    let mut workers: HashMap<String, (CancellationToken, Arc<Notify>)> = HashMap::new();
    read(&term, &tasks, &mut workers).await;
    term.end.cancel();
    tasks.close();
    tasks.wait().await;
}

/// Renews the lease every third of the TTL; ends the term when it is lost.
async fn renew(term: Arc<Term>) {
    let ttl = term.node.settings.node_ttl;
    let mut failing_since = None;
    loop {
        tokio::select! {
            () = term.end.cancelled() => return,
            () = tokio::time::sleep(ttl / 3) => {}
        }
        match lease(&term.node, &term.holder, ttl).await {
            Ok(1) => failing_since = None,
            Ok(_) => break,
            Err(e) => {
                tracing::debug!(error = %e, "could not renew the webhooks lease");
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= ttl / 2 {
                    break;
                }
            }
        }
    }
    term.end.cancel();
}

/// Reads the mirror from the cursor in Redis and queues deliveries, until the term ends.
async fn read(term: &Arc<Term>, tasks: &TaskTracker, workers: &mut HashMap<String, (CancellationToken, Arc<Notify>)>) {
    let node = &term.node;
    let cursor: (Option<String>, Option<u64>) =
        match node.engine.run(redis::cmd("HMGET").arg(node.engine.key("wh-cursor")).arg("epoch").arg("seq")).await {
            Ok(c) => c,
            Err(_) => return,
        };
    let epoch = node.hub.epoch();
    let stats = node.hub.stats();
    let seq_of = |id: &str| id.rsplit_once('-').and_then(|(_, s)| s.parse().ok());
    let last = seq_of(&stats.cursor).unwrap_or(0);
    let oldest = stats.replay_oldest.as_deref().and_then(seq_of);
    let (from, mut done) = start_at((cursor.0.as_deref(), cursor.1), &epoch, last, oldest);
    if from > done {
        let missed = from - done;
        tracing::warn!(missed, "the log no longer holds these events since the last webhooks leader: not delivered");
    }
    let start = format!("{epoch}-{from}");
    let (mut reader, reset) = node.hub.subscribe(Start::After(&start));
    if let Some(reset) = reset {
        // The ring moved on since it was looked at: from its newest event on.
        tracing::warn!(?reset, "the webhooks leader starts from the newest event: the ones before are not delivered");
        done = done.max(reset.resume_after);
    }
    let mut flats = Flats::default();
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        let next = tokio::select! {
            () = term.end.cancelled() => return,
            _ = resync.tick() => {
                if sync(term, tasks, workers).await.is_err() { return }
                continue;
            }
            next = reader.next() => next,
        };
        match next {
            Next::Events => {
                let batch: Vec<_> = reader.batch().drain(..).collect();
                let Ok(hooks) = sync(term, tasks, workers).await else { return };
                let users: Vec<Option<UserPrincipal>> = hooks.iter().map(HookRecord::user).collect();
                let subscribers: Vec<Subscriber<'_>> = hooks
                    .iter()
                    .zip(&users)
                    .map(|(h, u)| Subscriber { events: &h.events, filter: &h.filter, user: u.as_ref(), revoked: false })
                    .collect();
                let now = unix_now();
                let mut queued_args: Vec<String> = Vec::new();
                let mut woken = Vec::new();
                let last = batch.last().map_or(done, |e| e.seq);
                for event in &batch {
                    let readers = if event.seq <= done { &[][..] } else { &subscribers[..] };
                    for queued in deliveries(|| node.hub.event_id(event.seq), event, readers, &mut flats, now) {
                        let hook = &hooks[queued.index];
                        let record = DeliveryRecord {
                            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
                            event_type: queued.kind,
                            status: Status::Pending,
                            attempts: 0,
                            last_status: None,
                            last_error: None,
                            created_at: now,
                            body: String::from_utf8_lossy(&queued.body).into_owned(),
                            next_at: 0,
                        };
                        queued_args.extend([hook.id.clone(), record.id.clone(), record.to_json()]);
                        woken.push(hook.id.clone());
                    }
                }
                if last > done {
                    let call = node.engine.script(Lua::Webhooks, "enqueue").arg(&term.holder).arg(&*epoch);
                    let call = call.arg(last).arg(MAX_PENDING).arg(MAX_RECORDED).arg(queued_args);
                    match call.run::<u64>().await {
                        Ok(dropped) => count_dropped(dropped),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not queue webhook deliveries; leading again from the cursor");
                            return;
                        }
                    }
                    done = last;
                }
                for id in woken {
                    if let Some((_, wake)) = workers.get(&id) {
                        wake.notify_one();
                    }
                }
            }
            Next::Gap(Gap::Lagged { missed, .. }) => {
                tracing::warn!(missed, "the webhooks leader fell behind the event log: these events are not delivered");
            }
            // The shared log lost its data: the cursor starts again in the new epoch.
            Next::Gap(Gap::Rebased { .. }) => return,
        }
    }
}

/// Where a new leader reads its mirror, `(from, done)`: it reads the ring
/// after seq `from` and queues deliveries only for events after `done` —
/// the cursor in Redis (`epoch`, `seq`) when it is of the mirror's
/// `epoch`, else (no cursor yet, or a log that lost its data) the newest
/// event `last`. It reads from the ring's `oldest` event on, so that a turn
/// under way when the last leader stopped is assembled whole
/// (`turn.finished`'s text); events up to `done` only feed the turns. When
/// `from` is past `done`, the events between left the log unread.
fn start_at(cursor: (Option<&str>, Option<u64>), epoch: &str, last: u64, oldest: Option<u64>) -> (u64, u64) {
    let done = match cursor {
        (Some(e), Some(seq)) if e == epoch => seq,
        _ => last,
    };
    (oldest.map_or(last, |o| o.saturating_sub(1)), done)
}

/// The hooks now, with a delivery task for each (and none for deleted ones).
async fn sync(
    term: &Arc<Term>,
    tasks: &TaskTracker,
    workers: &mut HashMap<String, (CancellationToken, Arc<Notify>)>,
) -> Result<Vec<HookRecord>, redis::RedisError> {
    let hooks = RedisWebhooks::all(&term.node).await.inspect_err(|e| {
        tracing::warn!(error = %e, "could not read the cluster's webhooks");
    })?;
    workers.retain(|id, (stop, _)| {
        let keep = hooks.iter().any(|(h, _, _)| h.id == *id);
        if !keep {
            stop.cancel();
        }
        keep
    });
    for (hook, _, _) in &hooks {
        if !workers.contains_key(&hook.id) {
            let (stop, wake) = (term.end.child_token(), Arc::new(Notify::new()));
            workers.insert(hook.id.clone(), (stop.clone(), wake.clone()));
            tasks.spawn(deliver::run(term.clone(), hook.clone(), wake, stop));
        }
    }
    Ok(hooks.into_iter().filter(|(_, off, _)| off.is_none()).map(|(h, _, _)| h).collect())
}

#[cfg(test)]
mod tests {
    use super::start_at;

    #[test]
    fn a_new_leader_reads_the_whole_ring_and_queues_only_after_the_cursor() {
        assert_eq!(start_at((Some("ep"), Some(40)), "ep", 50, Some(10)), (9, 40));
        assert_eq!(start_at((Some("ep"), Some(40)), "ep", 40, None), (40, 40), "an empty ring");
    }

    #[test]
    fn a_cursor_of_another_epoch_or_none_starts_at_the_newest_event() {
        assert_eq!(start_at((Some("old"), Some(40)), "ep", 50, Some(10)), (9, 50));
        assert_eq!(start_at((None, None), "ep", 50, Some(10)), (9, 50));
        assert_eq!(start_at((None, None), "ep", 0, None), (0, 0), "a log without events");
    }

    #[test]
    fn a_cursor_the_ring_left_behind_reads_what_the_ring_still_holds() {
        assert_eq!(start_at((Some("ep"), Some(5)), "ep", 50, Some(10)), (9, 5), "6 to 9 are gone, 10 to 50 queued");
        assert_eq!(start_at((Some("ep"), Some(5)), "ep", 50, None), (50, 5), "all aged out");
    }
}
