//! The OpenAPI 3.1 document: info, auth schemes, and the response sets shared
//! by many endpoints (every problem+json answer is documented).

use std::collections::BTreeMap;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use axum::Router;
use axum::http::header;
use axum::routing::get;
use bytes::Bytes;

use super::Problem;
use crate::hub::HubStats;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "letta-bridge",
        description = "Drive a Letta Code runtime from plain HTTP: REST commands, an SSE event stream, and this document.\n\nClients authenticate with `Authorization: Bearer <client token>`; privileged commands need the admin token. The runtime itself connects to the WebSocket at `/ws` with the runtime token."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(Problem, HubStats)),
    tags(
        (name = "commands", description = "Send v2 commands to a runtime"),
        (name = "events", description = "The event stream (SSE)"),
        (name = "turns", description = "Turns that outlive a request: poll a `?wait=completion` turn answered `202`, list finished turns"),
        (name = "status", description = "Runtimes, health and readiness"),
        (name = "runtime", description = "Endpoints the Letta Code runtime itself calls"),
        (name = "letta", description = "Letta's own clients: the environments API, the relay socket and an App-Server socket")
    )
)]
/// The document's head: info, tags, security schemes.
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |desc: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(desc)).build())
        };
        components.add_security_scheme(
            "client",
            bearer("LETTA_BRIDGE_CLIENT_TOKEN (conversation commands) or LETTA_BRIDGE_ADMIN_TOKEN (everything)"),
        );
        components.add_security_scheme("runtime", bearer("LETTA_BRIDGE_RUNTIME_TOKEN (the runtime's LETTA_API_KEY)"));
        components.add_security_scheme(
            "ticket",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "ticket",
                "A single-use ticket from POST /tickets; GET /events only, and only without an Authorization header",
            ))),
        );
        components.add_security_scheme(
            "feed",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "feed",
                "A feed from POST /feeds (`fd_…`): GET /events only, and only without an Authorization header; within the feed's filter, until the feed is deleted",
            ))),
        );
    }
}

/// `/docs` (Swagger UI, every asset embedded in the binary; no validator
/// badge, which would load from the internet) and `/openapi.json`.
///
/// The document is serialised once, here, and the `OpenApi` tree dropped:
/// kept alive (as Swagger UI's own `/openapi.json` route keeps it) it held
/// ~2 MB of heap for a ~100 KB answer, most of the bridge's idle memory.
pub fn docs<S: Clone + Send + Sync + 'static>(api: utoipa::openapi::OpenApi) -> Router<S> {
    let json = Bytes::from(api.to_json().expect("the OpenAPI document serialises"));
    drop(api);
    let config =
        Config::new(["/openapi.json"]).validator_url("none").persist_authorization(false).try_it_out_enabled(true);
    Router::from(SwaggerUi::new("/docs").config(config)).route(
        "/openapi.json",
        get(move || {
            let json = json.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], json) }
        }),
    )
}

/// One server-sent event of `GET /events`, as SSE parsers see it: `data` is
/// a JSON string whose schema is one of the typed events or, for any other
/// type, the passthrough `RuntimeEvent`.
pub struct SseEvent;

/// Registers event `T` and what it references; returns its name.
fn register<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) -> String {
    let name = T::name().into_owned();
    schemas.push((name.clone(), T::schema()));
    T::schemas(schemas);
    name
}

/// Registers every event schema and the schemas they reference; returns the
/// events' names (the members of the `data` union).
fn event_schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) -> Vec<String> {
    use crate::protocol::events::*;
    vec![
        register::<RuntimeOnline>(schemas),
        register::<RuntimeOffline>(schemas),
        register::<Reset>(schemas),
        register::<Lagged>(schemas),
        register::<Reauth>(schemas),
        register::<StreamDelta>(schemas),
        register::<ApprovalRequestDelta>(schemas),
        register::<TurnFinished>(schemas),
        register::<InputAccepted>(schemas),
        register::<SyncResponse>(schemas),
        register::<AbortMessageResponse>(schemas),
        register::<ControlRequest>(schemas),
        register::<UpdateLoopStatus>(schemas),
        register::<UpdateDeviceStatus>(schemas),
        register::<UpdateQueue>(schemas),
        register::<UpdateSubagentState>(schemas),
        register::<RuntimeEvent>(schemas),
    ]
}

impl PartialSchema for SseEvent {
    fn schema() -> RefOr<Schema> {
        let mut any = AnyOfBuilder::new();
        for name in event_schemas(&mut Vec::new()) {
            any = any.item(Ref::from_schema_name(name));
        }
        let string = |desc: &str| ObjectBuilder::new().schema_type(Type::String).description(Some(desc)).build();
        let data = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The event as one line of JSON"))
            .content_media_type("application/json")
            .content_schema(Some(Schema::AnyOf(any.build())))
            .build();
        ObjectBuilder::new()
            .description(Some(
                "One server-sent event. `event` is the frame type; the bridge's own are `runtime_online`, `runtime_offline`, `reset` and `lagged`. The stream opens with a `retry:` field and sends `:` comments as keepalives.",
            ))
            .property("id", string("`<epoch>-<seq>`; resume with `Last-Event-ID`"))
            .property("event", string("The event type"))
            .property("retry", ObjectBuilder::new().schema_type(Type::Integer).description(Some("Reconnect delay in ms")))
            .property("data", data)
            .into()
    }
}

impl ToSchema for SseEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        event_schemas(schemas);
    }
}

/// Rules the derived schemas cannot state, added to the merged document.
pub fn refine(api: &mut utoipa::openapi::OpenApi) {
    routed_twins(api);
    let Some(components) = api.components.as_mut() else { return };
    // An approval answer carries exactly one of `decision` and `error` that
    // is not null (null counts as absent).
    if let Some(base) = components.schemas.remove("ApprovalResponse") {
        let needs = |field: &str, kind: Type| {
            ObjectBuilder::new().required(field).property(field, ObjectBuilder::new().schema_type(kind)).build()
        };
        let exactly_one =
            OneOfBuilder::new().item(needs("decision", Type::Object)).item(needs("error", Type::String)).build();
        let refined = AllOfBuilder::new().item(base).item(Schema::OneOf(exactly_one)).build();
        components.schemas.insert("ApprovalResponse".into(), Schema::AllOf(refined).into());
    }
}

/// The command endpoints (and their operation names) that are also served
/// under `/runtimes/{id}` (see `commands::routes`).
const ROUTED_COMMANDS: &[(&str, &str)] =
    &[("/input", "input"), ("/sync", "sync"), ("/abort", "abort"), ("/approval", "approval"), ("/commands", "command")];

/// Documents `/runtimes/{id}/<command>` from `/<command>`: the same handler
/// serves both, with the runtime named in the path instead of `?runtime=`.
fn routed_twins(api: &mut utoipa::openapi::OpenApi) {
    for (path, name) in ROUTED_COMMANDS {
        let Some(item) = api.paths.paths.get(*path) else { continue };
        let mut item = item.clone();
        if let Some(op) = item.post.as_mut() {
            op.operation_id = Some(format!("post_runtime_{name}"));
            op.summary = op.summary.take().map(|s| format!("{s} To the runtime named in the path."));
            let mut params = vec![RefOr::T(
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some("Runtime id (its deviceId)"))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            )];
            let query = op.parameters.take().unwrap_or_default();
            params.extend(query.into_iter().filter(|p| !matches!(p, RefOr::T(p) if p.name == "runtime")));
            op.parameters = Some(params);
        }
        api.paths.paths.insert(format!("/runtimes/{{id}}{path}"), item);
    }
}

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

/// Errors any command endpoint can answer.
pub struct CommandProblems;

impl IntoResponses for CommandProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut map = problems(AUTH_PROBLEMS);
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
        problems(AUTH_PROBLEMS)
    }
}

/// Errors `GET /turns/{id}` answers besides the turn's own: a read's, with
/// what its `404` means there.
pub struct TurnProblems;

impl IntoResponses for TurnProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut map = problems(AUTH_PROBLEMS);
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
        let mut map = problems(AUTH_PROBLEMS);
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
        let mut map = problems(AUTH_PROBLEMS);
        map.extend(problems(&[UPGRADE_PROBLEM, STREAM_LIMIT_PROBLEM]));
        map
    }
}
