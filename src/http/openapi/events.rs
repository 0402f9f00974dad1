//! The schema of one server-sent event of `GET /events`: the union of the
//! typed events, as SSE parsers see it (`data` is a JSON string).

use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// One server-sent event of `GET /events`, as SSE parsers see it: `data` is
/// a JSON string whose schema is one of the typed events or, for any other
/// type, the passthrough `RuntimeEvent`.
pub struct SseEvent;

/// Registers event `T` and what it references; returns its name.
fn register<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) -> String {
    let name = T::name().into_owned();
    schemas.push((name.clone(), T::schema()));
    T::schemas(schemas);
    name
}

/// Registers every event schema and the schemas they reference; returns the
/// events' names (the members of the `data` union).
fn event_schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) -> Vec<String> {
    use crate::protocol::events::*;
    vec![
        register::<RuntimeOnline>(schemas),
        register::<RuntimeOffline>(schemas),
        register::<Reset>(schemas),
        register::<Lagged>(schemas),
        register::<Reauth>(schemas),
        register::<StreamDelta>(schemas),
        register::<ApprovalRequestDelta>(schemas),
        register::<TurnFinished>(schemas),
        register::<InputAccepted>(schemas),
        register::<SyncResponse>(schemas),
        register::<AbortMessageResponse>(schemas),
        register::<ControlRequest>(schemas),
        register::<UpdateLoopStatus>(schemas),
        register::<UpdateDeviceStatus>(schemas),
        register::<UpdateQueue>(schemas),
        register::<UpdateSubagentState>(schemas),
        register::<RuntimeEvent>(schemas),
    ]
}

impl PartialSchema for SseEvent {
    fn schema() -> RefOr<Schema> {
        let mut any = AnyOfBuilder::new();
        for name in event_schemas(&mut Vec::new()) {
            any = any.item(Ref::from_schema_name(name));
        }
        let string = |desc: &str| ObjectBuilder::new().schema_type(Type::String).description(Some(desc)).build();
        let data = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The event as one line of JSON"))
            .content_media_type("application/json")
            .content_schema(Some(Schema::AnyOf(any.build())))
            .build();
        ObjectBuilder::new()
            .description(Some(
                "One server-sent event. `event` is the frame type; the bridge's own are `runtime_online`, `runtime_offline`, `reset` and `lagged`. The stream opens with a `retry:` field and sends `:` comments as keepalives.",
            ))
            .property("id", string("`<epoch>-<seq>`; resume with `Last-Event-ID`"))
            .property("event", string("The event type"))
            .property("retry", ObjectBuilder::new().schema_type(Type::Integer).description(Some("Reconnect delay in ms")))
            .property("data", data)
            .into()
    }
}

impl ToSchema for SseEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        event_schemas(schemas);
    }
}
