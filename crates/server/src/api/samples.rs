//! Scan, search and known samples (wired to `apksift-core`).

use axum::Router;

use crate::state::AppState;

/// Routes of this area.
pub fn routes(_state: &AppState) -> Router<AppState> {
    Router::new()
}
