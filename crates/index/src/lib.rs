/*!
apksift's binary-vector engine (work in progress).
*/

#[cfg(target_endian = "big")]
compile_error!(
    "apksift's on-disk format is little-endian and mapped directly; big-endian targets are not supported"
);

pub mod backup;
pub mod codec;
pub mod deletes;
mod delfile;
pub mod engine;
mod error;
pub mod filter;
pub mod ivf;
mod keyfilter;
pub mod manifest;
pub mod memtable;
pub mod metric;
mod pod;
pub mod rows;
mod sbbf;
pub mod schema;
pub mod search;
pub mod segment;
mod simd;
pub mod simd_binary;
pub mod tlsh_kernel;
pub mod tlsh_tree;
pub mod value;
pub mod verify;

pub use engine::{
    CollSnapshot, CollectionInfo, Database, DbSnapshot, Options, SearchResult, Stats, WriteAck,
};
pub use error::{Error, Result};
pub use metric::Metric;
pub use schema::{FieldSchema, FieldType, IndexSpec, Schema};
pub use search::{Hit, QueryVector, SearchParams};
pub use value::{Batch, Column, Row, Value};
