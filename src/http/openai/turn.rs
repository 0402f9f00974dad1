//! One chat completion's turn on the core: where it goes (the agent's
//! runtime), who may send it (the one privilege decision), and the turn
//! followed to its end with [`Runtimes::dispatch`](crate::runtime::Runtimes::dispatch)
//! — through the tool approvals it stops at, as LETTA_BRIDGE_OPENAI_APPROVALS
//! says: `deny` answers each (the tool does not run, the turn goes on),
//! `fail` ends the request with `409` `approval_required`, the approval left
//! pending for `POST /approval`. Never a wait for an answer that no OpenAI
//! client can give.

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::error::OpenAiError;
use super::request::{CONVERSATION_HEADER, DEFAULT_CONVERSATION, RUNTIME_HEADER, header_id};
use crate::config::OpenAiApprovals;
use crate::http::{ApiError, AppState, authorise, hints};
use crate::protocol::bodies::{ApprovalCommand, InputCommand, typed_command};
use crate::protocol::turn::{Progress, REQUIRES_APPROVAL, TokenUsage, TurnResult};
use crate::protocol::{Command, Role};
use crate::runtime::{Accepted, Dispatched, Order, RouteError, Wait};

/// Most approval requests of one turn the bridge denies before it gives up
/// (an agent that keeps asking).
const MAX_DENIALS: usize = 8;

/// What a denial tells the agent.
const DENIED: &str = "Denied: this message came through the OpenAI-compatible API, which cannot ask anyone to approve a tool call (LETTA_BRIDGE_OPENAI_APPROVALS=deny). Answer without this tool.";

/// A message for an agent, ready to go: the command and its runtime.
pub struct Prepared {
    /// The `input` frame.
    pub command: Command,
    /// The runtime it goes to.
    pub runtime: String,
}

/// A turn followed to its end.
pub struct Finished {
    /// The last part's result (the first part's request id, stop reason…).
    pub last: TurnResult,
    /// The `input`'s `request_id`.
    pub request_id: String,
    /// Event id just before the input was sent.
    pub cursor: String,
    /// Token usage over every part, when reported.
    pub usage: Option<TokenUsage>,
}

/// The runtime for a message to `agent` in `conversation`, and its command,
/// once `role` may send it: the runtime `named` (X-Letta-Runtime), else the
/// one online runtime the agent was seen on. An end user's refusal comes
/// before "unknown agent" or "offline", as on every door.
pub fn prepare(
    state: &AppState,
    role: &Role,
    agent: &str,
    conversation: &str,
    named: Option<String>,
    content: Value,
    base: &str,
) -> Result<Prepared, OpenAiError> {
    let body = json!({
        "runtime": {"agent_id": agent, "conversation_id": conversation},
        "payload": {"kind": "create_message", "messages": [{"role": "user", "content": content}]},
    });
    let body: InputCommand = serde_json::from_value(body).map_err(|e| ApiError::Invalid(e.to_string()))?;
    let command = typed_command(&body).map_err(|e| OpenAiError::invalid("model", "invalid_value", e.to_string()))?;
    let name = match named {
        Some(name) => name,
        None => match runtime_of(state, agent) {
            Ok(name) => name,
            Err(e) => {
                if matches!(role, Role::User(_)) {
                    authorise::authorise(state, role, &command, "")?;
                }
                return Err(e);
            }
        },
    };
    let runtime = authorise::decide(state, role, &command, Some(name.clone()), base)?.unwrap_or(name);
    Ok(Prepared { command, runtime })
}

/// The one online runtime `agent` was seen on.
fn runtime_of(state: &AppState, agent: &str) -> Result<String, OpenAiError> {
    let seen = state.runtimes.scopes_seen();
    let mut on: Vec<(String, bool)> = Vec::new();
    for known in seen.into_iter().filter(|k| k.scope.agent_id.as_deref() == Some(agent)) {
        if !on.iter().any(|(id, _)| *id == known.runtime_id) {
            on.push((known.runtime_id, known.online));
        }
    }
    let online: Vec<String> = on.iter().filter(|(_, online)| *online).map(|(id, _)| id.clone()).collect();
    match (on.is_empty(), online.as_slice()) {
        (_, [one]) => Ok(one.clone()),
        (true, _) if matches!(state.runtimes.resolve(None), Err(RouteError::NoneOnline)) => {
            Err(ApiError::Unavailable("no runtime is online".into()).into())
        }
        (true, _) => Err(OpenAiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("the bridge has not seen agent {agent:?} on any runtime (GET /v1/models lists those it has); name its runtime with X-Letta-Runtime to reach it anyway"),
        )
        .param("model")),
        (false, []) => Err(ApiError::Unavailable(format!("the runtime of agent {agent:?} is offline")).into()),
        (false, several) => Err(OpenAiError::new(
            StatusCode::CONFLICT,
            "ambiguous_runtime",
            format!("agent {agent:?} is on several runtimes online ({}): name one with X-Letta-Runtime", several.join(", ")),
        )),
    }
}

/// Follows `prepared`'s turn to its end (until `until`), through its
/// approval requests as configured; `written` hears when the input is on
/// the runtime's socket, `progress` the text as it grows.
pub async fn run(
    state: AppState,
    role: Role,
    prepared: Prepared,
    until: Instant,
    written: oneshot::Sender<Accepted>,
    progress: watch::Sender<Progress>,
    base: String,
) -> Result<Finished, OpenAiError> {
    let Prepared { mut command, runtime } = prepared;
    let request_id = command.request_id().to_owned();
    let (mut written, mut usage, mut denials, mut cursor) = (Some(written), None::<TokenUsage>, 0, None);
    loop {
        let order = Order {
            runtime: Some(runtime.clone()),
            command,
            wait: Wait::Turn(until),
            written: written.take(),
            progress: Some(progress.clone()),
        };
        let dispatched = state.runtimes.dispatch(order).await.map_err(|e| hints::dispatch_error(e, &base))?;
        let Dispatched::Turn(turn) = dispatched else {
            return Err(ApiError::Internal(anyhow::anyhow!("a followed turn answered with no turn")).into());
        };
        let first = cursor.get_or_insert_with(|| turn.cursor.clone()).clone();
        if let Some(more) = turn.usage {
            usage = Some(usage.unwrap_or_default() + more);
        }
        let Some(approval) = turn.approval.as_ref().filter(|_| turn.stop_reason == REQUIRES_APPROVAL) else {
            return Ok(Finished { last: *turn, request_id, cursor: first, usage });
        };
        let tool = approval.tool_name.as_deref().unwrap_or("a tool");
        let pending = |why: &str| {
            let message = format!(
                "the agent asked to run {tool} and waits for approval {:?} ({why}); answer it with POST /approval, or set LETTA_BRIDGE_OPENAI_APPROVALS=deny",
                approval.request_id
            );
            OpenAiError::new(StatusCode::CONFLICT, "approval_required", message)
        };
        if state.settings.openai_approvals == OpenAiApprovals::Fail {
            return Err(pending("LETTA_BRIDGE_OPENAI_APPROVALS=fail"));
        }
        denials += 1;
        if denials > MAX_DENIALS {
            return Err(pending(&format!("{MAX_DENIALS} approval requests of this turn were denied already")));
        }
        command = denial(&turn, &approval.request_id)?;
        authorise::authorise(&state, &role, &command, &runtime)?;
    }
}

/// A turn under way for one of the OpenAI doors: where it went, the turn
/// to await, and what its answer is rendered from.
pub struct Begun<F> {
    pub runtime: String,
    pub conversation: String,
    /// The turn followed to its end ([`run`]).
    pub run: F,
    /// Hears when the input is on the runtime's socket.
    pub started: oneshot::Receiver<Accepted>,
    /// The text as it grows.
    pub seen: watch::Receiver<Progress>,
}

/// What both doors do once the body is read: the Letta headers (the
/// conversation, default `default`; the runtime named), the message to
/// `model` prepared for `role` ([`prepare`]) and its turn started, bounded
/// by LETTA_BRIDGE_MAX_WAIT_TIMEOUT.
pub fn begin(
    state: &AppState,
    role: Role,
    headers: &HeaderMap,
    model: &str,
    content: Value,
) -> Result<Begun<impl Future<Output = Result<Finished, OpenAiError>> + Send + 'static>, OpenAiError> {
    let conversation = header_id(headers, CONVERSATION_HEADER)?.unwrap_or_else(|| DEFAULT_CONVERSATION.to_owned());
    let named = header_id(headers, RUNTIME_HEADER)?;
    let base = hints::base_url(&state.settings, headers);
    let prepared = prepare(state, &role, model, &conversation, named, content, &base)?;
    let runtime = prepared.runtime.clone();
    let until = Instant::now() + state.settings.max_wait_timeout;
    let (written, started) = oneshot::channel();
    let (progress, seen) = watch::channel(Progress::default());
    let run = run(state.clone(), role, prepared, until, written, progress, base);
    Ok(Begun { runtime, conversation, run, started, seen })
}

/// The answer that denies `approval` in `turn`'s scope.
fn denial(turn: &TurnResult, approval: &str) -> Result<Command, OpenAiError> {
    let body = json!({
        "runtime": {"agent_id": turn.agent_id, "conversation_id": turn.conversation_id},
        "payload": {"request_id": approval, "decision": {"behavior": "deny", "message": DENIED}},
    });
    let body: ApprovalCommand = serde_json::from_value(body).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(typed_command(&body).map_err(ApiError::from)?)
}
