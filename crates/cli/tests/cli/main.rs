//! CLI tests: the real `apksift` binary on temporary stores.

mod util;

mod backup;
mod basic;
mod corpus;
mod damage;
mod service;
mod store;
