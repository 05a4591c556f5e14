//! apksift-server (work in progress).
