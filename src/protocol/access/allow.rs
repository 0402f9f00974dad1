//! The allow-list of the client token: the command types it may send, and
//! in each the fields it may set (Letta Code 0.32.18's own protocol types
//! and what Letta's clients send; see the module doc of [`super`]).

use super::super::wire;

/// What a client token may set in one field.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Any value: the conversation's own data (messages, tool results,
    /// queries), no option of the device.
    Any,
    /// An object with only these fields (any other value passes: it sets no field).
    Object(Fields),
    /// An object whose `kind` picks its fields; other kinds need the admin token.
    Kinds(&'static [(&'static str, Fields)]),
}

/// The fields a client token may set in one object, each with what it may hold.
pub type Fields = &'static [(&'static str, Shape)];

/// Always allowed at the top of a frame.
pub(super) const HEAD: &[&str] = &["type", "request_id"];

/// A runtime scope: which conversation (`acting_user_id` and anything else
/// is the admin's).
const SCOPE: Shape = Shape::Object(&[("agent_id", Shape::Any), ("conversation_id", Shape::Any)]);

/// `input` `create_message` (`InputCreateMessagePayload`; `client_preferences`
/// `{toolset: {include}}`, the turn's toolset, from runtimes newer than
/// 0.32.18, PROTOCOL.md §9: any other preference needs the admin token).
const CREATE_MESSAGE: Fields = &[
    ("messages", Shape::Any),
    ("image_failure_mode", Shape::Any),
    ("client_tool_allowlist", Shape::Any),
    ("client_toolset", Shape::Any),
    ("external_tool_scope_ids", Shape::Any),
    ("exclude_interactive_tools", Shape::Any),
    ("client_preferences", Shape::Object(&[("toolset", Shape::Any)])),
];

/// `input` `approval_response` (`ApprovalResponseBody`).
const APPROVAL_RESPONSE: Fields = &[
    ("request_id", Shape::Any),
    (
        "decision",
        Shape::Object(&[
            ("behavior", Shape::Any),
            ("message", Shape::Any),
            ("updated_input", Shape::Any),
            ("selected_permission_suggestion_ids", Shape::Any),
        ]),
    ),
    ("error", Shape::Any),
];

/// The command types a client token may send, and the fields it may set in
/// each besides `type` and `request_id`. Everything else needs the admin token.
pub const CLIENT_COMMANDS: &[(&str, Fields)] = &[
    (
        wire::INPUT,
        &[
            ("runtime", SCOPE),
            (
                "payload",
                Shape::Kinds(&[(wire::CREATE_MESSAGE, CREATE_MESSAGE), (wire::APPROVAL_RESPONSE, APPROVAL_RESPONSE)]),
            ),
        ],
    ),
    (wire::SYNC, &[("runtime", SCOPE), ("recover_approvals", Shape::Any), ("force_device_status", Shape::Any)]),
    // `wait_for_settlement` and `pause_queue` (newer runtimes, PROTOCOL.md §9)
    // shape how this conversation stops: options of the conversation, not of the device.
    (
        wire::ABORT_MESSAGE,
        &[("runtime", SCOPE), ("run_id", Shape::Any), ("wait_for_settlement", Shape::Any), ("pause_queue", Shape::Any)],
    ),
    (
        wire::CHANGE_DEVICE_STATE,
        &[
            ("runtime", SCOPE),
            // Which conversation the device shows; `mode` and `cwd` are the admin's.
            ("payload", Shape::Object(&[("agent_id", Shape::Any), ("conversation_id", Shape::Any)])),
        ],
    ),
    // Only one that resumes: both ids named (see `authorize`).
    (
        wire::RUNTIME_START,
        &[
            ("agent_id", Shape::Any),
            ("conversation_id", Shape::Any),
            ("client_info", Shape::Any),
            ("recover_approvals", Shape::Any),
            ("force_device_status", Shape::Any),
            ("wait_for_replay", Shape::Any),
            ("external_tools", Shape::Any),
            ("skill_sources", Shape::Any),
            ("preserve_skill_sources", Shape::Any),
            ("conversation_source_tags", Shape::Any),
        ],
    ),
    ("app_server_info", &[]),
    ("external_tool_call_response", &[("result", Shape::Any), ("error", Shape::Any)]),
    ("runtime_external_tools_update", &[("updates", Shape::Any)]),
    ("conversation_list", &[("query", Shape::Any)]),
    ("conversation_retrieve", &[("conversation_id", Shape::Any)]),
    ("conversation_messages_list", &[("conversation_id", Shape::Any), ("query", Shape::Any)]),
    ("list_models", &[("force", Shape::Any)]),
];
