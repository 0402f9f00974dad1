//! The checked-in OpenAPI document equals what the service serves.
//! Regenerate it with `UPDATE_OPENAPI=1 cargo test --test api openapi`.

use serde_json::{Value, json};

use crate::helpers::*;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

#[tokio::test]
async fn openapi_document_is_checked_in_and_current() {
    // The checked-in copy names the address of a bridge on its defaults.
    let app = spawn_app_with(|c| c.public_url = Some("http://127.0.0.1:8284".into())).await;
    let served: Value = app.get_as(None, "/openapi.json").await.json().await.unwrap();
    let pretty = serde_json::to_string_pretty(&served).unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, &pretty).unwrap();
    }
    let on_disk = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        on_disk == pretty,
        "openapi/openapi.json differs from /openapi.json; regenerate with `UPDATE_OPENAPI=1 cargo test --test api openapi`"
    );
}

#[tokio::test]
async fn openapi_document_describes_every_endpoint() {
    let app = spawn_app().await;
    let doc: Value = app.get_as(None, "/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/input",
        "/sync",
        "/abort",
        "/approval",
        "/commands",
        "/runtimes/{id}/input",
        "/runtimes/{id}/sync",
        "/runtimes/{id}/abort",
        "/runtimes/{id}/approval",
        "/runtimes/{id}/commands",
        "/events",
        "/runtimes",
        "/status",
        "/healthz",
        "/readyz",
        "/v1/health",
        "/v1/environments/register",
        "/ws",
        "/ws/{connection_id}",
        "/v1/agents/{agent_id}/runtime-status",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    let input = &doc["paths"]["/input"]["post"]["responses"];
    for status in ["200", "202", "400", "401", "403", "409", "413", "415", "422", "502", "503", "504"] {
        assert!(input.get(status).is_some(), "POST /input does not document {status}");
    }
}

#[tokio::test]
async fn the_docs_ui_is_served_from_the_binary_with_nothing_from_elsewhere() {
    let app = spawn_app().await;
    let page = app.get_as(None, "/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js"));
    let init = app.get_as(None, "/docs/swagger-initializer.js").await.text().await.unwrap();
    assert!(init.contains("\"url\": \"/openapi.json\"") && init.contains("\"validatorUrl\": \"none\""), "{init}");
    for text in [&html, &init] {
        assert!(!text.contains("http://") && !text.contains("https://"), "an external URL: {text}");
    }
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/swagger-ui-standalone-preset.js"] {
        let res = app.get_as(None, asset).await;
        assert_eq!(res.status(), 200, "{asset}");
        assert!(res.bytes().await.unwrap().len() > 1000, "{asset} is the real asset");
    }
}

#[tokio::test]
async fn the_swagger_bundles_the_docs_page_never_loads_are_not_in_the_binary() {
    let app = spawn_app().await;
    for asset in ["/docs/swagger-ui.js", "/docs/swagger-ui-es-bundle.js", "/docs/swagger-ui-es-bundle-core.js"] {
        let body = app.get_as(None, asset).await.text().await.unwrap();
        assert!(body.len() < 200 && body.contains("Not built into letta-bridge"), "{asset}: {} bytes", body.len());
    }
}

#[tokio::test]
async fn the_approval_request_event_and_its_answer_are_typed_for_low_code_tools() {
    let app = spawn_app().await;
    let doc: Value = app.get_as(None, "/openapi.json").await.json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    let union = schemas["SseEvent"]["properties"]["data"]["contentSchema"]["anyOf"].as_array().unwrap();
    for event in ["ControlRequest", "ApprovalRequestDelta"] {
        let member = json!({"$ref": format!("#/components/schemas/{event}")});
        assert!(union.contains(&member), "{event} is one of the events of GET /events");
    }
    let event = &schemas["ControlRequest"];
    assert_eq!(event["properties"]["type"]["pattern"], "^control_request$");
    assert_eq!(event["properties"]["request"]["$ref"], "#/components/schemas/CanUseTool");
    let question = &schemas["CanUseTool"];
    for field in ["subtype", "tool_name", "input", "tool_call_id"] {
        assert!(question["required"].as_array().unwrap().contains(&json!(field)), "CanUseTool.{field} is required");
    }
    let call = &schemas["ToolCallRequest"]["properties"];
    assert!(call["name"].is_object() && call["arguments"].is_object() && call["tool_call_id"].is_object());

    // The answer: POST /approval's body names the control_request by its request_id.
    let answer = &doc["paths"]["/approval"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(answer["$ref"], "#/components/schemas/ApprovalCommand");
    let request_id = &schemas["ApprovalResponse"]["properties"]["request_id"]["description"];
    assert!(request_id.as_str().unwrap().contains("control_request"), "{request_id}");
    let behaviors: Vec<&Value> = schemas["ApprovalDecision"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &schemas[d["$ref"].as_str().unwrap().rsplit('/').next().unwrap()]["properties"]["behavior"]["enum"][0])
        .collect();
    assert_eq!(behaviors, [&json!("allow"), &json!("deny")]);

    // ?wait=completion that stops at an approval request.
    let turn = &schemas["TurnResult"]["properties"];
    assert_eq!(turn["approval"]["$ref"], "#/components/schemas/PendingApproval");
    assert!(turn["stop_reason"]["description"].as_str().unwrap().contains("requires_approval"));
}

/// Every operation of `doc`: (path, method, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_response_is_described_and_every_operation_says_what_security_it_needs() {
    let app = spawn_app().await;
    let doc: Value = app.get_as(None, "/openapi.json").await.json().await.unwrap();
    let mut ids = std::collections::BTreeSet::new();
    let mut public = Vec::new();
    for (path, method, op) in operations(&doc) {
        for (status, res) in op["responses"].as_object().unwrap() {
            assert!(res["description"].is_string(), "{method} {path} {status} has no description");
        }
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        let security = op["security"].as_array().unwrap_or_else(|| panic!("{method} {path} names no security"));
        if security.is_empty() {
            public.push(path);
        }
    }
    assert_eq!(
        public,
        ["/", "/healthz", "/openapi.json", "/readyz", "/v1/health"],
        "the operations that need no token"
    );
}

#[tokio::test]
async fn tagged_unions_are_named_variants_with_a_discriminator() {
    let app = spawn_app().await;
    let doc: Value = app.get_as(None, "/openapi.json").await.json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    let payload = &schemas["InputPayload"];
    assert_eq!(payload["discriminator"]["propertyName"], "kind");
    for (kind, variant) in
        [("create_message", "CreateMessagePayload"), ("approval_response", "ApprovalResponsePayload")]
    {
        assert_eq!(payload["discriminator"]["mapping"][kind], format!("#/components/schemas/{variant}"));
        assert_eq!(schemas[variant]["properties"]["kind"]["enum"], json!([kind]), "{variant} carries its tag");
        assert!(schemas[variant]["required"].as_array().unwrap().contains(&json!("kind")));
    }
    assert_eq!(schemas["ApprovalDecision"]["discriminator"]["propertyName"], "behavior");
    // Nowhere an allOf inside a union, nor a null default on a type without null.
    fn walk(v: &Value, at: &str) {
        match v {
            Value::Object(o) => {
                for union in ["oneOf", "anyOf"] {
                    for member in o.get(union).and_then(Value::as_array).into_iter().flatten() {
                        assert!(member.get("allOf").is_none(), "an allOf inside the {union} at {at}");
                    }
                }
                if o.get("default") == Some(&Value::Null) {
                    assert!(o["type"].as_array().is_some_and(|t| t.contains(&json!("null"))), "default null at {at}");
                }
                o.iter().for_each(|(k, v)| walk(v, &format!("{at}/{k}")));
            }
            Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| walk(v, &format!("{at}/{i}"))),
            _ => {}
        }
    }
    walk(&doc, "");
}

#[tokio::test]
async fn the_servers_are_the_public_url_else_the_host_the_document_was_fetched_from() {
    let app = spawn_app().await;
    let doc: Value = app.get_as(None, "/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["servers"][0]["url"], app.url(""));
    let public = spawn_app_with(|c| c.public_url = Some("wss://bridge.example.com/lb/".into())).await;
    let doc: Value = public.get_as(None, "/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["servers"][0]["url"], "https://bridge.example.com/lb");
    let v2: Value = public.get_as(None, "/openapi.json?version=2.0").await.json().await.unwrap();
    assert_eq!(
        (&v2["host"], &v2["basePath"], &v2["schemes"]),
        (&json!("bridge.example.com"), &json!("/lb"), &json!(["https"]))
    );
}

#[tokio::test]
async fn the_swagger_2_rendering_flattens_unions_to_the_fields_a_connector_shows() {
    let app = spawn_app().await;
    let res = app.get_as(None, "/openapi.json?version=2.0").await;
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(doc["host"], app.url("").trim_start_matches("http://"));
    assert_eq!(
        doc["securityDefinitions"]["client"],
        json!({"type": "apiKey", "in": "header", "name": "Authorization",
        "description": "LETTA_BRIDGE_CLIENT_TOKEN (conversation commands) or LETTA_BRIDGE_ADMIN_TOKEN (everything); send it as `Bearer <token>`"})
    );
    let payload = &doc["definitions"]["InputPayload"];
    assert_eq!(payload["properties"]["kind"]["enum"], json!(["create_message", "approval_response"]));
    for field in ["messages", "request_id", "decision", "error"] {
        assert!(payload["properties"][field].is_object(), "InputPayload shows {field}: {payload}");
    }
    let body =
        &doc["paths"]["/input"]["post"]["parameters"].as_array().unwrap().iter().find(|p| p["in"] == "body").cloned();
    assert_eq!(body.as_ref().unwrap()["schema"]["$ref"], "#/definitions/InputCommand");
    let text = doc.to_string();
    for keyword in ["\"oneOf\"", "\"anyOf\"", "#/components/", "\"const\"", "\"contentSchema\""] {
        assert!(!text.contains(keyword), "{keyword} is not Swagger 2.0");
    }
}

#[tokio::test]
async fn an_unknown_document_version_is_a_bad_request() {
    let app = spawn_app().await;
    let res = app.get_as(None, "/openapi.json?version=3.0").await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}
