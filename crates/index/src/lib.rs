/*!
apksift's binary-vector engine (work in progress).
*/

#[cfg(target_endian = "big")]
compile_error!("apksift's on-disk format is little-endian and mapped directly; big-endian targets are not supported");

pub mod codec;
pub mod deletes;
mod error;
pub mod memtable;
pub mod metric;
pub mod rows;
pub mod schema;
pub mod tlsh_kernel;
pub mod tlsh_tree;
pub mod value;

pub use error::{Error, Result};
