//! `GET /v1/models` and `GET /v1/models/{model}`: the agents the bridge has
//! seen on its runtimes (an event of the runtime named them), as OpenAI
//! `model` objects, each owned by the runtime it was first seen on (an
//! online one first). An end user sees only the agents a grant lets them
//! send to.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ErrorBody, OpenAiError};
use crate::http::extract::Client;
use crate::http::{ApiError, AppState};
use crate::protocol::Role;

/// The agents, as OpenAI lists models.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    /// One per agent.
    pub data: Vec<Model>,
}

/// An agent, as OpenAI describes a model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Model {
    /// The agent id: the `model` of a chat completion.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds: when the bridge started (it keeps no agent's age).
    pub created: u64,
    /// The runtime the agent was seen on (an online one, when any is).
    pub owned_by: String,
}

/// The agents the bridge has seen, as OpenAI models.
#[utoipa::path(get, path = "/v1/models", tag = "openai", security(("client" = [])),
    responses((status = 200, description = "The agents the caller may send to", body = ModelList),
              (status = 401, description = "A missing or wrong API key", body = ErrorBody),
              (status = 429, description = "A per-credential limit was reached (`rate_limited`: LETTA_BRIDGE_USER_RATE, LETTA_BRIDGE_CLIENT_RATE) or the connect rate; retry after `Retry-After` seconds", body = ErrorBody)))]
pub(super) async fn list_models(
    State(state): State<AppState>,
    client: Result<Client, ApiError>,
) -> Result<Json<ModelList>, OpenAiError> {
    let Client(role) = client?;
    Ok(Json(ModelList { object: "list", data: models(&state, &role) }))
}

/// One agent, as an OpenAI model.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "openai", security(("client" = [])),
    params(("model" = String, Path, description = "The agent id")),
    responses((status = 200, description = "The agent", body = Model),
              (status = 401, description = "A missing or wrong API key", body = ErrorBody),
              (status = 429, description = "A per-credential limit was reached (`rate_limited`: LETTA_BRIDGE_USER_RATE, LETTA_BRIDGE_CLIENT_RATE) or the connect rate; retry after `Retry-After` seconds", body = ErrorBody),
              (status = 404, description = "An agent the bridge has not seen, or the caller may not send to (`model_not_found`)", body = ErrorBody)))]
pub(super) async fn get_model(
    State(state): State<AppState>,
    client: Result<Client, ApiError>,
    Path(model): Path<String>,
) -> Result<Json<Model>, OpenAiError> {
    let Client(role) = client?;
    let found = models(&state, &role).into_iter().find(|m| m.id == model);
    let unknown = || OpenAiError::new(StatusCode::NOT_FOUND, "model_not_found", format!("no agent {model:?} seen"));
    found.map(Json).ok_or_else(|| unknown().param("model"))
}

/// The agents `role` may send to, once each, in the order first seen by runtime.
fn models(state: &AppState, role: &Role) -> Vec<Model> {
    let created = super::chat::unix_secs().saturating_sub(state.settings.started.elapsed().as_secs());
    let mut seen = state.runtimes.scopes_seen();
    // Online runtimes first (a stable sort keeps each runtime's order).
    seen.sort_by_key(|k| !k.online);
    let mut models: Vec<Model> = Vec::new();
    for known in seen {
        let Some(agent) = known.scope.agent_id.as_deref() else { continue };
        if models.iter().any(|m| m.id == agent)
            || !role.sends_to(&known.runtime_id, agent, &known.scope.conversation_id)
        {
            continue;
        }
        models.push(Model { id: agent.to_owned(), object: "model", created, owned_by: known.runtime_id });
    }
    models
}
