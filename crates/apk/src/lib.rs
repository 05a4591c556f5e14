//! apksift-apk (work in progress).
