//! What the cluster keeps of a hook and a delivery in Redis: typed records
//! with `to_json` / `from_json` (the scripts read and change a delivery's
//! `status`, `attempts`, `last_status`, `last_error` and `next_at` fields).

use serde::{Deserialize, Serialize};

use crate::protocol::UserPrincipal;
use crate::store::TicketUser;
use crate::webhooks::{Delivery, HookFilter, HookInfo, Status};

/// A hook, as `hooks` holds it (its disabled reason is apart, in `hooks-off`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct HookRecord {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub filter: HookFilter,
    pub owner: String,
    /// The end user it reads as ([`TicketUser`]'s JSON), if any.
    pub user: Option<String>,
    /// The secret's bytes.
    pub secret: Vec<u8>,
    pub created_at: u64,
}

impl HookRecord {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a hook serialises")
    }

    pub fn from_json(json: &str) -> Option<Self> {
        serde_json::from_str(json).ok()
    }

    /// The end user it reads as.
    pub fn user(&self) -> Option<UserPrincipal> {
        self.user.as_deref().and_then(TicketUser::from_json)
    }

    /// What the door shows of it.
    pub fn info(&self, disabled: Option<String>, pending: usize) -> HookInfo {
        HookInfo {
            id: self.id.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            filter: self.filter.clone(),
            owner: self.owner.clone(),
            created_at: self.created_at,
            disabled,
            pending,
        }
    }
}

/// A delivery, as a hook's `d` hash holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct DeliveryRecord {
    pub id: String,
    pub event_type: String,
    pub status: Status,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: u64,
    /// The envelope sent (JSON text).
    pub body: String,
    /// When its next attempt is due, in the engine's Unix ms (0: at once).
    #[serde(default)]
    pub next_at: u64,
}

impl DeliveryRecord {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a delivery serialises")
    }

    pub fn from_json(json: &str) -> Option<Self> {
        serde_json::from_str(json).ok()
    }

    /// What `GET …/deliveries` shows.
    pub fn delivery(self) -> Delivery {
        Delivery {
            id: self.id,
            event_type: self.event_type,
            status: self.status,
            attempts: self.attempts,
            last_status: self.last_status,
            last_error: self.last_error,
            created_at: self.created_at,
            body: self.body.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_record_reads_back_as_written_and_as_lua_rewrites_it() {
        let record = DeliveryRecord {
            id: "msg_1".into(),
            event_type: "turn.finished".into(),
            status: Status::Pending,
            attempts: 2,
            last_status: Some(500),
            last_error: Some("HTTP 500".into()),
            created_at: 1_700_000_000,
            body: r#"{"type":"turn.finished","data":{"text":"a/b"}}"#.into(),
            next_at: 1_700_000_000_123,
        };
        assert_eq!(DeliveryRecord::from_json(&record.to_json()), Some(record.clone()));
        // cjson escapes `/` and writes integers as plain numbers.
        let lua = r#"{"id":"msg_1","event_type":"turn.finished","status":"pending","attempts":2,"last_status":500,"last_error":"HTTP 500","created_at":1700000000,"body":"{\"type\":\"turn.finished\",\"data\":{\"text\":\"a\/b\"}}","next_at":1700000000123}"#;
        assert_eq!(DeliveryRecord::from_json(lua), Some(record));
    }

    #[test]
    fn a_hook_record_reads_back_as_written() {
        let record = HookRecord {
            id: "wh_1".into(),
            url: "https://hooks.example.com/".into(),
            events: vec!["turn.finished".into()],
            filter: HookFilter { runtime: Some("dev-1".into()), ..HookFilter::default() },
            owner: "admin".into(),
            user: None,
            secret: vec![1, 2, 3],
            created_at: 5,
        };
        assert_eq!(HookRecord::from_json(&record.to_json()), Some(record));
        assert_eq!(HookRecord::from_json("{}"), None);
    }
}
