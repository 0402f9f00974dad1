//! `POST /webhooks`, `GET /webhooks`, `DELETE /webhooks/{id}`, `GET
//! /webhooks/{id}/deliveries`, `POST /webhooks/{id}/deliveries/{delivery_id}/retry`:
//! hooks the bridge posts events to, signed to Standard Webhooks v1. Who
//! may make and manage them is decided in one place
//! ([`Role::makes_webhooks`], [`Role::manages_webhook`]); how they deliver,
//! in [`crate::webhooks`] (embedded mode) or the cluster's hooks in Redis,
//! behind one seam ([`WebhookStore`]). The secret is answered once.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiPath, Client, JsonBody};
use super::openapi::ReadProblems;
use super::{ApiError, AppState};
use crate::protocol::Role;
use crate::protocol::access::grants::MAX_ID_LEN;
use crate::webhooks::{Delivery, HookFilter, HookInfo, MakeError, NewHook, Redelivery, WebhookStore};

/// Longest `url`, in bytes.
const MAX_URL_BYTES: usize = 2048;
/// Most event types of one hook.
const MAX_EVENTS: usize = 64;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_webhook, get_webhooks))
        .routes(routes!(delete_webhook))
        .routes(routes!(get_deliveries))
        .routes(routes!(retry_delivery))
}

/// A webhook to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where to POST, `http://` or `https://`. Hosts resolving to private,
    /// loopback or link-local addresses are refused unless
    /// LETTA_BRIDGE_WEBHOOK_ALLOW lists them.
    #[schema(example = "https://hooks.example.com/letta")]
    pub url: String,
    /// The event types to receive: `turn.finished`, `approval.requested`,
    /// or any event type of `GET /events` (e.g. `turn_finished`).
    #[schema(example = json!(["turn.finished", "approval.requested"]))]
    pub events: Vec<String>,
    /// Which events of those types; absent: every event the maker may read.
    #[serde(default)]
    pub filter: HookFilter,
}

/// A webhook, as `GET /webhooks` lists it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    /// `wh_…`.
    pub id: String,
    /// Where it posts.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Which events of them.
    pub filter: HookFilter,
    /// Who made it: `admin`, or `user:<sub>`.
    pub owner: String,
    /// When it was made, in seconds since the Unix epoch.
    pub created_at: u64,
    /// False once disabled (its receiver answered `410`, a delivery failed
    /// the whole retry schedule, or its maker's token expired);
    /// redelivering a delivery enables it again.
    pub enabled: bool,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
    /// Deliveries waiting.
    pub pending: usize,
}

impl Webhook {
    fn of(hook: HookInfo) -> Self {
        Self {
            id: hook.id,
            url: hook.url,
            events: hook.events,
            filter: hook.filter,
            owner: hook.owner,
            created_at: hook.created_at,
            enabled: hook.disabled.is_none(),
            disabled_reason: hook.disabled,
            pending: hook.pending,
        }
    }
}

/// A webhook just made: the only answer that holds its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// `whsec_<base64>`: the Standard Webhooks secret its deliveries are
    /// signed with (`webhook-signature: v1,…`). Shown this once.
    pub secret: String,
    /// The webhook.
    #[serde(flatten)]
    pub webhook: Webhook,
}

/// Make a webhook: events posted to a URL, signed to Standard Webhooks v1.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = WebhookRequest, security(("client" = [])),
    responses((status = 201, description = "The webhook, with its secret (shown once). The admin's receives every event within its filter; an end user's only what their token's grants read, until its `exp`", body = CreatedWebhook,
               headers(("Location" = String, description = "`/webhooks/{id}`: what `DELETE` deletes (Power Automate's webhook triggers unsubscribe there)"))),
              (status = 403, description = "The client token: webhooks are made with the admin token or an end user's token", body = super::Problem, content_type = "application/problem+json"),
              (status = 409, description = "100 webhooks exist, or this end user has 10: delete one first", body = super::Problem, content_type = "application/problem+json"),
              (status = 422, description = "`url` not http(s), or resolving to an address the SSRF guard refuses; `events` empty or over its limits; a filter id empty, too long or with control characters", body = super::Problem, content_type = "application/problem+json"),
              ReadProblems))]
async fn post_webhook(
    State(state): State<AppState>,
    Client(role): Client,
    JsonBody(body): JsonBody<WebhookRequest>,
) -> Result<(StatusCode, [(header::HeaderName, String); 1], Json<CreatedWebhook>), ApiError> {
    let hooks = available(&state, &role)?;
    check(&body)?;
    let new = NewHook { url: body.url, events: body.events, filter: body.filter };
    let revoked = role.user().and_then(|u| u.jti.as_deref()).map(|jti| state.revocations.revoked(jti));
    let (hook, secret) = hooks.create(&role, new, revoked).await.map_err(refused)?;
    tracing::info!(webhook = %hook.id, "a webhook was made");
    let location = format!("/webhooks/{}", hook.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(CreatedWebhook { secret, webhook: Webhook::of(hook) }),
    ))
}

/// The caller's webhooks, newest first (the admin's: everyone's).
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", security(("client" = [])),
    responses((status = 200, description = "The webhooks: an end user's own, or every one for the admin token", body = [Webhook]),
              (status = 403, description = "The client token: webhooks are the admin's and end users'", body = super::Problem, content_type = "application/problem+json"),
              ReadProblems))]
async fn get_webhooks(State(state): State<AppState>, Client(role): Client) -> Result<Json<Vec<Webhook>>, ApiError> {
    let hooks = available(&state, &role)?;
    Ok(Json(hooks.list(&role).await.map_err(refused)?.into_iter().map(Webhook::of).collect()))
}

/// Delete a webhook: nothing more is delivered, its pending deliveries are dropped.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", security(("client" = [])),
    params(("id" = String, Path, description = "The webhook's id, `wh_…`")),
    responses((status = 204, description = "Deleted"),
              (status = 403, description = "The client token: webhooks are the admin's and end users'", body = super::Problem, content_type = "application/problem+json"),
              ReadProblems))]
async fn delete_webhook(
    State(state): State<AppState>,
    Client(role): Client,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let hooks = available(&state, &role)?;
    if !hooks.delete(&role, &id).await.map_err(refused)? {
        return Err(not_found(&id));
    }
    tracing::info!(webhook = %id, "a webhook was deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook's deliveries, newest first: pending, delivered, failed and dropped.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "get_webhook_deliveries", security(("client" = [])),
    params(("id" = String, Path, description = "The webhook's id, `wh_…`")),
    responses((status = 200, description = "Its deliveries on record (the last 2000)", body = [Delivery]),
              (status = 403, description = "The client token: webhooks are the admin's and end users'", body = super::Problem, content_type = "application/problem+json"),
              ReadProblems))]
async fn get_deliveries(
    State(state): State<AppState>,
    Client(role): Client,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    let hooks = available(&state, &role)?;
    Ok(Json(hooks.deliveries(&role, &id).await.map_err(refused)?.ok_or_else(|| not_found(&id))?))
}

/// Deliver again: the delivery is queued after the hook's pending ones, and a disabled hook is enabled again.
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks", operation_id = "retry_webhook_delivery", security(("client" = [])),
    params(("id" = String, Path, description = "The webhook's id, `wh_…`"),
           ("delivery_id" = String, Path, description = "The delivery's id, `msg_…` (its `webhook-id`)")),
    responses((status = 202, description = "Queued again, with the same `webhook-id`"),
              (status = 403, description = "The client token: webhooks are the admin's and end users'", body = super::Problem, content_type = "application/problem+json"),
              (status = 409, description = "The delivery is pending already", body = super::Problem, content_type = "application/problem+json"),
              ReadProblems))]
async fn retry_delivery(
    State(state): State<AppState>,
    Client(role): Client,
    ApiPath((id, delivery_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let hooks = available(&state, &role)?;
    match hooks.redeliver(&role, &id, &delivery_id).await.map_err(refused)?.ok_or_else(|| not_found(&id))? {
        Redelivery::Queued => Ok(StatusCode::ACCEPTED),
        Redelivery::Pending => Err(ApiError::Conflict(format!("delivery {delivery_id:?} is pending already"))),
        Redelivery::Unknown => {
            Err(ApiError::NotFound(format!("no delivery {delivery_id:?} on record for webhook {id:?}")))
        }
    }
}

/// The webhooks, for a caller that may use them: `403` for the client token.
fn available<'a>(state: &'a AppState, role: &Role) -> Result<&'a dyn WebhookStore, ApiError> {
    let hooks = state.webhooks.as_ref();
    if !role.makes_webhooks() {
        return Err(ApiError::Forbidden(
            "webhooks are made and managed with the admin token or an end user's token; a webhook of the client token (the app's backend's) would send everything it reads to any URL"
                .into(),
        ));
    }
    Ok(hooks)
}

/// What a store's refusal answers.
fn refused(e: MakeError) -> ApiError {
    match e {
        MakeError::Target(why) => ApiError::Invalid(why),
        MakeError::Full(why) => ApiError::Conflict(why),
        MakeError::Unavailable(why) => ApiError::EngineUnavailable(why),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no webhook {id:?} (GET /webhooks lists yours)"))
}

/// A `422` unless the request is within its limits.
fn check(body: &WebhookRequest) -> Result<(), ApiError> {
    if body.url.len() > MAX_URL_BYTES {
        return Err(ApiError::Invalid(format!("`url` must be at most {MAX_URL_BYTES} bytes")));
    }
    if body.events.is_empty()
        || body.events.len() > MAX_EVENTS
        || body.events.iter().any(|t| t.is_empty() || t.len() > 128 || !t.chars().all(|c| c.is_ascii_graphic()))
    {
        return Err(ApiError::Invalid(format!(
            "`events` must name 1-{MAX_EVENTS} event types (`turn.finished`, `approval.requested`, or types of GET /events)"
        )));
    }
    let f = &body.filter;
    for (field, id) in [("runtime", &f.runtime), ("agent_id", &f.agent_id), ("conversation_id", &f.conversation_id)] {
        if let Some(id) = id
            && (id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control))
        {
            return Err(ApiError::Invalid(format!("`filter.{field}` must be 1-{MAX_ID_LEN} printable characters")));
        }
    }
    Ok(())
}
