//! apksift-core integration tests (one binary).
mod common;
mod detection;
mod knn;
mod store;
