//! The response sets shared by many endpoints: every problem+json answer an
//! endpoint can give is documented with its status and meaning.

use std::collections::BTreeMap;
use utoipa::IntoResponses;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
/// A problem+json response with this description.
fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
        )
        .build()
        .into()
}

fn problems(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter().map(|(status, desc)| ((*status).to_owned(), problem(desc))).collect()
}

const AUTH_PROBLEMS: &[(&str, &str)] = &[
    ("400", "Malformed JSON or a bad query string or path"),
    ("401", "Missing or invalid bearer token"),
    ("404", "No such endpoint or runtime"),
    ("405", "Method not allowed"),
];

/// A per-credential limit or the connect rate: every endpoint a client,
/// admin or user token calls can answer it.
const RATE_PROBLEM: (&str, &str) = (
    "429",
    "A limit was reached (`urn:letta-bridge:rate-limited`; `limit` names it: `commands`, the credential's requests per second, LETTA_BRIDGE_USER_RATE, LETTA_BRIDGE_CLIENT_RATE; `streams`, its open streams, LETTA_BRIDGE_USER_STREAMS, LETTA_BRIDGE_CLIENT_STREAMS; `connect`, this instance's new connections per second, LETTA_BRIDGE_CONNECT_RATE). Retry after `Retry-After` seconds",
);

/// The auth problems and the rate limits: what every client endpoint answers.
fn client_problems() -> BTreeMap<String, RefOr<Response>> {
    let mut map = problems(AUTH_PROBLEMS);
    map.extend(problems(&[RATE_PROBLEM]));
    map
}

/// Errors any command endpoint can answer.
pub struct CommandProblems;

impl IntoResponses for CommandProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut map = client_problems();
        map.extend(problems(&[
            ("403", "The command needs the admin token"),
            ("409", "Several runtimes are online and none was named (`candidates` lists them), the request_id is already awaited, or (wait=completion) the runtime did not accept the input (e.g. an approval it no longer waits for: `detail` names the approval request and quotes the runtime)"),
            ("413", "Body over the size limit"),
            ("415", "Content-Type is not JSON"),
            ("422", "Valid JSON of the wrong shape"),
            ("502", "The runtime disconnected before the command was written or answered, or (wait=completion) the turn ended with `stop_reason: \"error\"` (`type` urn:letta-bridge:turn-failed; the turn is under `turn`, with the runtime's `failure` report when it sent one; `Retry-After: 8` when that failure is `retryable`)"),
            ("503", "No runtime online, or its queue is full (see Retry-After)"),
            ("504", "The runtime did not answer (wait=true) or finish the turn (wait=completion) within timeout_ms, or its socket did not take the command within 15 s"),
        ]));
        map
    }
}

/// Errors a read endpoint with client auth can answer.
pub struct ReadProblems;

impl IntoResponses for ReadProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        client_problems()
    }
}

/// Errors the runtime's registration can answer: a read's, without the
/// per-credential limits and the connect rate (the runtime's paths are
/// exempt from both).
pub struct RuntimeProblems;

impl IntoResponses for RuntimeProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(AUTH_PROBLEMS)
    }
}

/// Errors `GET /turns/{id}` answers besides the turn's own: a read's, with
/// what its `404` means there.
pub struct TurnProblems;

impl IntoResponses for TurnProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut map = client_problems();
        map.extend(problems(&[(
            "404",
            "No turn with this id that the caller may read: unknown, past its retention, or another principal's",
        )]));
        map
    }
}

const UPGRADE_PROBLEM: (&str, &str) =
    ("426", "The connection cannot be upgraded to a WebSocket (a request that is no upgrade at all gets 400)");
const STREAM_LIMIT_PROBLEM: (&str, &str) =
    ("503", "LETTA_BRIDGE_MAX_STREAMS streams are open (`urn:letta-bridge:too-many-streams`; see Retry-After)");

/// Errors a stream (`GET /events`) can answer: a read's, and the stream limit.
pub struct StreamProblems;

impl IntoResponses for StreamProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut map = client_problems();
        map.extend(problems(&[STREAM_LIMIT_PROBLEM]));
        map
    }
}

/// Errors a runtime's WebSocket path can answer: a read's, and no upgrade.
pub struct UpgradeProblems;

impl IntoResponses for UpgradeProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut map = problems(AUTH_PROBLEMS);
        map.extend(problems(&[UPGRADE_PROBLEM]));
        map
    }
}

/// Errors a client's WebSocket path can answer: no upgrade, and the stream
/// limit (client sockets count as streams).
pub struct ClientSocketProblems;

impl IntoResponses for ClientSocketProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut map = client_problems();
        map.extend(problems(&[UPGRADE_PROBLEM, STREAM_LIMIT_PROBLEM]));
        map
    }
}
