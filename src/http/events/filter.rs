//! Which events a subscriber of `GET /events` wants and may read: the
//! query's filters, an end user's grants, and a feed's own filter, matched
//! against every event the subscriber reads.

use std::sync::Arc;

use super::EventParams;
use crate::http::ApiError;
use crate::hub::Event;
use crate::protocol::access::UserPrincipal;
use crate::protocol::scope::filter_admits;
use crate::store::FeedFilter;

/// Most event types one `types` filter may name. Every subscriber matches
/// every event against its filter, so the filter's size is CPU spent per
/// event per subscriber; the bridge and the runtime publish a few dozen types.
const MAX_FILTER_TYPES: usize = 64;

/// Longest event type in a `types` filter, in characters (the longest
/// event type today is under 40).
const MAX_FILTER_TYPE_LEN: usize = 128;

/// Longest `types` value, in bytes (after percent-decoding).
const MAX_FILTER_TYPES_BYTES: usize = 4096;

/// Which events a subscriber wants, and may read.
pub(super) struct Filter {
    runtime: Option<String>,
    agent_id: Option<String>,
    conversation_id: Option<String>,
    /// Sorted and without repeats, for a binary search per event.
    types: Option<Vec<Box<str>>>,
    /// An end user's stream: only what their grants let them read.
    user: Option<Arc<UserPrincipal>>,
    /// A feed's stream: only what the feed's filter keeps, too.
    feed: Option<Box<Filter>>,
}

impl Filter {
    /// The filter of `p` for `user`'s stream (if an end user's); a `400`
    /// when `types` is over its limits.
    pub(super) fn parse(p: EventParams, user: Option<Arc<UserPrincipal>>) -> Result<Self, ApiError> {
        let types = p.types.as_deref().map(parse_types).transpose()?;
        Ok(Self {
            runtime: p.runtime,
            agent_id: p.agent_id,
            conversation_id: p.conversation_id,
            types,
            user,
            feed: None,
        })
    }

    /// This filter, kept within `feed`'s too (its types were checked when it was made).
    pub(super) fn within(mut self, feed: Option<&FeedFilter>) -> Result<Self, ApiError> {
        if let Some(f) = feed {
            let params = EventParams {
                runtime: f.runtime.clone(),
                agent_id: f.agent_id.clone(),
                conversation_id: f.conversation_id.clone(),
                types: f.types.as_ref().map(|t| t.join(",")),
                ..EventParams::default()
            };
            self.feed = Some(Box::new(Self::parse(params, None)?));
        }
        Ok(self)
    }

    pub(super) fn matches(&self, e: &Event) -> bool {
        let want = [self.runtime.as_deref(), self.agent_id.as_deref(), self.conversation_id.as_deref()];
        filter_admits(want, e.runtime_id.as_deref(), e.agent_id.as_deref(), e.conversation_id.as_deref())
            && self.types.as_ref().is_none_or(|t| t.binary_search_by(|t| (**t).cmp(&*e.kind)).is_ok())
            && self.user.as_ref().is_none_or(|u| {
                u.grants.reads_event(
                    &e.kind,
                    e.runtime_id.as_deref(),
                    e.agent_id.as_deref(),
                    e.conversation_id.as_deref(),
                )
            })
            && self.feed.as_ref().is_none_or(|f| f.matches(e))
    }
}

/// The types of a `types` value (comma-separated, blanks ignored), within
/// [`MAX_FILTER_TYPES_BYTES`], [`MAX_FILTER_TYPES`] and [`MAX_FILTER_TYPE_LEN`].
pub(in crate::http) fn parse_types(raw: &str) -> Result<Vec<Box<str>>, ApiError> {
    if raw.len() > MAX_FILTER_TYPES_BYTES {
        return Err(ApiError::BadRequest(format!(
            "`types` is {} bytes long; at most {MAX_FILTER_TYPES_BYTES} bytes are allowed",
            raw.len()
        )));
    }
    let mut types: Vec<Box<str>> = raw.split(',').map(str::trim).filter(|t| !t.is_empty()).map(Box::from).collect();
    if let Some(long) = types.iter().find(|t| t.chars().count() > MAX_FILTER_TYPE_LEN) {
        return Err(ApiError::BadRequest(format!(
            "a type in `types` is {} characters long; at most {MAX_FILTER_TYPE_LEN} characters are allowed",
            long.chars().count()
        )));
    }
    types.sort_unstable();
    types.dedup();
    if types.len() > MAX_FILTER_TYPES {
        return Err(ApiError::BadRequest(format!(
            "`types` names {} types; at most {MAX_FILTER_TYPES} types are allowed",
            types.len()
        )));
    }
    Ok(types)
}
