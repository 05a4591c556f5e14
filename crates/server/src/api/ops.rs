//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document,
//! and the JSON answers for unknown routes and methods.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;
use crate::{blocking, openapi};

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
}

/// `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready` or `not_ready`.
    pub status: String,
    /// True for a read-only replica.
    pub read_only: bool,
    /// Replica: seconds since it last caught up with the writer (0 on the writer).
    pub replica_lag_seconds: f64,
    /// The largest lag tolerated (`--max-replica-lag`).
    pub max_replica_lag_seconds: f64,
    /// Why the server is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> ApiJson<Health> {
    ApiJson(Health {
        status: "ok".into(),
    })
}

/// Readiness: the store is open and, on a replica, not lagging more than
/// `--max-replica-lag`; 503 otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Response> {
    let db = state.backend().clone();
    let max = state.config().max_replica_lag.as_secs_f64();
    let (st, reachable) = blocking(move || Ok((db.stats(), db.check()))).await?;
    let mut reason = None;
    if let Err(e) = reachable {
        reason = Some(format!("the store cannot be reached: {e}"));
    }
    if st.read_only && st.replica_lag_seconds > max {
        reason = Some(format!(
            "replica lags {:.1} s behind the writer (limit {max} s)",
            st.replica_lag_seconds
        ));
    }
    if let Some(e) = &st.last_error
        && !st.read_only
    {
        tracing::warn!(error = %e, "store reports a background error");
    }
    let ready = reason.is_none();
    let body = Ready {
        status: if ready { "ready" } else { "not_ready" }.into(),
        read_only: st.read_only,
        replica_lag_seconds: st.replica_lag_seconds,
        max_replica_lag_seconds: max,
        reason,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, ApiJson(body)).into_response())
}

/// Prometheus metrics in the text exposition format 0.0.4.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let text = blocking(move || Ok(state.render_metrics())).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::json(),
    )
        .into_response()
}

/// JSON 404 for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /v1/openapi.json")
}

/// JSON 405 for a known route with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see /v1/openapi.json",
    )
}
