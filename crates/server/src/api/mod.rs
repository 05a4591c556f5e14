//! Handlers, by area.

pub mod collections;
pub mod ops;
pub mod samples;
