//! The HTTP doors' side of the one privilege decision
//! ([`Command::authorize`]): a refusal as a `403`, and for an end user's
//! token the runtime its command goes to. Grants name runtimes, so the
//! target is resolved before the decision, and the command then goes to
//! that runtime and no other (not to one that came online meanwhile).

use super::error::MissingGrant;
use super::{ApiError, AppState, hints};
use crate::protocol::{Command, Refusal, Role};
use crate::runtime::{DispatchError, RouteError, Target};

/// May `role` send `command` to `runtime`? A refusal is a `403`: for the
/// client token it says what needs the admin token (and that none is
/// configured, when none is); for an end user what their grants lack.
pub(super) fn authorise(state: &AppState, role: &Role, command: &Command, runtime: &str) -> Result<(), ApiError> {
    command.authorize(role, runtime).map_err(|refusal| refused(state, role, refusal))
}

/// A refusal as the HTTP doors answer it: to an end user, RFC 6750's
/// `insufficient_scope`, naming the missing action and scope (no action for
/// a command no grant can allow).
pub(super) fn refused(state: &AppState, role: &Role, refusal: Refusal) -> ApiError {
    match role {
        Role::User(_) => {
            let detail = refusal.to_string();
            let missing = match refusal {
                Refusal::Scope { action, runtime, agent_id, conversation_id, .. } => MissingGrant {
                    action: Some(action.to_owned()),
                    runtime: Some(runtime).filter(|r| !r.is_empty()),
                    agent_id,
                    conversation_id,
                },
                _ => MissingGrant::default(),
            };
            ApiError::InsufficientScope { detail, missing: Box::new(missing) }
        }
        _ if state.auth.has_admin() => ApiError::Forbidden(refusal.to_string()),
        _ => ApiError::Forbidden(format!("{refusal}, and no LETTA_BRIDGE_ADMIN_TOKEN is configured")),
    }
}

/// Decides whether `role` may send `command` to the runtime `name` names
/// (or the only one online), before anything else happens (the
/// `Idempotency-Key` included); answers the runtime to dispatch it to: the
/// named one for the client and admin tokens (routed as always), the
/// resolved device for an end user.
///
/// An end user learns nothing of runtimes their grants do not name: when
/// several are online and none is named, the candidates are the ones they
/// may send this command to, and a refusal comes before "offline" or
/// "unknown" for a runtime outside their grants.
pub(super) fn decide(
    state: &AppState,
    role: &Role,
    command: &Command,
    name: Option<String>,
    base: &str,
) -> Result<Option<String>, ApiError> {
    if !matches!(role, Role::User(_)) {
        authorise(state, role, command, "")?;
        return Ok(name);
    }
    match state.runtimes.resolve(name.as_deref()) {
        Ok(target) => {
            let device = device(&target);
            authorise(state, role, command, &device)?;
            Ok(Some(device))
        }
        Err(RouteError::Ambiguous(ids)) => {
            let granted: Vec<String> = ids.into_iter().filter(|id| command.authorize(role, id).is_ok()).collect();
            if granted.is_empty() {
                // A scope with no runtime would have matched them all.
                authorise(state, role, command, "")?;
            }
            Err(ApiError::Ambiguous(granted))
        }
        Err(e) => {
            authorise(state, role, command, name.as_deref().unwrap_or(""))?;
            Err(hints::dispatch_error(DispatchError::Route(e), base))
        }
    }
}

/// The device a target is.
pub(super) fn device(target: &Target) -> String {
    match target {
        Target::Local(link) => link.runtime_id.to_string(),
        Target::Remote(remote) => remote.runtime_id.to_string(),
    }
}
