//! apksift-storage (work in progress).
