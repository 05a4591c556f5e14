//! apksift-core (work in progress).
