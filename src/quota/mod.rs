//! Per-credential limits: how many requests (commands included) a
//! credential may make per second, and how many streams it may hold open.
//! A credential is an end user (`user:<sub>` of their token, whichever
//! token they present: LETTA_BRIDGE_USER_*) or the client token (`client`:
//! LETTA_BRIDGE_CLIENT_*, none of its own unless set, since it is usually
//! one backend speaking for many users); the admin token is the operator's
//! and exempt (the instance-wide limits still hold both).
//!
//! Rates are token buckets in a [`RateStore`]: this process's, or the
//! cluster's Redis, so a user's budget is one across instances. Streams
//! are counted in this instance ([`StreamQuota`], freed when dropped): a
//! user's streams on several instances add up to at most that many each.
//!
//! Every door passes here once per request: the HTTP doors through the
//! caller's credential ([`crate::http`]'s token check), and each command
//! frame of a Letta client's socket before it is sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::protocol::Role;
use crate::store::{Rate, RateStore};

pub use crate::metrics::RATE_LIMITED;

/// What the limits are.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Each end user's.
    pub user: Limit,
    /// The client token's.
    pub client: Limit,
}

/// One credential's limits; `None`: none of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limit {
    /// Requests per second, and the burst.
    pub rate: Option<Rate>,
    /// Most streams (event streams, feed streams, Letta client sockets) it
    /// holds open on this instance.
    pub streams: Option<usize>,
}

/// The limits and what each credential holds now. Cheap to share (`Arc`).
pub struct Quotas {
    settings: Settings,
    rates: Arc<dyn RateStore>,
    /// Streams open by credential; a credential with none has no entry.
    streams: Mutex<HashMap<Box<str>, usize>>,
}

/// A limit a credential reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Limited {
    /// Its requests came faster than its rate; the next one is allowed after `retry_after`.
    Rate {
        /// `client` or `user:<sub>`.
        credential: String,
        /// The rate it went beyond.
        rate: Rate,
        /// Until its next token.
        retry_after: Duration,
    },
    /// It holds `max` streams open on this instance.
    Streams {
        /// `client` or `user:<sub>`.
        credential: String,
        /// Its most streams.
        max: usize,
    },
}

impl Limited {
    /// The limit's name, as metrics and problems say it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rate { .. } => "commands",
            Self::Streams { .. } => "streams",
        }
    }

    /// How long before trying again is worth it (whole seconds, at least one).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Self::Rate { retry_after, .. } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
            Self::Streams { .. } => 1,
        }
    }
}

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rate { credential, rate, retry_after } => write!(
                f,
                "{credential} made more than {} requests per second (burst {}; {}); retry after {retry_after:?}",
                rate.per_second,
                rate.burst,
                setting(credential, "RATE")
            ),
            Self::Streams { credential, max } => write!(
                f,
                "{credential} holds {max} streams open on this instance, its most ({}); close one or retry later",
                setting(credential, "STREAMS")
            ),
        }
    }
}

/// The setting of `credential`'s limit `what` (`RATE`, `STREAMS`).
fn setting(credential: &str, what: &str) -> String {
    let kind = if credential.starts_with("user:") { "USER" } else { "CLIENT" };
    format!("LETTA_BRIDGE_{kind}_{what}")
}

/// A stream's place under its credential's limit; freed when dropped.
pub struct StreamQuota {
    quotas: Arc<Quotas>,
    credential: Box<str>,
}

impl Quotas {
    /// Limits of `settings`, rates kept in `rates`.
    pub fn new(settings: Settings, rates: Arc<dyn RateStore>) -> Arc<Self> {
        Arc::new(Self { settings, rates, streams: Mutex::default() })
    }

    /// The limits.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The credential `role` counts against and its limits; `None` for the
    /// admin token.
    pub fn credential(&self, role: &Role) -> Option<(String, Limit)> {
        match role {
            Role::Admin => None,
            Role::Client => Some((role.principal().into_owned(), self.settings.client)),
            Role::User(_) => Some((role.principal().into_owned(), self.settings.user)),
        }
    }

    /// Counts one request of `role`; refused beyond its rate. When the
    /// shared store cannot answer, the request goes through (the store's
    /// own failure shows in its metrics and `/readyz`).
    pub async fn request(&self, role: &Role) -> Result<(), Limited> {
        let Some((credential, Limit { rate: Some(rate), .. })) = self.credential(role) else { return Ok(()) };
        match self.rates.take(&credential, rate).await {
            Ok(None) => Ok(()),
            Ok(Some(retry_after)) => Err(self.refused(Limited::Rate { credential, rate, retry_after })),
            Err(e) => {
                tracing::debug!(error = %e, "the rate store did not answer; the request goes through");
                Ok(())
            }
        }
    }

    /// A place for one more stream of `role` (none needed for the admin token).
    pub fn stream(self: &Arc<Self>, role: &Role) -> Result<Option<StreamQuota>, Limited> {
        let Some((credential, Limit { streams: Some(max), .. })) = self.credential(role) else { return Ok(None) };
        let mut streams = self.lock();
        let open = streams.entry(credential.as_str().into()).or_insert(0);
        if *open >= max {
            drop(streams);
            return Err(self.refused(Limited::Streams { credential, max }));
        }
        *open += 1;
        Ok(Some(StreamQuota { quotas: self.clone(), credential: credential.into() }))
    }

    /// Streams `role` holds open on this instance.
    pub fn streams_of(&self, role: &Role) -> usize {
        self.credential(role).and_then(|(c, _)| self.lock().get(c.as_str()).copied()).unwrap_or(0)
    }

    fn refused(&self, limited: Limited) -> Limited {
        ::metrics::counter!(RATE_LIMITED, "reason" => limited.reason()).increment(1);
        limited
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, usize>> {
        self.streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for StreamQuota {
    fn drop(&mut self) {
        let mut streams = self.quotas.lock();
        if let Some(open) = streams.get_mut(&self.credential) {
            *open -= 1;
            if *open == 0 {
                streams.remove(&self.credential);
            }
        }
    }
}

#[cfg(test)]
mod tests;
