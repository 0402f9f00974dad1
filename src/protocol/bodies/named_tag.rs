//! Tagged unions whose tag must be spelled out: serde's derive also takes a
//! variant's index as its tag (`"behavior": 0` for `allow`), which the
//! documented bodies do not allow.

use serde::de::{DeserializeOwned, Error};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The tag members a body's unions use (`kind`, `behavior`).
const TAGS: &[&str] = &["kind", "behavior"];

/// A union whose tag, when present, is a string.
pub fn required<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let value = Value::deserialize(d)?;
    if let Some(tag) = TAGS.iter().find(|t| value.get(**t).is_some_and(|v| !v.is_string())) {
        return Err(D::Error::custom(format!("`{tag}` must be a string")));
    }
    T::deserialize(value).map_err(D::Error::custom)
}

/// The same, optional (null counts as absent).
pub fn optional<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(value) => required(value).map(Some).map_err(D::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ApprovalResponse;
    use serde_json::json;

    #[test]
    fn a_decision_names_its_behavior_and_not_its_index() {
        let allow: ApprovalResponse =
            serde_json::from_value(json!({"request_id": "perm-1", "decision": {"behavior": "allow"}})).unwrap();
        assert!(allow.decision.is_some());
        let index =
            serde_json::from_value::<ApprovalResponse>(json!({"request_id": "perm-1", "decision": {"behavior": 0}}));
        assert!(index.unwrap_err().to_string().contains("`behavior` must be a string"));
        let none: ApprovalResponse =
            serde_json::from_value(json!({"request_id": "perm-1", "decision": null, "error": "x"})).unwrap();
        assert!(none.decision.is_none());
    }
}
