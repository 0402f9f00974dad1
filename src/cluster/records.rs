//! The runtimes as the engine records them (`rt:<device>` hashes, written
//! by `log.lua`), read for `GET /runtimes` on any instance; and the
//! registration a runtime gave, stored in its record as JSON
//! ([`RegistrationRecord`]).

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use redis::RedisError;
use serde::{Deserialize, Serialize};

use super::engine::Engine;
use crate::runtime::{RuntimeInfo, RuntimePage, rfc3339};

/// What a runtime said of itself, in its record's `info` field.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RegistrationRecord {
    #[serde(default)]
    pub(super) connection_id: Option<String>,
    #[serde(default)]
    pub(super) connection_name: Option<String>,
    #[serde(default)]
    pub(super) version: Option<String>,
    #[serde(default)]
    pub(super) os: Option<String>,
    #[serde(default)]
    pub(super) node_version: Option<String>,
}

impl RegistrationRecord {
    /// The record of a runtime as this instance's registry knows it.
    pub(super) fn of(info: &RuntimeInfo) -> Self {
        Self {
            connection_id: info.connection_id.clone(),
            connection_name: info.connection_name.clone(),
            version: info.version.clone(),
            os: info.os.clone(),
            node_version: info.node_version.clone(),
        }
    }

    /// As stored.
    pub(super) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("records serialise")
    }

    /// As stored; a missing or unreadable record reads as empty.
    pub(super) fn from_json(json: Option<&str>) -> Self {
        json.and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default()
    }
}

/// A runtime as the engine records it (`rt:<device>`'s fields).
pub(super) fn runtime_info(id: &str, fields: &HashMap<String, String>) -> RuntimeInfo {
    let registration = RegistrationRecord::from_json(fields.get("info").map(String::as_str));
    let time = |name: &str| {
        fields.get(name).and_then(|v| v.parse::<u64>().ok()).map(|ms| rfc3339(UNIX_EPOCH + Duration::from_millis(ms)))
    };
    let online = fields.get("online").is_some_and(|v| v == "1");
    RuntimeInfo {
        id: id.to_owned(),
        online,
        connection_id: registration.connection_id,
        connection_name: registration.connection_name,
        online_since: time("online_since").filter(|_| online),
        last_pong_at: time("last_pong").filter(|_| online),
        offline_since: time("offline_since").filter(|_| !online),
        version: registration.version,
        os: registration.os,
        node_version: registration.node_version,
        instance: fields.get("node").filter(|_| online).cloned(),
    }
}

/// Every runtime the engine records, sorted by id.
pub(super) async fn list(engine: &Engine) -> Result<Vec<RuntimeInfo>, RedisError> {
    let devices: Vec<String> = engine.run(redis::cmd("SMEMBERS").arg(engine.key("devices"))).await?;
    records(engine, devices).await
}

/// At most `limit` runtimes the engine records with ids after `after`,
/// sorted by id: only their records are read.
pub(super) async fn page(engine: &Engine, after: Option<&str>, limit: usize) -> Result<RuntimePage, RedisError> {
    let devices: Vec<String> = engine.run(redis::cmd("SMEMBERS").arg(engine.key("devices"))).await?;
    let mut devices: Vec<String> =
        devices.into_iter().filter(|d| after.is_none_or(|after| d.as_str() > after)).collect();
    devices.sort_unstable();
    let more = devices.len() > limit;
    devices.truncate(limit);
    Ok(RuntimePage { runtimes: records(engine, devices).await?, more })
}

/// The engine's records of `devices`, sorted by id.
async fn records(engine: &Engine, devices: Vec<String>) -> Result<Vec<RuntimeInfo>, RedisError> {
    let mut pipe = redis::pipe();
    for d in &devices {
        pipe.cmd("HGETALL").arg(engine.key(&format!("rt:{d}")));
    }
    let records: Vec<HashMap<String, String>> =
        if devices.is_empty() { Vec::new() } else { engine.pipe(&pipe).await? };
    let mut list: Vec<RuntimeInfo> = devices.iter().zip(records).map(|(d, fields)| runtime_info(d, &fields)).collect();
    list.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_registration_survives_its_record() {
        let record = RegistrationRecord {
            connection_id: Some("conn-1".into()),
            connection_name: Some("laptop".into()),
            version: Some("0.32.18".into()),
            os: Some("linux".into()),
            node_version: None,
        };
        assert_eq!(RegistrationRecord::from_json(Some(&record.to_json())), record);
        assert_eq!(RegistrationRecord::from_json(Some("not json")), RegistrationRecord::default());
    }

    #[test]
    fn an_online_runtime_shows_its_instance_and_times_and_no_offline_time() {
        let info = r#"{"connection_id":"conn-1","connection_name":"laptop","version":"0.32.18","os":"linux","node_version":"v22"}"#;
        let record = fields(&[
            ("online", "1"),
            ("node", "n-a"),
            ("online_since", "0"),
            ("last_pong", "1000"),
            ("offline_since", "5"),
            ("info", info),
        ]);
        let rt = runtime_info("dev-1", &record);
        assert!(rt.online);
        assert_eq!(rt.instance.as_deref(), Some("n-a"));
        assert_eq!(rt.online_since.as_deref(), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!(rt.last_pong_at.as_deref(), Some("1970-01-01T00:00:01.000Z"));
        assert_eq!(rt.offline_since, None);
        assert_eq!((rt.connection_id.as_deref(), rt.os.as_deref()), (Some("conn-1"), Some("linux")));
    }

    #[test]
    fn an_offline_runtime_shows_when_it_left_and_no_instance() {
        let rt = runtime_info("dev-1", &fields(&[("online", "0"), ("node", "n-a"), ("offline_since", "2000")]));
        assert!(!rt.online);
        assert_eq!((rt.instance, rt.online_since), (None, None));
        assert_eq!(rt.offline_since.as_deref(), Some("1970-01-01T00:00:02.000Z"));
    }
}
