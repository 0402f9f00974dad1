//! `POST /feeds`, `GET /feeds`, `DELETE /feeds/{id}`: feeds, the URLs of
//! `GET /events` for readers that take only a URL (n8n's SSE Trigger, a
//! browser's `EventSource`): long-lived, read-only, revocable. Who may make
//! and manage them is decided in one place ([`Role::makes_feeds`],
//! [`Role::manages_feed`]); what a feed is and how it is kept, in
//! [`crate::store::FeedStore`]. The credential is answered once, inside
//! `url`, and never logged: request logs carry paths only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::events::parse_types;
use super::extract::{ApiPath, Client, JsonBody};
use super::openapi::ReadProblems;
use super::{ApiError, AppState};
use crate::protocol::Role;
use crate::protocol::access::grants::MAX_ID_LEN;
use crate::store::{FeedFilter, FeedRecord, is_feed_id, unix_now};

/// Longest `name` of a feed, in characters.
const MAX_NAME_CHARS: usize = 256;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_feed, get_feeds)).routes(routes!(delete_feed))
}

/// A feed to make.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedRequest {
    /// The events it serves (`GET /events`' filters); absent: every event
    /// its maker may read.
    #[serde(default)]
    pub filter: FeedFilter,
    /// A name to tell it apart in `GET /feeds` (at most 256 characters).
    #[serde(default)]
    #[schema(max_length = 256)]
    pub name: Option<String>,
}

/// A feed, as `GET /feeds` lists it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct Feed {
    /// `fd_…`, what `DELETE /feeds/{id}` takes.
    pub id: String,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// The events it serves.
    pub filter: FeedFilter,
    /// Who made it: `admin`, or `user:<sub>` for an end user's token.
    pub owner: String,
    /// When it was made, in seconds since the Unix epoch.
    pub created_at: u64,
    /// When it stops working by itself, in seconds since the Unix epoch:
    /// an end user's feed at their token's `exp`; `null` (the admin's):
    /// only when deleted.
    pub expires_at: Option<u64>,
}

impl Feed {
    fn of(record: &FeedRecord) -> Self {
        Self {
            id: record.id.clone(),
            name: record.name.clone(),
            filter: record.filter.clone(),
            owner: record.owner.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at(),
        }
    }
}

/// A feed just made: the only answer that holds its URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedFeed {
    /// What to open, after the bridge's base URL: `/events?feed=fd_…`. It
    /// is the credential, shown this once (the bridge keeps only a hash of
    /// it): give it only to the reader. It serves only `GET /events`
    /// (`Last-Event-ID` or `&last_event_id=` resume it; `GET /events`' own
    /// filters added to it only narrow it).
    pub url: String,
    /// The feed.
    #[serde(flatten)]
    pub feed: Feed,
}

/// Make a feed: a URL of `GET /events` within a filter, for readers that take only a URL.
#[utoipa::path(post, path = "/feeds", tag = "events", request_body = FeedRequest, security(("client" = [])),
    responses((status = 201, description = "The feed, with its URL (shown once). The admin's reads every event within its filter until deleted; an end user's only what their token's grants read, until its `exp` or revocation", body = CreatedFeed),
              (status = 403, description = "The client token: feeds are made with the admin token or an end user's token", body = super::Problem, content_type = "application/problem+json"),
              (status = 409, description = "1000 feeds exist, or this end user has 10: delete one first", body = super::Problem, content_type = "application/problem+json"),
              (status = 422, description = "A filter id empty, too long or with control characters; `types` empty, over its limits or with a comma; `name` too long", body = super::Problem, content_type = "application/problem+json"),
              (status = 503, description = "The shared store is unavailable", body = super::Problem, content_type = "application/problem+json"),
              ReadProblems))]
async fn post_feed(
    State(state): State<AppState>,
    Client(role): Client,
    JsonBody(body): JsonBody<FeedRequest>,
) -> Result<(StatusCode, Json<CreatedFeed>), ApiError> {
    refuse_client(&role)?;
    check(&body)?;
    let (record, credential) = FeedRecord::new(&role, body.filter, body.name);
    // A token is taken a minute past its `exp` (clock skew); its feed, never.
    if record.expired_at(unix_now()) {
        return Err(ApiError::InvalidToken(
            "this token's exp has passed: a feed made with it would open nothing".into(),
        ));
    }
    if let Err(full) = state.feeds.create(&record).await? {
        return Err(ApiError::Conflict(full.to_string()));
    }
    tracing::info!(feed = %record.id, "a feed was made");
    let url = format!("/events?feed={credential}");
    Ok((StatusCode::CREATED, Json(CreatedFeed { url, feed: Feed::of(&record) })))
}

/// The caller's feeds, newest first (the admin's: everyone's), without their URLs.
#[utoipa::path(get, path = "/feeds", tag = "events", security(("client" = [])),
    responses((status = 200, description = "The feeds in force: an end user's own (whichever of their tokens made them), or every feed for the admin token", body = [Feed]),
              (status = 403, description = "The client token: feeds are the admin's and end users'", body = super::Problem, content_type = "application/problem+json"),
              (status = 503, description = "The shared store is unavailable", body = super::Problem, content_type = "application/problem+json"),
              ReadProblems))]
async fn get_feeds(State(state): State<AppState>, Client(role): Client) -> Result<Json<Vec<Feed>>, ApiError> {
    refuse_client(&role)?;
    // An end user's own, read from their index; the admin's listing is everyone's.
    let owner = role.user().map(|_| role.principal());
    let feeds = state.feeds.list(owner.as_deref()).await?;
    Ok(Json(feeds.iter().filter(|f| role.manages_feed(&f.owner)).map(Feed::of).collect()))
}

/// Delete a feed: its URL opens nothing more, and its open streams end at once (on every instance).
#[utoipa::path(delete, path = "/feeds/{id}", tag = "events", security(("client" = [])),
    params(("id" = String, Path, description = "The feed's id, `fd_…`")),
    responses((status = 204, description = "Deleted: its streams ended, and reconnects are refused (`401`)"),
              (status = 403, description = "The client token: feeds are the admin's and end users'", body = super::Problem, content_type = "application/problem+json"),
              (status = 503, description = "The shared store is unavailable", body = super::Problem, content_type = "application/problem+json"),
              ReadProblems))]
async fn delete_feed(
    State(state): State<AppState>,
    Client(role): Client,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    refuse_client(&role)?;
    let record = if is_feed_id(&id) { state.feeds.get(&id).await? } else { None };
    // Another user's feed is not found, as an unknown one.
    let Some(record) = record.filter(|r| role.manages_feed(&r.owner)) else {
        return Err(ApiError::NotFound(format!("no feed {id:?} (GET /feeds lists yours)")));
    };
    state.feeds.delete(&record).await?;
    tracing::info!(feed = %record.id, "a feed was deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A `403` for a caller that may not make feeds (the client token).
fn refuse_client(role: &Role) -> Result<(), ApiError> {
    if role.makes_feeds() {
        return Ok(());
    }
    Err(ApiError::Forbidden(
        "feeds are made and managed with the admin token or an end user's token; a feed of the client token (the app's backend's) would put everything it reads into a URL"
            .into(),
    ))
}

/// A `422` unless `feed`'s filter and name are within their limits.
fn check(feed: &FeedRequest) -> Result<(), ApiError> {
    let f = &feed.filter;
    for (field, id) in [("runtime", &f.runtime), ("agent_id", &f.agent_id), ("conversation_id", &f.conversation_id)] {
        if let Some(id) = id
            && (id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control))
        {
            return Err(ApiError::Invalid(format!("`filter.{field}` must be 1-{MAX_ID_LEN} printable characters")));
        }
    }
    if let Some(types) = &f.types {
        if types.is_empty() || types.iter().any(|t| t.trim().is_empty() || t.contains(',')) {
            return Err(ApiError::Invalid(
                "`filter.types` must name event types, none empty or with a comma (leave it out for every type)".into(),
            ));
        }
        parse_types(&types.join(",")).map_err(|e| ApiError::Invalid(format!("`filter.types`: {e}")))?;
    }
    if let Some(name) = &feed.name
        && (name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control))
    {
        return Err(ApiError::Invalid(format!("`name` must be at most {MAX_NAME_CHARS} printable characters")));
    }
    Ok(())
}
