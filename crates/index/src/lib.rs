//! apksift-index (work in progress).
