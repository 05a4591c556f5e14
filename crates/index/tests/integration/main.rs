//! Integration tests of the engine: one binary, one module per area.
mod common;
mod crash;
mod damage;
mod engine;
mod model;
mod replica;
mod search;
mod visibility;
