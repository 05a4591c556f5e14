//! Integration tests of the HTTP service (one binary; see each module).

mod api_collections;
mod auth_roles;
mod common;
mod limits;
mod openapi_drift;
mod ops;
mod real_socket;
mod samples;
