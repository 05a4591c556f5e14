//! CLI tests: the real `apksift` binary on temporary stores.

mod util;

mod basic;
mod corpus;
mod service;
mod store;
