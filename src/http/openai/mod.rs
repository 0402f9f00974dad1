//! The OpenAI-compatible door: any tool that speaks OpenAI's Chat
//! Completions API with a custom base URL (the `openai` SDKs, n8n, Open
//! WebUI, LangChain) drives an agent through the bridge; so does one that
//! speaks the Responses API ([`responses`]). `model` is the agent id; the
//! last user message becomes an `input`, its turn is followed on the core
//! and answered as a `chat.completion` (or streamed as chunks). Errors keep OpenAI's shape ([`error`]). A door only: who
//! may send is the one privilege decision, the turn is
//! [`Runtimes::dispatch`](crate::runtime::Runtimes::dispatch)'s.

mod chat;
mod chunks;
mod error;
mod models;
mod request;
mod responses;
mod shapes;
mod stream;
mod turn;

use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat::chat_completions))
        .routes(routes!(models::list_models))
        .routes(routes!(models::get_model))
        .routes(routes!(responses::create_response))
}
