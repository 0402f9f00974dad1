//! What a runtime may name itself with, and how much it may say about
//! itself: the `deviceId`, `connectionName`, `listenerInstanceId` and
//! `metadata` of a registration (and the socket's query), each bounded, so
//! that registrations cannot fill the bridge's memory or `GET /runtimes`.

use serde_json::{Map, Value};

use super::ApiError;
use crate::auth::valid_device_id;

/// Most characters of a `connectionName`.
pub const MAX_CONNECTION_NAME_CHARS: usize = 256;

/// Most characters of a `listenerInstanceId` (the runtime's own rule:
/// 1-128 characters).
pub const MAX_LISTENER_INSTANCE_ID_CHARS: usize = 128;

/// Most bytes of each string in `metadata` (at any depth, keys included).
pub const MAX_METADATA_STRING_BYTES: usize = 1024;

/// Most bytes of the whole `metadata` object, serialized as JSON. The real
/// runtime's (version, platform, its supported commands, …) is ~1.5 KB.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// 1-128 characters of `[A-Za-z0-9._:-]`.
pub fn check_device_id(id: &str) -> Result<(), ApiError> {
    if valid_device_id(id) {
        Ok(())
    } else {
        Err(ApiError::Invalid("deviceId must be 1-128 characters of [A-Za-z0-9._:-]".into()))
    }
}

/// At most [`MAX_CONNECTION_NAME_CHARS`] characters, no control characters.
pub fn check_name(name: String) -> Result<String, ApiError> {
    if printable_within(&name, MAX_CONNECTION_NAME_CHARS) {
        Ok(name)
    } else {
        Err(ApiError::Invalid(format!(
            "connectionName must be at most {MAX_CONNECTION_NAME_CHARS} printable characters"
        )))
    }
}

/// At most [`MAX_LISTENER_INSTANCE_ID_CHARS`] characters, no control characters.
pub fn check_listener_instance_id(id: &str) -> Result<(), ApiError> {
    if printable_within(id, MAX_LISTENER_INSTANCE_ID_CHARS) {
        Ok(())
    } else {
        Err(ApiError::Invalid(format!(
            "listenerInstanceId must be at most {MAX_LISTENER_INSTANCE_ID_CHARS} printable characters"
        )))
    }
}

/// Every string of `metadata` within [`MAX_METADATA_STRING_BYTES`], and the
/// whole within [`MAX_METADATA_BYTES`]; the error names the field.
pub fn check_metadata(metadata: &Map<String, Value>) -> Result<(), ApiError> {
    let mut path = String::from("metadata");
    check_strings(&mut path, metadata)?;
    let mut size = ByteCount(0);
    serde_json::to_writer(&mut size, metadata).map_err(|e| ApiError::Internal(e.into()))?;
    if size.0 > MAX_METADATA_BYTES {
        return Err(ApiError::Invalid(format!(
            "metadata is {} bytes as JSON; at most {MAX_METADATA_BYTES} are accepted",
            size.0
        )));
    }
    Ok(())
}

fn check_strings(path: &mut String, object: &Map<String, Value>) -> Result<(), ApiError> {
    for (key, value) in object {
        if key.len() > MAX_METADATA_STRING_BYTES {
            return Err(too_long(&format!("a key of {path}")));
        }
        let len = path.len();
        path.push('.');
        path.push_str(key);
        check_value(path, value)?;
        path.truncate(len);
    }
    Ok(())
}

fn check_value(path: &mut String, value: &Value) -> Result<(), ApiError> {
    match value {
        Value::String(s) if s.len() > MAX_METADATA_STRING_BYTES => Err(too_long(path)),
        Value::Object(object) => check_strings(path, object),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                check_value(path, item)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn too_long(field: &str) -> ApiError {
    // A key can be long: the message names at most its first characters.
    let field: String = field.chars().take(200).collect();
    ApiError::Invalid(format!("{field} is longer than {MAX_METADATA_STRING_BYTES} bytes"))
}

fn printable_within(text: &str, max_chars: usize) -> bool {
    text.chars().count() <= max_chars && !text.chars().any(char::is_control)
}

/// Counts what is written (the serialized size, without keeping it).
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn detail(metadata: Value) -> Option<String> {
        check_metadata(metadata.as_object().unwrap()).err().map(|e| e.to_string())
    }

    #[test]
    fn metadata_strings_are_bounded_at_any_depth_and_the_error_names_the_field() {
        let long = "x".repeat(MAX_METADATA_STRING_BYTES + 1);
        let fits = "x".repeat(MAX_METADATA_STRING_BYTES);
        assert_eq!(detail(json!({"os": fits, "n": 1, "list": ["a"], "o": {"k": null}})), None);
        assert!(detail(json!({"os": long})).unwrap().starts_with("metadata.os is longer"));
        assert!(detail(json!({"self_update": {"note": long}})).unwrap().starts_with("metadata.self_update.note "));
        assert!(
            detail(json!({"supported_commands": ["a", long]})).unwrap().starts_with("metadata.supported_commands[1] ")
        );
        assert!(detail(json!({long.clone(): 1})).unwrap().starts_with("a key of metadata is longer"));
    }

    #[test]
    fn the_whole_metadata_object_is_bounded() {
        let fits = "x".repeat(MAX_METADATA_STRING_BYTES);
        let many: Map<String, Value> = (0..20).map(|i| (format!("k{i}"), json!(fits))).collect();
        let text = detail(Value::Object(many)).unwrap();
        assert!(text.starts_with("metadata is ") && text.contains(&MAX_METADATA_BYTES.to_string()), "{text}");
    }

    #[test]
    fn names_and_listener_ids_are_bounded_and_printable() {
        assert!(check_name("n".repeat(MAX_CONNECTION_NAME_CHARS)).is_ok());
        assert!(check_name("n".repeat(MAX_CONNECTION_NAME_CHARS + 1)).is_err());
        assert!(check_name("a\nb".into()).is_err());
        assert!(check_listener_instance_id("server-08846e81b3a87fd9").is_ok());
        assert!(check_listener_instance_id(&"l".repeat(MAX_LISTENER_INSTANCE_ID_CHARS + 1)).is_err());
    }
}
