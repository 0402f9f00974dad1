//! docs/openai.md against the OpenAPI document: every request it names
//! (`METHOD /v1/…` in prose and tables, and the curl examples) is an
//! operation of openapi/openapi.json, and the headers it tells tools to
//! send are the parameters the document gives `POST /v1/chat/completions`.

use serde_json::Value;

/// The page checked.
const PAGE: &str = include_str!("../../docs/openai.md");

/// The checked-in OpenAPI document (a test in `openapi` keeps it equal to the served one).
const DOCUMENT: &str = include_str!("../../openapi/openapi.json");

fn document() -> Value {
    serde_json::from_str(DOCUMENT).unwrap()
}

/// `(method, path)` of every request the page names: `GET /v1/models` in
/// prose, and the URLs of its curl commands (`$B/v1/…`, POST when it sends `-d`).
fn requests(page: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for line in page.lines() {
        for method in ["GET", "POST"] {
            for (i, _) in line.match_indices(&format!("{method} /v1/")) {
                let path: String = line[i + method.len() + 1..].chars().take_while(|c| !"` ,)|".contains(*c)).collect();
                found.push((method.to_owned(), path));
            }
        }
        if let Some(i) = line.find("$B/v1/").filter(|_| line.trim_start().starts_with("curl")) {
            let path: String = line[i + 2..].chars().take_while(|c| !" '\"".contains(*c)).collect();
            let method = if page.contains("-d '") { "POST" } else { "GET" };
            found.push((method.to_owned(), path));
        }
    }
    found
}

#[test]
fn every_request_the_openai_page_names_is_an_operation_of_the_openapi_document() {
    let doc = document();
    let found = requests(PAGE);
    assert!(found.len() >= 4, "the page names its requests: {found:?}");
    for (method, path) in found {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        assert!(operation.is_object(), "docs/openai.md names {method} {path}, which the document lacks");
    }
}

#[test]
fn the_headers_the_openai_page_names_are_parameters_of_chat_completions() {
    let doc = document();
    let params = doc["paths"]["/v1/chat/completions"]["post"]["parameters"].as_array().unwrap();
    let names: Vec<&str> = params.iter().filter(|p| p["in"] == "header").map(|p| p["name"].as_str().unwrap()).collect();
    for header in ["X-Letta-Conversation-Id", "X-Letta-Runtime"] {
        assert!(PAGE.contains(header), "docs/openai.md explains {header}");
        assert!(names.contains(&header), "the document lists {header}: {names:?}");
    }
    assert!(!PAGE.contains("X-Letta-Agent"), "no header the bridge does not read");
}

#[test]
fn a_request_is_found_in_prose_and_in_curl() {
    let page = "`GET /v1/models` and POST /v1/chat/completions, then\ncurl -s $B/v1/chat/completions -d '{}'";
    let found = requests(page);
    assert_eq!(
        found,
        [
            ("GET".into(), "/v1/models".into()),
            ("POST".into(), "/v1/chat/completions".into()),
            ("POST".into(), "/v1/chat/completions".into())
        ]
    );
}
