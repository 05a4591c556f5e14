/*!
apksift's HTTP service: a REST/JSON API under `/v1` over the embedded store,
with API keys and roles, request limits, Prometheus metrics on `/metrics`,
and a Pushgateway client for batch jobs.

The router is built by [`app`] from an [`AppState`], so tests drive it with
`tower::ServiceExt::oneshot` without a socket; [`serve()`] runs it on a
listener (plain or TLS through rustls) with graceful shutdown on SIGTERM and
ctrl-c, draining requests in flight. The engine is synchronous: every store
call runs on tokio's blocking pool.

```
use apksift_server::{app, AppState, Config, auth::{ApiKeys, Role}};
# let dir = tempfile::tempdir().unwrap();
let db = apksift_index::Database::open(dir.path(), Default::default()).unwrap();
let mut keys = ApiKeys::new();
keys.add(Role::Admin, "admin-key-0123456789").unwrap();
let router = app(AppState::from_database(db, Config { keys, ..Config::default() }).unwrap());
# drop(router);
```

The HTTP semantics, the JSON encodings and the error model are described in
`docs/API.md`; the OpenAPI document ([`openapi::ApiDoc`]) is committed as
`openapi/openapi.json`.
*/

pub mod api;
pub mod auth;
pub mod encoding;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod push;
pub mod serve;
pub mod state;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use error::{ApiError, ApiResult};
pub use serve::{ServeArgs, run, serve};
pub use state::{AppState, Config, Limits};

use auth::{AuthOutcome, Role};

/// Builds the router.
pub fn app(state: AppState) -> Router {
    let read = Router::new()
        .route("/v1/collections", get(api::collections::list))
        .route("/v1/collections/{name}", get(api::collections::describe))
        .route("/v1/collections/{name}/count", get(api::collections::count))
        .route(
            "/v1/collections/{name}/get",
            post(api::collections::get_rows),
        )
        .route(
            "/v1/collections/{name}/search",
            post(api::collections::search),
        )
        .route(
            "/v1/collections/{name}/query",
            post(api::collections::query),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_read));
    let write = Router::new()
        .route(
            "/v1/collections/{name}/insert",
            post(api::collections::insert),
        )
        .route(
            "/v1/collections/{name}/upsert",
            post(api::collections::upsert),
        )
        .route(
            "/v1/collections/{name}/delete",
            post(api::collections::delete_rows),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_write));
    let admin = Router::new()
        .route("/v1/collections", post(api::collections::create))
        .route(
            "/v1/collections/{name}",
            axum::routing::delete(api::collections::drop_collection),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let ops = Router::new()
        .route("/healthz", get(api::ops::healthz))
        .route("/readyz", get(api::ops::readyz))
        .route("/metrics", get(api::ops::metrics))
        .route("/v1/openapi.json", get(api::ops::openapi_json));
    let limits = state.limits().clone();
    // The in-flight bound, early 413 and request timeout guard the API, not the operations
    // routes: a saturated server must still answer its liveness and readiness probes and
    // Prometheus's scrapes (a 503 there would get busy pods restarted and fire
    // ApksiftDown exactly when the service is busiest).
    let api = read
        .merge(write)
        .merge(admin)
        .merge(api::samples::routes(&state))
        .fallback(api::ops::not_found)
        .method_not_allowed_fallback(api::ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), guard));
    ops.merge(api)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Records request counts and latencies by route template and status class.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let method = req.method().as_str().to_string();
    let resp = next.run(req).await;
    let status = match resp.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let m = state.metrics();
    let labels = [endpoint.as_str(), method.as_str(), status];
    m.requests.get(&labels).inc();
    m.request_duration
        .get(&labels)
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// In-flight bound, early 413 on a declared `Content-Length`, and the
/// per-request timeout.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let _in_flight = match state.enter() {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let limits = state.limits();
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limits.max_body_bytes as u64
    {
        return ApiError::too_large(format!(
            "request body of {len} bytes exceeds the limit of {} bytes (--max-body-bytes)",
            limits.max_body_bytes
        ))
        .into_response();
    }
    match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            state.metrics().rejected.get(&["timeout"]).inc();
            ApiError::unavailable(
                "timeout",
                format!(
                    "the request took longer than {:?} (--request-timeout)",
                    limits.request_timeout
                ),
            )
            .into_response()
        }
    }
}

async fn authorize(state: &AppState, req: Request, next: Next, need: Role) -> Response {
    match state
        .config()
        .keys
        .authenticate(auth::presented_key(req.headers()))
    {
        AuthOutcome::Role(r) if r >= need => next.run(req).await,
        AuthOutcome::Role(r) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this API key has the {r} role; the operation needs {need}"),
        )
        .into_response(),
        AuthOutcome::Missing => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing API key: send `Authorization: Bearer KEY` or `X-Api-Key: KEY`",
        )
        .into_response(),
        AuthOutcome::Unknown => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown API key")
                .into_response()
        }
    }
}

pub(crate) async fn require_read(State(s): State<AppState>, req: Request, next: Next) -> Response {
    authorize(&s, req, next, Role::Read).await
}

pub(crate) async fn require_write(State(s): State<AppState>, req: Request, next: Next) -> Response {
    authorize(&s, req, next, Role::Write).await
}

pub(crate) async fn require_admin(State(s): State<AppState>, req: Request, next: Next) -> Response {
    authorize(&s, req, next, Role::Admin).await
}

/// Runs blocking store work on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}
