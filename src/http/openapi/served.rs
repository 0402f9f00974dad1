//! What `GET /openapi.json` serves — the OpenAPI 3.1 document, or with
//! `?version=2.0` its Swagger 2.0 rendering, each naming this bridge's own
//! address — and the Swagger UI at `/docs`.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::super::extract::ApiQuery;
use super::super::hints::known_base_url;
use super::super::{AppState, Problem};
use super::{shapes, swagger2};

/// Which rendering of the document to serve.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
pub enum Version {
    /// OpenAPI 3.1 (the default).
    #[default]
    #[serde(rename = "3.1")]
    V3_1,
    /// Swagger 2.0, for importers that read only 2.0 (Power Automate's
    /// custom connectors): unions flattened to one object of every field.
    #[serde(rename = "2.0")]
    V2_0,
}

/// Query of `GET /openapi.json`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocQuery {
    /// `3.1` (the default) or `2.0`.
    #[param(inline)]
    version: Option<Version>,
}

/// Both renderings, serialised without their address: the `OpenApi` tree
/// and the JSON values are dropped once serialised (kept alive, the tree held
/// ~2 MB of heap for a ~200 KB answer, most of the bridge's idle memory).
pub struct Documents {
    /// The 3.1 document as compact JSON (an object: it starts with `{`).
    v3: Bytes,
    /// The 2.0 rendering, the same way; made from `v3` when first asked for
    /// (rarely: an importer's one-off), so that idle memory holds one document.
    v2: OnceLock<Bytes>,
}

fn to_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("a JSON value serialises"))
}

impl Documents {
    /// Shapes the derived document for importers.
    pub fn build(api: utoipa::openapi::OpenApi) -> Self {
        let mut doc = serde_json::to_value(&api).expect("the OpenAPI document serialises");
        drop(api);
        shapes::apply(&mut doc);
        Self { v3: to_bytes(&doc), v2: OnceLock::new() }
    }

    fn v2(&self) -> &Bytes {
        self.v2.get_or_init(|| {
            let doc: Value = serde_json::from_slice(&self.v3).expect("the stored document is JSON");
            to_bytes(&swagger2::render(&doc))
        })
    }

    /// The document of `version` with the address members that say where
    /// this bridge is (`base`: `scheme://host[/prefix]`, when known).
    pub fn render(&self, version: Version, base: Option<&str>) -> Bytes {
        let (body, head) = match version {
            Version::V3_1 => (&self.v3, servers(base)),
            Version::V2_0 => (self.v2(), swagger2::address(base)),
        };
        // `{` + the address members + `,` + the rest of the stored object.
        let head = serde_json::to_vec(&Value::Object(head)).expect("a JSON object serialises");
        let mut out = BytesMut::with_capacity(body.len() + head.len());
        if head.len() > 2 {
            out.put_slice(&head[..head.len() - 1]);
            out.put_u8(b',');
            out.put_slice(&body[1..]);
        } else {
            out.put_slice(body);
        }
        out.freeze()
    }
}

/// 3.1's `servers`: this bridge, or `/` (relative to wherever the document
/// was read from) when its address is not known.
fn servers(base: Option<&str>) -> Map<String, Value> {
    let server = json!({
        "url": base.unwrap_or("/"),
        "description": "This bridge (LETTA_BRIDGE_PUBLIC_URL, else the address this document was fetched from)",
    });
    Map::from_iter([("servers".to_owned(), json!([server]))])
}

/// This document: OpenAPI 3.1, or with `version=2.0` a Swagger 2.0 rendering
/// (unions flattened to one object of every field) for importers that read
/// only 2.0, such as Power Automate's custom connectors.
#[utoipa::path(get, path = "/openapi.json", tag = "docs", params(DocQuery),
    responses((status = 200, description = "The document", content_type = "application/json", body = Object),
              (status = 400, description = "`version` is neither `3.1` nor `2.0`", body = Problem, content_type = "application/problem+json")))]
pub async fn get_openapi(
    State(state): State<AppState>,
    Extension(docs): Extension<Arc<Documents>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<DocQuery>,
) -> Response {
    let base = known_base_url(&state.settings, &headers);
    let body = docs.render(query.version.unwrap_or_default(), base.as_deref());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `/docs` (Swagger UI, every asset embedded in the binary; no validator
/// badge, which would load from the internet) and `/openapi.json`.
pub fn docs(api: utoipa::openapi::OpenApi) -> Router<AppState> {
    let documents = Arc::new(Documents::build(api));
    let config =
        Config::new(["/openapi.json"]).validator_url("none").persist_authorization(false).try_it_out_enabled(true);
    Router::from(SwaggerUi::new("/docs").config(config))
        .route("/openapi.json", get(get_openapi).layer(Extension(documents)))
}
