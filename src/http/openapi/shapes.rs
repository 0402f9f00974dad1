//! The shape importers and client generators need, given to the derived
//! document (as JSON, once, at start-up): public operations say
//! `security: []`, and tagged unions are `oneOf` named variants with a
//! `discriminator`. The JSON bodies the bridge accepts and returns do not
//! change: only how the document describes them.

use serde_json::{Map, Value, json};

/// Every pass, in order.
pub fn apply(doc: &mut Value) {
    public_operations(doc);
    exactly_one_answer(doc);
    a_user_message_with_text(doc);
    let copied = discriminated_unions(doc);
    drop_unused(doc, copied);
    free_form_objects(doc);
}

/// An approval answer carries exactly one of `decision` and `error` that is
/// not null (null counts as absent): it is neither both nor neither. Said
/// with `not`, which validators check and generators pass over, rather than
/// a union, which generators turn into a type with both fields required.
fn exactly_one_answer(doc: &mut Value) {
    let Some(answer) = doc.pointer_mut("/components/schemas/ApprovalResponse").and_then(Value::as_object_mut) else {
        return;
    };
    let both = json!({"required": ["decision", "error"],
                      "properties": {"decision": {"type": "object"}, "error": {"type": "string"}}});
    let neither =
        json!({"properties": {"decision": {"not": {"type": "object"}}, "error": {"not": {"type": "string"}}}});
    answer.insert("not".into(), json!({"anyOf": [both, neither]}));
}

/// A chat completion request (the OpenAI-compatible door) holds a `user`
/// message with text, and a message's content is text, parts or null; a
/// Responses API request's `input` is text or items holding one.
fn a_user_message_with_text(doc: &mut Value) {
    if let Some(message) = doc.pointer_mut("/components/schemas/ChatMessage/properties").and_then(Value::as_object_mut)
    {
        let content = json!({"description": "Text, or content parts (`{\"type\":\"text\",\"text\":\"…\"}`; only the text parts of the last user message with text are sent)",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {}}, {"type": "null"}]});
        message.insert("content".into(), content);
    }
    let text_part = json!({"type": "object", "required": ["type", "text"],
        "properties": {"type": {"enum": ["text", "input_text"]}, "text": {"type": "string", "minLength": 1}}});
    let text = json!({"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "contains": text_part}]});
    let user = json!({"type": "object", "required": ["role", "content"],
        "properties": {"role": {"const": "user"}, "content": text}});
    if let Some(messages) =
        doc.pointer_mut("/components/schemas/ChatCompletionRequest/properties/messages").and_then(Value::as_object_mut)
    {
        messages.insert("contains".into(), user.clone());
    }
    // The Responses API's `input`: text, or items (messages, and others of a `type` passed over).
    let Some(request) =
        doc.pointer_mut("/components/schemas/ResponseRequest/properties").and_then(Value::as_object_mut)
    else {
        return;
    };
    let other = json!({"type": "object", "required": ["type"], "properties": {"type": {"type": "string", "not": {"const": "message"}}}});
    let message = json!({"type": "object", "required": ["role"], "properties": {
        "type": {"const": "message"},
        "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
        "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {}}, {"type": "null"}]}}});
    let mut user_item = user;
    user_item["properties"]["type"] = json!({"const": "message"});
    let items = json!({"type": "array", "minItems": 1, "items": {"anyOf": [other, message]}, "contains": user_item});
    let input = json!({"description": "Text, or input items: only the last `user` message with text is sent (the agent keeps its own history)",
        "anyOf": [{"type": "string", "minLength": 1}, items]});
    request.insert("input".into(), input);
}

/// Removes the schemas in `names` that nothing references any more.
fn drop_unused(doc: &mut Value, names: Vec<String>) {
    let text = doc.to_string();
    for name in names {
        if !text.contains(&format!("\"#/components/schemas/{name}\""))
            && let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut)
        {
            schemas.remove(&name);
        }
    }
}

/// A `Map<String, Value>` comes out as `additionalProperties: {}` with
/// `propertyNames: {type: string}`; generators read the plain equivalent
/// (`additionalProperties: true`; JSON keys are strings anyway) better.
fn free_form_objects(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            if object.get("propertyNames") == Some(&json!({"type": "string"})) {
                object.remove("propertyNames");
            }
            if object.get("additionalProperties") == Some(&json!({})) {
                object.insert("additionalProperties".into(), json!(true));
            }
            object.values_mut().for_each(free_form_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(free_form_objects),
        _ => {}
    }
}

/// An operation that names no security requirement needs no token: say so
/// with `security: []`, as linters and importers expect.
fn public_operations(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for (method, op) in item.iter_mut() {
            if !is_method(method) {
                continue;
            }
            if let Some(op) = op.as_object_mut() {
                op.entry("security").or_insert_with(|| json!([]));
            }
        }
    }
}

/// The operations of a path item (its other members are parameters and the like).
pub fn is_method(key: &str) -> bool {
    matches!(key, "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace")
}

/// A serde internally tagged enum comes out of the derive as a `oneOf` of
/// anonymous members: `allOf` [the variant's schema, `{tag: enum [value]}`]
/// for a newtype variant, an inline object for a struct variant. Generators
/// drop such unions (and the operations that use them), so each member
/// becomes a named schema, `<Value><last word of the union's name>`
/// (`InputPayload`'s `create_message` → `CreateMessagePayload`), and the
/// union a `oneOf` of references with a `discriminator` mapping each tag
/// value to its variant.
/// Returns the schemas a variant was copied from (now perhaps unused).
fn discriminated_unions(doc: &mut Value) -> Vec<String> {
    let mut copied = Vec::new();
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else { return copied };
    let unions: Vec<String> = schemas.keys().cloned().collect();
    for name in unions {
        let Some((tag, members)) = tagged_members(&schemas[&name]) else { continue };
        let suffix = last_word(&name);
        let mut mapping = Map::new();
        let mut refs = Vec::new();
        for (value, member) in members {
            if let Some(source) = member.pointer("/allOf/0/$ref").and_then(Value::as_str) {
                copied.extend(source.rsplit('/').next().map(str::to_owned));
            }
            let member = standalone(schemas, member, &tag, &value);
            let variant = format!("{}{suffix}", pascal(&value));
            let target = format!("#/components/schemas/{variant}");
            mapping.insert(value, Value::String(target.clone()));
            refs.push(json!({"$ref": target}));
            schemas.insert(variant, member);
        }
        let union = schemas[&name].as_object_mut().expect("a tagged union is an object");
        union.insert("oneOf".into(), Value::Array(refs));
        union.insert("discriminator".into(), json!({"propertyName": tag, "mapping": mapping}));
    }
    copied
}

/// A newtype variant (`allOf` [$ref, {tag}]) as one schema of its own: a
/// copy of the referenced schema with the tag among its required properties
/// (generators look for the tag in the variant itself). A struct variant
/// already is one.
fn standalone(schemas: &Map<String, Value>, member: Value, tag: &str, value: &str) -> Value {
    let Some(target) = member.pointer("/allOf/0/$ref").and_then(Value::as_str) else { return member };
    let Some(mut copy) = target.rsplit('/').next().and_then(|name| schemas.get(name)).cloned() else { return member };
    let with_tag = |object: &mut Value| {
        object["properties"][tag] = json!({"type": "string", "enum": [value]});
        match object.get_mut("required").and_then(Value::as_array_mut) {
            Some(required) => required.insert(0, json!(tag)),
            None => object["required"] = json!([tag]),
        }
    };
    // An object, or an `allOf` whose first member is the object (a refined schema).
    if copy.get("properties").is_some() {
        with_tag(&mut copy);
    } else if let Some(first) = copy.pointer_mut("/allOf/0").filter(|f| f.get("properties").is_some()) {
        with_tag(first);
    } else {
        return member;
    }
    if let Some(description) = member.get("description") {
        copy["description"] = description.clone();
    }
    copy
}

/// The tag and the `(value, member)` pairs of a union of tagged members, if
/// `schema` is one: every member carries the same required tag property
/// with one string value.
fn tagged_members(schema: &Value) -> Option<(String, Vec<(String, Value)>)> {
    let members = schema.get("oneOf")?.as_array()?;
    let mut tag: Option<String> = None;
    let mut out = Vec::new();
    for member in members {
        // A newtype variant: allOf [$ref, {tag}]; a struct variant: the object itself.
        let tagged = match member.get("allOf").and_then(Value::as_array) {
            Some(all) if all.len() == 2 && all[0].get("$ref").is_some() => &all[1],
            Some(_) => return None,
            None => member,
        };
        let (key, value) = single_tag(tagged)?;
        if tag.get_or_insert_with(|| key.clone()) != &key {
            return None;
        }
        out.push((value, member.clone()));
    }
    Some((tag?, out))
}

/// The one required property of `object` whose schema is a one-value string enum.
fn single_tag(object: &Value) -> Option<(String, String)> {
    let required = object.get("required")?.as_array()?;
    let properties = object.get("properties")?.as_object()?;
    let mut tags = properties.iter().filter_map(|(key, prop)| {
        let values = prop.get("enum")?.as_array()?;
        let [Value::String(value)] = values.as_slice() else { return None };
        required.contains(&Value::String(key.clone())).then(|| (key.clone(), value.clone()))
    });
    let tag = tags.next()?;
    tags.next().is_none().then_some(tag)
}

/// `create_message` → `CreateMessage`.
fn pascal(snake: &str) -> String {
    snake
        .split(['_', '-'])
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// `ApprovalDecision` → `Decision`.
fn last_word(camel: &str) -> &str {
    let start = camel.char_indices().rev().find(|(_, c)| c.is_ascii_uppercase()).map_or(0, |(i, _)| i);
    &camel[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_union_becomes_named_variants_with_a_discriminator() {
        let mut doc = json!({"components": {"schemas": {
          "CreateMessage": {"type": "object", "required": ["messages"], "properties": {"messages": {"type": "array"}}},
          "InputPayload": {"oneOf": [
            {"allOf": [{"$ref": "#/components/schemas/CreateMessage"},
                       {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string", "enum": ["create_message"]}}}]},
            {"type": "object", "required": ["kind", "x"], "properties": {"kind": {"type": "string", "enum": ["other_thing"]}, "x": {"type": "string"}}},
        ]}}}});
        discriminated_unions(&mut doc);
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["InputPayload"]["discriminator"]["propertyName"], "kind");
        assert_eq!(
            schemas["InputPayload"]["discriminator"]["mapping"]["other_thing"],
            "#/components/schemas/OtherThingPayload"
        );
        assert_eq!(schemas["InputPayload"]["oneOf"][0], json!({"$ref": "#/components/schemas/CreateMessagePayload"}));
        let variant = &schemas["CreateMessagePayload"];
        assert_eq!(variant["properties"]["messages"]["type"], "array", "a copy of CreateMessage");
        assert_eq!(variant["properties"]["kind"]["enum"], json!(["create_message"]));
        assert_eq!(variant["required"], json!(["kind", "messages"]));
        assert_eq!(schemas["OtherThingPayload"]["properties"]["x"]["type"], "string");
    }

    #[test]
    fn a_union_without_one_shared_tag_is_left_alone() {
        let untagged = json!({"oneOf": [{"type": "string"}, {"type": "array"}]});
        let mut doc = json!({"components": {"schemas": {"MessageContent": untagged.clone()}}});
        discriminated_unions(&mut doc);
        assert_eq!(doc["components"]["schemas"]["MessageContent"], untagged);
    }

    #[test]
    fn a_free_form_object_says_so_plainly() {
        let mut doc = json!({"properties": {"input": {"type": "object", "additionalProperties": {}, "propertyNames": {"type": "string"}}}});
        free_form_objects(&mut doc);
        assert_eq!(doc["properties"]["input"], json!({"type": "object", "additionalProperties": true}));
    }

    #[test]
    fn operations_without_security_say_they_need_none() {
        let mut doc = json!({"paths": {"/healthz": {"get": {}, "parameters": []}, "/x": {"post": {"security": [{"client": []}]}}}});
        public_operations(&mut doc);
        assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([]));
        assert_eq!(doc["paths"]["/x"]["post"]["security"], json!([{"client": []}]));
        assert!(doc["paths"]["/healthz"]["parameters"].is_array());
    }
}
