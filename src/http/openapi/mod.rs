//! The OpenAPI 3.1 document: its head (info, tags, auth schemes) and the
//! rules the derived schemas cannot state; the shapes importers need
//! ([`shapes`]), its Swagger 2.0 rendering ([`swagger2`]) and how both are
//! served ([`served`]).

mod events;
mod problems;
mod served;
mod shapes;
mod swagger2;

pub use events::SseEvent;
pub use problems::{
    ClientSocketProblems, CommandProblems, ReadProblems, RuntimeProblems, StreamProblems, TurnProblems, UpgradeProblems,
};
pub use served::docs;

use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Required};
use utoipa::{Modify, OpenApi};

use super::Problem;
use crate::hub::HubStats;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "letta-bridge",
        description = "Drive a Letta Code runtime from plain HTTP: REST commands, an SSE event stream, and this document.\n\nClients authenticate with `Authorization: Bearer <client token>`; privileged commands need the admin token. The runtime itself connects to the WebSocket at `/ws` with the runtime token."
    ),
    modifiers(&SecuritySchemes),
    paths(served::get_openapi),
    components(schemas(Problem, HubStats)),
    tags(
        (name = "commands", description = "Send v2 commands to a runtime"),
        (name = "events", description = "The event stream (SSE)"),
        (name = "turns", description = "Turns that outlive a request: poll a `?wait=completion` turn answered `202`, list finished turns"),
        (name = "webhooks", description = "Events posted to your URL, signed to Standard Webhooks v1 (embedded mode)"),
        (name = "status", description = "Runtimes, health and readiness"),
        (name = "runtime", description = "Endpoints the Letta Code runtime itself calls"),
        (name = "letta", description = "Letta's own clients: the environments API, the relay socket and an App-Server socket"),
        (name = "openai", description = "OpenAI-compatible: Chat Completions, Responses and models, with the agent id as the model (docs/openai.md)"),
        (name = "docs", description = "This document, in OpenAPI 3.1 or Swagger 2.0")
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
/// What the derived paths cannot state, added to the merged document (the
/// rules the derived schemas cannot state are [`shapes`]' business).
pub fn refine(api: &mut utoipa::openapi::OpenApi) {
    routed_twins(api);
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
