/*!
apksift on a Milvus cluster.

apksift keeps its own strengths (APK fingerprints, exact TLSH re-ranking, verdicts, the API)
and delegates storage and candidate search to Milvus. [`MilvusEngine`] (feature `client`)
offers the engine calls that apksift's sample store makes on its embedded engine
([`apksift_index::Database`]): create/describe/list collections, `upsert`, `delete`, `get`,
`query`, `count` and TLSH `search`, with the same types ([`apksift_index::Schema`],
[`apksift_index::Batch`], [`apksift_index::SearchParams`], [`apksift_index::Hit`]) and the
same answers: search results ordered by (exact TLSH distance, key).

* Layout: [`layout`] (one vector field per Milvus 2.3 collection, null flags).
* Candidates: [`thermo`] (384-bit thermometer code of the TLSH body; Hamming ≤ TLSH, so a
  Hamming range search with radius `cutoff + 1` is lossless on BIN_FLAT).
* Filters: [`expr`] (apksift's three-valued filter language compiled to Milvus expressions).
* Addresses: [`url`] (`milvus://HOST:PORT/PREFIX?consistency=…`).
* Copying stores: [`migrate`] (feature `client`).

# Why a generated client

The published Rust SDK `milvus-sdk-rust` 2.6 cannot decode search results from Milvus 2.3
(the pinned embedded server, PyPI `milvus==2.3.5`): it expects response fields that 2.3 does
not send. Version 0.1.0 does decode them (checked here against 2.3.5: VarChar keys,
384-bit binary vectors, top-k and range search) but its protocol predates the `Upsert` RPC,
pins tonic 0.8 / prost 0.11 next to the workspace's hyper 1 stack and needs a system
`protoc`. So `build.rs` generates a client from Milvus's published protos (vendored in
`proto/`, Apache-2.0) with tonic 0.14 and the `protoc` of `protoc-bin-vendored`, and this
crate decodes exactly the fields it needs. See `docs/SCALE.md`.
*/

pub mod expr;
pub mod layout;
pub mod thermo;
pub mod url;

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
mod engine;
#[cfg(feature = "client")]
pub mod migrate;
#[cfg(feature = "client")]
pub mod proto;

#[cfg(feature = "client")]
pub use engine::{MilvusEngine, SearchStats, SegmentInfo};
pub use url::{CodeIndex, Consistency, MilvusUrl};

/// Errors of the Milvus backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input is invalid (bad address, filter, field...).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Not possible on this backend.
    #[error("unsupported on Milvus: {0}")]
    Unsupported(String),
    /// No such collection.
    #[error("not found: {0}")]
    NotFound(String),
    /// The collection exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The Milvus collection exists with another schema or was not made by apksift.
    #[error("incompatible: {0}")]
    Incompatible(String),
    /// Transport or server error.
    #[error("milvus: {0}")]
    Milvus(String),
    /// Error of the embedded engine (migration).
    #[error("embedded engine: {0}")]
    Index(#[from] apksift_index::Error),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
