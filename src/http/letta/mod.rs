//! The HTTP side of the Letta edge ([`crate::letta`]): Letta's environments
//! API and the upgrades to the relay and App-Server sockets. Each handler
//! parses, authenticates, and hands over to the edge; the frames, rules and
//! sockets are the edge's.

mod environments;
mod sockets;

use utoipa_axum::router::OpenApiRouter;

use super::AppState;

pub(super) use environments::shown;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(environments::routes()).merge(sockets::routes())
}
