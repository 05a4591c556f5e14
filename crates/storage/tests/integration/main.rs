//! Integration tests of apksift-storage: one binary, one module per area.
mod directory;
mod wal;
