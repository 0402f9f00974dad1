//! Every metric the bridge records: its name and its description, in one
//! place. The parts of the bridge record their own metrics with these
//! names; `GET /metrics` (`http::metrics`) serves them; [`describe`] gives
//! each its help text once, at start. docs/operations.md lists them for
//! operators. Nothing here imports from the crate.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

// The service (read from state at scrape time unless said otherwise).
/// Runtimes with an open, answering socket (gauge).
pub const RUNTIMES_ONLINE: &str = "letta_bridge_runtimes_online";
/// Runtime connections accepted (counter).
pub const RUNTIME_CONNECTS: &str = "letta_bridge_runtime_connects_total";
/// Runtime socket tasks running (gauge).
pub const RUNTIME_TASKS: &str = "letta_bridge_runtime_tasks";
/// Commands awaiting their reply or the end of their turn (gauge).
pub const PENDING_REPLIES: &str = "letta_bridge_pending_replies";
/// Commands by type and HTTP status (counter, recorded per command).
pub const COMMANDS: &str = "letta_bridge_commands_total";
/// HTTP latency to the response head (histogram, recorded per request).
pub const REQUEST_SECONDS: &str = "letta_bridge_http_request_duration_seconds";

// The event log and its readers.
/// Events published to the hub (counter).
pub const EVENTS_PUBLISHED: &str = "letta_bridge_events_published_total";
/// Open event streams (gauge).
pub const SSE_SUBSCRIBERS: &str = "letta_bridge_sse_subscribers";
/// Events held in the replay ring (gauge).
pub const REPLAY_EVENTS: &str = "letta_bridge_replay_events";
/// Bytes held in the replay ring (gauge).
pub const REPLAY_BYTES: &str = "letta_bridge_replay_bytes";
/// Event streams resumed from the replay ring (counter).
pub const REPLAY_HITS: &str = "letta_bridge_replay_hits_total";
/// Resume cursors answered with `reset`, by reason (counter).
pub const RESETS: &str = "letta_bridge_resets_total";
/// `lagged` signals (counter).
pub const LAGGED: &str = "letta_bridge_lagged_total";

// Connections and limits.
/// Requests refused with `503` at a limit, by reason (counter).
pub const REFUSED: &str = "letta_bridge_refused_total";
/// Requests refused with `429` at a per-credential or connect-rate limit,
/// by reason: `commands`, `streams`, `connect` (counter).
pub const RATE_LIMITED: &str = "letta_bridge_rate_limited_total";
/// Failed accepts (counter).
pub const ACCEPT_ERRORS: &str = "letta_bridge_accept_errors_total";
/// New connections closed at once at the cap (counter).
pub const CONNECTIONS_REFUSED: &str = "letta_bridge_connections_refused_total";
/// Connections the listener closed, by reason (counter).
pub const CONNECTIONS_CLOSED: &str = "letta_bridge_connections_closed_total";

// Letta's own clients.
/// Open client sockets, by kind (gauge).
pub const CLIENT_SOCKETS: &str = "letta_bridge_client_sockets";
/// Frames received from Letta's clients, by socket kind (counter).
pub const CLIENT_FRAMES_IN: &str = "letta_bridge_client_frames_in_total";
/// Frames sent to Letta's clients, by socket kind (counter).
pub const CLIENT_FRAMES_OUT: &str = "letta_bridge_client_frames_out_total";

// Webhooks.
/// Webhook deliveries by outcome: delivered, failed, dropped (counter).
pub const WEBHOOK_DELIVERIES: &str = "letta_bridge_webhook_deliveries_total";
/// Webhooks disabled, by reason: gone (410), failing, expired, revoked (counter).
pub const WEBHOOKS_DISABLED: &str = "letta_bridge_webhooks_disabled_total";

// Cluster mode.
/// Redis round trip of the cluster's calls (histogram).
pub const ENGINE_ROUND_TRIP: &str = "letta_bridge_engine_round_trip_seconds";
/// Redis calls that failed because Redis did not answer or refused a write (counter).
pub const ENGINE_ERRORS: &str = "letta_bridge_engine_errors_total";
/// Times this instance followed the primary to another node (Sentinel) (counter).
pub const ENGINE_FAILOVERS: &str = "letta_bridge_engine_failovers_total";
/// From a local event to its being visible in the mirror (histogram).
pub const APPEND_VISIBLE: &str = "letta_bridge_append_visible_seconds";
/// Events waiting to be appended (gauge).
pub const APPEND_QUEUE: &str = "letta_bridge_append_queue";
/// Events dropped because the append queue was full (counter).
pub const APPEND_DROPPED: &str = "letta_bridge_append_dropped_total";
/// Appends refused because another holder has the runtime (counter).
pub const APPEND_FENCED: &str = "letta_bridge_append_fenced_total";
/// Commands forwarded to the instance holding their runtime (counter).
pub const FORWARDED: &str = "letta_bridge_forwarded_commands_total";
/// Instances holding a lease (gauge).
pub const INSTANCES: &str = "letta_bridge_instances_alive";
/// Lost instances whose runtimes were marked offline (counter).
pub const INSTANCES_REAPED: &str = "letta_bridge_instances_reaped_total";
/// Times the shared log started again under a new epoch (counter).
pub const EPOCH_CHANGES: &str = "letta_bridge_epoch_changes_total";

/// Describes every metric to the installed recorder (once, at start).
pub fn describe() {
    describe_gauge!(RUNTIMES_ONLINE, "Runtimes with an open, answering socket");
    describe_counter!(RUNTIME_CONNECTS, "Runtime connections accepted");
    describe_gauge!(RUNTIME_TASKS, "Runtime socket tasks running");
    describe_gauge!(
        PENDING_REPLIES,
        "Commands awaiting their reply (wait=true) or the end of their turn (wait=completion)"
    );
    describe_counter!(COMMANDS, "Commands by type (conversation types by name, else other) and HTTP status");
    describe_histogram!(REQUEST_SECONDS, Unit::Seconds, "HTTP latency to the response head, by route");
    describe_counter!(EVENTS_PUBLISHED, "Events published to the hub");
    describe_gauge!(SSE_SUBSCRIBERS, "Open event streams");
    describe_gauge!(REPLAY_EVENTS, "Events held in the replay ring");
    describe_gauge!(REPLAY_BYTES, "Bytes held in the replay ring");
    describe_counter!(REPLAY_HITS, "Event streams resumed from the replay ring");
    describe_counter!(RESETS, "Event streams whose resume cursor got a reset, by reason");
    describe_counter!(LAGGED, "Lagged signals: a subscriber was overtaken by the ring");
    describe_counter!(REFUSED, "Requests refused with 503 at a limit, by reason (streams, connections)");
    describe_counter!(
        RATE_LIMITED,
        "Requests refused with 429 at a per-credential limit or the connect rate, by reason (commands, streams, connect)"
    );
    describe_counter!(ACCEPT_ERRORS, "Failed accepts (e.g. out of file descriptors)");
    describe_counter!(CONNECTIONS_REFUSED, "New connections closed at once, unparsed, at the cap while all were busy");
    describe_counter!(
        CONNECTIONS_CLOSED,
        "Connections the listener closed, by reason (header_timeout, idle_timeout, write_stalled, evicted)"
    );
    describe_gauge!(CLIENT_SOCKETS, "Open client sockets of Letta's clients, by kind (relay, app_server)");
    describe_counter!(CLIENT_FRAMES_IN, "Frames received from Letta's clients, by socket kind");
    describe_counter!(CLIENT_FRAMES_OUT, "Frames sent to Letta's clients, by socket kind");
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook deliveries by outcome (delivered; failed: the whole schedule or a 410; dropped: the oldest pending, at a full queue)"
    );
    describe_counter!(
        WEBHOOKS_DISABLED,
        "Webhooks disabled, by reason (gone: a 410; failing: the whole schedule; expired, revoked: the end user's token)"
    );
}

/// Describes the cluster's metrics (cluster mode only: they are absent
/// from an embedded bridge's `/metrics`).
pub fn describe_cluster() {
    describe_histogram!(ENGINE_ROUND_TRIP, Unit::Seconds, "Redis round trip of the cluster's calls");
    describe_counter!(
        ENGINE_ERRORS,
        "Redis calls that failed because Redis did not answer or refused a write (READONLY, NOREPLICAS)"
    );
    describe_counter!(
        ENGINE_FAILOVERS,
        "Times this instance followed the cluster's primary to another node (Sentinel)"
    );
    describe_histogram!(
        APPEND_VISIBLE,
        Unit::Seconds,
        "From a local runtime's event to its being visible in this instance's mirror"
    );
    describe_gauge!(APPEND_QUEUE, "Events waiting to be appended to the shared log");
    describe_counter!(APPEND_DROPPED, "Events dropped because the append queue was full");
    describe_counter!(APPEND_FENCED, "Appends refused because another instance or connection holds the runtime");
    describe_counter!(FORWARDED, "Commands sent to the instance holding their runtime, by outcome");
    describe_gauge!(INSTANCES, "Bridge instances holding a lease");
    describe_counter!(INSTANCES_REAPED, "Lost instances whose runtimes were marked offline");
    describe_counter!(EPOCH_CHANGES, "Times the shared log started again under a new epoch (data loss)");
}
