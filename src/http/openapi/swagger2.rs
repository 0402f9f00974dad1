//! The Swagger 2.0 rendering of the 3.1 document, for importers that read
//! only 2.0 (Power Automate's custom connectors, which also cannot show a
//! `oneOf`): bodies become `in: body` parameters, bearer schemes `apiKey`
//! headers, `T | null` a `T` with `x-nullable`, and every union one object
//! holding every field of its variants (a tag's values merged into one enum).

use serde_json::{Map, Value, json};

use super::shapes::is_method;

/// Schema keywords 2.0 knows and keeps as they are.
const KEPT: &[&str] = &[
    "title",
    "description",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "readOnly",
    "example",
];

/// How deep a union's variants are followed through references when merging.
const MAX_DEPTH: usize = 8;

/// The 2.0 document for `doc` (a 3.1 document), without its address.
pub fn render(doc: &Value) -> Value {
    let empty = Map::new();
    let schemas = doc.pointer("/components/schemas").and_then(Value::as_object).unwrap_or(&empty);
    let cx = Convert { schemas };
    let info = &doc["info"];
    let mut out = Map::new();
    out.insert("swagger".into(), json!("2.0"));
    let mut head = pick(info, &["title", "description", "version", "termsOfService", "contact"]);
    if let Some(license) = info.get("license") {
        let mut l = pick(license, &["name", "url"]);
        // 2.0 has no SPDX `identifier`: its page is the license's `url`.
        if let (None, Some(id)) = (l.get("url"), license.get("identifier").and_then(Value::as_str)) {
            l.insert("url".into(), json!(format!("https://spdx.org/licenses/{id}.html")));
        }
        head.insert("license".into(), Value::Object(l));
    }
    out.insert("info".into(), Value::Object(head));
    if let Some(tags) = doc.get("tags") {
        out.insert("tags".into(), tags.clone());
    }
    let schemes = doc.pointer("/components/securitySchemes").and_then(Value::as_object).unwrap_or(&empty);
    let security: Map<String, Value> =
        schemes.iter().filter_map(|(name, s)| Some((name.clone(), security_scheme(s)?))).collect();
    out.insert("securityDefinitions".into(), Value::Object(security));
    let mut paths = Map::new();
    for (path, item) in doc.get("paths").and_then(Value::as_object).unwrap_or(&empty) {
        let shared = item.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut ops = Map::new();
        for (method, op) in item.as_object().into_iter().flatten().filter(|(m, _)| is_method(m)) {
            ops.insert(method.clone(), cx.operation(op, &shared));
        }
        paths.insert(path.clone(), Value::Object(ops));
    }
    out.insert("paths".into(), Value::Object(paths));
    let definitions: Map<String, Value> = schemas.iter().map(|(k, s)| (k.clone(), cx.schema(s))).collect();
    out.insert("definitions".into(), Value::Object(definitions));
    Value::Object(out)
}

/// 2.0's `host`, `basePath` and `schemes` for `base` (`scheme://host[/prefix]`);
/// none when the address is unknown (importers then use the document's own).
pub fn address(base: Option<&str>) -> Map<String, Value> {
    let Some((scheme, rest)) = base.and_then(|b| b.split_once("://")) else { return Map::new() };
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let mut out = Map::new();
    out.insert("host".into(), json!(host));
    out.insert("basePath".into(), json!(format!("/{}", path.trim_end_matches('/'))));
    out.insert("schemes".into(), json!([scheme]));
    out
}

fn pick(from: &Value, keys: &[&str]) -> Map<String, Value> {
    keys.iter().filter_map(|k| Some(((*k).to_owned(), from.get(*k)?.clone()))).collect()
}

/// A 3.1 security scheme in 2.0 terms: a bearer token is an `Authorization` header.
fn security_scheme(s: &Value) -> Option<Value> {
    let description = s.get("description").and_then(Value::as_str).unwrap_or_default();
    match (s["type"].as_str()?, s["scheme"].as_str(), s["in"].as_str()) {
        ("http", Some("bearer"), _) => Some(json!({
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": format!("{description}; send it as `Bearer <token>`"),
        })),
        ("http", Some("basic"), _) => Some(json!({"type": "basic", "description": description})),
        ("apiKey", _, Some(place @ ("header" | "query"))) => {
            Some(json!({"type": "apiKey", "in": place, "name": s["name"], "description": description}))
        }
        _ => None,
    }
}

struct Convert<'a> {
    /// The 3.1 document's component schemas, which references point into.
    schemas: &'a Map<String, Value>,
}

impl Convert<'_> {
    fn operation(&self, op: &Value, shared: &[Value]) -> Value {
        let mut out = pick(op, &["tags", "summary", "description", "operationId", "deprecated", "security"]);
        let mut params: Vec<Value> = shared
            .iter()
            .chain(op["parameters"].as_array().into_iter().flatten())
            .filter_map(|p| self.parameter(p))
            .collect();
        if let Some(body) = op.get("requestBody") {
            let content = body["content"].as_object().cloned().unwrap_or_default();
            let schema = content.get("application/json").or_else(|| content.values().next()).map(|c| &c["schema"]);
            let mut param = json!({"in": "body", "name": "body", "required": body["required"] == true});
            if let Some(d) = body.get("description") {
                param["description"] = d.clone();
            }
            param["schema"] = schema.map_or_else(|| json!({}), |s| self.schema(s));
            params.push(param);
            out.insert("consumes".into(), json!(content.keys().collect::<Vec<_>>()));
        }
        if !params.is_empty() {
            out.insert("parameters".into(), Value::Array(params));
        }
        let mut produces: Vec<String> = Vec::new();
        let mut responses = Map::new();
        for (status, res) in op["responses"].as_object().into_iter().flatten() {
            let mut r = Map::new();
            r.insert("description".into(), res.get("description").cloned().unwrap_or_else(|| json!("")));
            if let Some(content) = res.get("content").and_then(Value::as_object) {
                produces.extend(content.keys().filter(|k| !produces.contains(k)).cloned().collect::<Vec<_>>());
                if let Some(schema) = content.values().find_map(|c| c.get("schema")) {
                    r.insert("schema".into(), self.schema(schema));
                }
            }
            if let Some(headers) = res.get("headers").and_then(Value::as_object) {
                let h: Map<String, Value> = headers
                    .iter()
                    .map(|(name, h)| {
                        let mut header = self.primitive(&h["schema"]);
                        if let Some(d) = h.get("description") {
                            header.insert("description".into(), d.clone());
                        }
                        (name.clone(), Value::Object(header))
                    })
                    .collect();
                r.insert("headers".into(), Value::Object(h));
            }
            responses.insert(status.clone(), Value::Object(r));
        }
        if !produces.is_empty() {
            out.insert("produces".into(), json!(produces));
        }
        out.insert("responses".into(), Value::Object(responses));
        Value::Object(out)
    }

    /// A query, path or header parameter (2.0 has no cookie parameters).
    fn parameter(&self, p: &Value) -> Option<Value> {
        let place = p["in"].as_str().filter(|i| matches!(*i, "query" | "path" | "header"))?;
        let mut out = pick(p, &["name", "description"]);
        out.insert("in".into(), json!(place));
        out.insert("required".into(), json!(place == "path" || p["required"] == true));
        out.extend(self.primitive(&p["schema"]));
        Some(Value::Object(out))
    }

    /// A parameter's or header's type: a primitive (or an array of them).
    fn primitive(&self, schema: &Value) -> Map<String, Value> {
        let converted = self.schema(self.resolve(schema, 0));
        let mut out = pick(
            &converted,
            &[
                "type",
                "format",
                "pattern",
                "enum",
                "default",
                "minimum",
                "maximum",
                "exclusiveMinimum",
                "exclusiveMaximum",
                "minLength",
                "maxLength",
                "minItems",
                "maxItems",
            ],
        );
        match out.get("type").and_then(Value::as_str) {
            Some("array") => {
                let items = self.primitive(&schema["items"]);
                out.insert("items".into(), Value::Object(items));
            }
            Some("string" | "integer" | "number" | "boolean") => {}
            _ => {
                out.clear();
                out.insert("type".into(), json!("string"));
            }
        }
        out
    }

    /// `schema` with a reference followed (to the component it names).
    fn resolve<'s>(&'s self, schema: &'s Value, depth: usize) -> &'s Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) if depth < MAX_DEPTH => {
                let name = r.rsplit('/').next().unwrap_or_default();
                self.schemas.get(name).map_or(schema, |s| self.resolve(s, depth + 1))
            }
            _ => schema,
        }
    }

    /// A 3.1 schema as a 2.0 one.
    fn schema(&self, s: &Value) -> Value {
        let Some(obj) = s.as_object() else { return json!({}) };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            return json!({"$ref": r.replace("#/components/schemas/", "#/definitions/")});
        }
        let union = obj.get("oneOf").or_else(|| obj.get("anyOf")).and_then(Value::as_array);
        let mut out = match (union, obj.get("allOf").and_then(Value::as_array)) {
            (Some(members), _) => self.union(members),
            (None, Some(members)) => self.merge(members, true),
            (None, None) => Map::new(),
        };
        if out.contains_key("$ref") {
            return Value::Object(out);
        }
        for key in KEPT {
            if let Some(v) = obj.get(*key) {
                out.insert((*key).to_owned(), v.clone());
            }
        }
        match &obj.get("type") {
            Some(Value::String(t)) if t != "null" => {
                out.insert("type".into(), json!(t));
            }
            Some(Value::Array(types)) => {
                let real: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                if let [t] = real.as_slice() {
                    out.insert("type".into(), (*t).clone());
                }
                if real.len() < types.len() {
                    out.insert("x-nullable".into(), json!(true));
                }
            }
            _ => {}
        }
        if let Some(values) = obj.get("enum").and_then(Value::as_array) {
            let real: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
            if !real.is_empty() {
                out.insert("enum".into(), json!(real));
            }
        }
        if let Some(c) = obj.get("const") {
            out.insert("enum".into(), json!([c]));
        }
        if let Some(d) = obj.get("default").filter(|d| !d.is_null()) {
            out.insert("default".into(), d.clone());
        }
        if let Some(first) = obj.get("examples").and_then(Value::as_array).and_then(|e| e.first()) {
            out.entry("example").or_insert_with(|| first.clone());
        }
        for (key, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
            if let Some(n) = obj.get(key).filter(|n| n.is_number()) {
                out.insert(bound.into(), n.clone());
                out.insert(key.into(), json!(true));
            }
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            let converted: Map<String, Value> = props.iter().map(|(k, v)| (k.clone(), self.schema(v))).collect();
            let mut all = out.remove("properties").and_then(|p| p.as_object().cloned()).unwrap_or_default();
            all.extend(converted);
            out.insert("properties".into(), Value::Object(all));
        }
        if let Some(required) = obj.get("required").and_then(Value::as_array).filter(|r| !r.is_empty()) {
            out.insert("required".into(), json!(required));
        }
        match obj.get("items") {
            Some(items) => {
                out.insert("items".into(), self.schema(items));
            }
            None if out.get("type") == Some(&json!("array")) => {
                out.insert("items".into(), json!({}));
            }
            None => {}
        }
        match obj.get("additionalProperties") {
            Some(Value::Bool(b)) => {
                out.insert("additionalProperties".into(), json!(b));
            }
            Some(extra @ Value::Object(_)) => {
                out.insert("additionalProperties".into(), self.schema(extra));
            }
            _ => {}
        }
        for (key, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
            out.insert(key.clone(), v.clone());
        }
        Value::Object(out)
    }

    /// `T | null` is a nullable `T`; any other union, the fields of all its variants.
    fn union(&self, members: &[Value]) -> Map<String, Value> {
        let real: Vec<&Value> = members.iter().filter(|m| m.get("type") != Some(&json!("null"))).collect();
        let nullable = real.len() < members.len();
        let mut out = match real.as_slice() {
            [one] => match self.schema(one) {
                Value::Object(o) => o,
                _ => Map::new(),
            },
            _ if real.iter().any(|m| self.resolve(m, 0).get("properties").is_some() || m.get("allOf").is_some()) => {
                let objects: Vec<Value> = real.into_iter().cloned().collect();
                self.merge(&objects, false)
            }
            // Variants that are no objects: the first one (a connector shows one field).
            [first, ..] => match self.schema(first) {
                Value::Object(o) => o,
                _ => Map::new(),
            },
            [] => Map::new(),
        };
        if nullable && !out.contains_key("$ref") {
            out.insert("x-nullable".into(), json!(true));
        }
        out
    }

    /// One object with the properties of every member; `required` holds what
    /// every member requires (`all`: what any member requires, for `allOf`).
    fn merge(&self, members: &[Value], all: bool) -> Map<String, Value> {
        let mut properties = Map::new();
        let mut required: Option<Vec<Value>> = None;
        for member in members {
            let flat = self.schema(self.resolve(member, 0));
            if !flat.get("properties").is_some_and(Value::is_object) {
                continue;
            }
            for (key, prop) in flat["properties"].as_object().into_iter().flatten() {
                match properties.get_mut(key) {
                    Some(seen) => merge_enum(seen, prop),
                    None => {
                        properties.insert(key.clone(), prop.clone());
                    }
                }
            }
            let mine = flat["required"].as_array().cloned().unwrap_or_default();
            required = Some(match required {
                None => mine,
                Some(mut r) if all => {
                    r.extend(mine.into_iter().filter(|k| !r.contains(k)).collect::<Vec<_>>());
                    r
                }
                Some(r) => r.into_iter().filter(|k| mine.contains(k)).collect(),
            });
        }
        let mut out = Map::new();
        out.insert("type".into(), json!("object"));
        out.insert("properties".into(), Value::Object(properties));
        if let Some(r) = required.filter(|r| !r.is_empty()) {
            out.insert("required".into(), json!(r));
        }
        out
    }
}

/// A property two variants share: a tag's values add up to one enum.
fn merge_enum(seen: &mut Value, other: &Value) {
    let (Some(a), Some(b)) =
        (seen.get("enum").and_then(Value::as_array).cloned(), other.get("enum").and_then(Value::as_array))
    else {
        return;
    };
    let mut values = a;
    values.extend(b.iter().filter(|v| !values.contains(v)).cloned().collect::<Vec<_>>());
    seen["enum"] = json!(values);
}
