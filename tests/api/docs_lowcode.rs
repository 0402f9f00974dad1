//! docs/lowcode.md against the OpenAPI document: every request its recipes
//! make (`METHOD /path` in prose, the curl commands, the URLs typed into the
//! tools) and every `operationId` it names (Power Automate's action names)
//! is in openapi/openapi.json, and what a section titled "not available yet"
//! names is still absent from it — when such a feature lands, the page must
//! be rewritten.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The page checked.
const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lowcode.md");

/// The checked-in OpenAPI document (a test in `openapi` keeps it equal to the served one).
const DOCUMENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

/// The address the page's examples give the bridge.
const HOST: &str = "https://bridge.example.com";

/// A heading with this marks a section about what the bridge does not do yet.
const NOT_YET: &str = "not available yet";

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// An `operationId` as the page names one: `post_input`, `list_turns`, ….
const OPERATION_PREFIXES: [&str; 6] = ["get_", "post_", "list_", "delete_", "put_", "patch_"];

/// A request the page names: the method when it says one, and the path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Request {
    method: Option<String>,
    path: String,
}

/// One section of the page: its heading, its prose (lines joined, so a
/// code span broken over two lines is whole) and its code blocks' lines.
struct Section {
    heading: String,
    prose: String,
    code: Vec<String>,
}

fn sections(text: &str) -> Vec<Section> {
    let mut sections = vec![Section { heading: String::new(), prose: String::new(), code: Vec::new() }];
    let mut fenced = false;
    for line in text.lines() {
        let section = sections.last_mut().unwrap();
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            section.code.push(line.to_owned());
        } else if line.starts_with('#') {
            sections.push(Section { heading: line.to_owned(), prose: String::new(), code: Vec::new() });
        } else {
            section.prose.push(' ');
            section.prose.push_str(line);
        }
    }
    sections
}

/// The path of a URL or path as the page writes it: no host, no query.
fn path_of(target: &str) -> Option<String> {
    let target = target.strip_prefix(HOST).or_else(|| target.strip_prefix("$B")).unwrap_or(target);
    let path = target.split(['?', '"', '\'', ' ', ')', '`']).next()?;
    path.starts_with('/').then(|| path.trim_end_matches(['.', ',']).to_owned())
}

/// The code spans of `prose`.
fn code_spans(prose: &str) -> Vec<&str> {
    prose.split('`').skip(1).step_by(2).collect()
}

/// Every request a section names.
fn requests(section: &Section) -> BTreeSet<Request> {
    let mut found = BTreeSet::new();
    for span in code_spans(&section.prose) {
        let (first, rest) = span.split_once(' ').unwrap_or((span, ""));
        if METHODS.contains(&first)
            && let Some(path) = path_of(rest.trim())
        {
            found.insert(Request { method: Some(first.to_owned()), path });
        }
    }
    // URLs typed into the tools (`{{ … }}` after the host is an expression, no path).
    for text in std::iter::once(section.prose.as_str()).chain(section.code.iter().map(String::as_str)) {
        for (at, _) in text.match_indices(HOST) {
            if let Some(path) = path_of(&text[at..]) {
                found.insert(Request { method: None, path });
            }
        }
    }
    for line in section.code.iter().filter(|l| l.trim_start().starts_with("curl ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let method = words.windows(2).find(|w| w[0] == "-X").map_or("GET", |w| w[1]);
        for word in words.iter().filter(|w| w.trim_start_matches('"').starts_with("$B/")) {
            if let Some(path) = path_of(word.trim_start_matches('"')) {
                found.insert(Request { method: Some(method.to_owned()), path });
            }
        }
    }
    found
}

/// The `operationId`s a section names.
fn operation_ids(section: &Section) -> BTreeSet<String> {
    code_spans(&section.prose)
        .into_iter()
        .filter(|s| OPERATION_PREFIXES.iter().any(|p| s.starts_with(p)))
        .filter(|s| s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

/// The document's operations: path template → methods (upper case), and the `operationId`s.
fn document() -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(DOCUMENT).unwrap()).unwrap();
    let mut paths = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let methods: &mut BTreeSet<String> = paths.entry(path.clone()).or_default();
        for (method, operation) in item.as_object().unwrap() {
            if let Some(id) = operation.get("operationId").and_then(Value::as_str) {
                methods.insert(method.to_uppercase());
                ids.insert(id.to_owned());
            }
        }
    }
    (paths, ids)
}

/// True when `path` is an instance of the template `template` (`/turns/tn_…` of `/turns/{id}`).
fn fits(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

/// True when the document has `request` (any method when the page says none).
fn documented(paths: &BTreeMap<String, BTreeSet<String>>, request: &Request) -> bool {
    paths.iter().any(|(template, methods)| {
        fits(template, &request.path) && request.method.as_ref().is_none_or(|m| methods.contains(m))
    })
}

fn page() -> Vec<Section> {
    sections(&std::fs::read_to_string(PAGE).unwrap())
}

#[test]
fn every_request_in_the_low_code_recipes_is_an_operation_of_the_openapi_document() {
    let (paths, _) = document();
    let named: BTreeSet<Request> = page().iter().filter(|s| !s.heading.contains(NOT_YET)).flat_map(requests).collect();
    assert!(named.len() >= 10, "found only {named:?} in docs/lowcode.md: did its format change?");
    let unknown: Vec<&Request> = named.iter().filter(|r| !documented(&paths, r)).collect();
    assert!(unknown.is_empty(), "docs/lowcode.md names requests openapi/openapi.json does not have: {unknown:?}");
}

#[test]
fn every_operation_id_the_low_code_page_names_is_in_the_openapi_document() {
    let (_, ids) = document();
    let named: BTreeSet<String> = page().iter().flat_map(operation_ids).collect();
    assert!(named.len() >= 5, "found only {named:?} in docs/lowcode.md: did its format change?");
    let unknown: Vec<&String> = named.difference(&ids).collect();
    assert!(unknown.is_empty(), "docs/lowcode.md names operationIds openapi/openapi.json does not have: {unknown:?}");
}

#[test]
fn what_the_low_code_page_says_is_not_available_yet_is_not_in_the_openapi_document() {
    let (paths, _) = document();
    // The page has no such section since webhooks came to clusters; this
    // keeps the next one honest.
    let not_yet: Vec<Section> = page().into_iter().filter(|s| s.heading.contains(NOT_YET)).collect();
    let named: BTreeSet<Request> = not_yet.iter().flat_map(requests).collect();
    let landed: Vec<&Request> = named.iter().filter(|r| documented(&paths, r)).collect();
    assert!(
        landed.is_empty(),
        "docs/lowcode.md says these are not available yet, but openapi/openapi.json has them \
         (write their recipes): {landed:?}"
    );
}

#[test]
fn a_request_is_found_in_prose_in_curl_and_in_a_tools_url_and_fits_its_path_template() {
    let text = "## Recipe\n\nSend `POST\n/input?wait=completion`, then `GET /turns/{id}` at `https://bridge.example.com/turns?limit=50`.\n\n```sh\ncurl -s -X POST \"$B/approval?wait=completion\" -H 'A: b'\ncurl -si \"$B/turns/tn_17a8\"\n```\n";
    let found = requests(&sections(text)[1]);
    let request = |m: Option<&str>, p: &str| Request { method: m.map(str::to_owned), path: p.to_owned() };
    let expected = [
        request(None, "/turns"),
        request(Some("GET"), "/turns/tn_17a8"),
        request(Some("GET"), "/turns/{id}"),
        request(Some("POST"), "/approval"),
        request(Some("POST"), "/input"),
    ];
    assert_eq!(found, expected.into_iter().collect());
    assert!(fits("/turns/{id}", "/turns/tn_17a8"));
    assert!(!fits("/turns/{id}", "/turns"));
    assert!(!fits("/turns", "/webhooks"));
}
