//! The apksift command line.
fn main() {}
