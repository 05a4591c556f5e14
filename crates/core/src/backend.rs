//! The engine under a [`Store`](crate::Store): the embedded [`Database`] or, with the cargo
//! feature `milvus`, a Milvus server ([`apksift_milvus::MilvusEngine`]).
//!
//! [`Backend`] has exactly the engine calls the store makes. Reads go through [`View`]:
//! [`Backend::view`] gives the reads of one scan or search. On the embedded engine it is one
//! snapshot of every collection, so a scan's exact lookup, its searches on `samples` and
//! `components` and its metadata fetch all see the same committed state. Milvus has no
//! multi-collection snapshot: there the view is the engine itself and every read is its own
//! request at the address's consistency level (`docs/SCALE.md`). What keeps a scan right
//! on Milvus is the commit-point rule both backends share: a component hit only counts when
//! its sample row exists when the metadata is fetched (last), and ingest writes the sample
//! row last and deletes it first.

use std::collections::BTreeMap;
use std::sync::Arc;

use apksift_index::{
    Batch, CollectionInfo, Database, DbSnapshot, QueryVector, Schema, SearchParams, Value,
};

use crate::Result;

/// One row's requested fields, by name.
pub type Fields = BTreeMap<String, Value>;

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Rows written (insert, upsert) or keys that existed and were deleted (delete).
    pub rows: u64,
    /// The WAL sequence number of the write on the embedded engine (durable when
    /// returned); `None` on Milvus.
    pub lsn: Option<u64>,
}

impl From<apksift_index::WriteAck> for Written {
    fn from(a: apksift_index::WriteAck) -> Written {
        Written {
            rows: a.rows,
            lsn: Some(a.lsn),
        }
    }
}

/// The reads a scan or a search makes.
pub trait View {
    /// Rows of `keys` in order (`None` for a missing key), with `fields`.
    fn get(
        &self,
        collection: &str,
        keys: &[String],
        fields: &[String],
    ) -> Result<Vec<Option<Fields>>>;
    /// Rows matching `filter`, sorted by key, `offset` skipped, at most `limit`.
    fn query(
        &self,
        collection: &str,
        filter: Option<&str>,
        fields: &[String],
        limit: usize,
        offset: usize,
    ) -> Result<Vec<(String, Fields)>>;
    /// TLSH (or binary) search on `field`: per query vector, hits ordered by (distance, key).
    fn search(
        &self,
        collection: &str,
        field: &str,
        vectors: &[QueryVector],
        params: &SearchParams,
    ) -> Result<apksift_index::SearchResult>;
}

/// The engine calls of the sample store. `Send + Sync`; the store shares one behind an
/// `Arc`. Implemented for [`Database`] and, with the feature `milvus`, for
/// [`MilvusBackend`].
pub trait Backend: View + Send + Sync + std::fmt::Debug {
    /// `embedded` or `milvus`.
    fn kind(&self) -> &'static str;
    /// Where the data lives (a directory, or `milvus://HOST:PORT/PREFIX`).
    fn location(&self) -> String;
    /// Writes are refused with [`Error::ReadOnly`].
    fn is_read_only(&self) -> bool;
    /// Names of the collections.
    fn list_collections(&self) -> Result<Vec<String>>;
    /// Creates a collection; `Ok(false)` when it exists already (whatever its schema).
    fn create_collection(&self, name: &str, schema: Schema) -> Result<bool>;
    /// The schema of a collection.
    fn describe(&self, name: &str) -> Result<Schema>;
    /// The schema and sizes of a collection (on Milvus: the schema and the row count;
    /// segment figures are 0).
    fn info(&self, name: &str) -> Result<CollectionInfo>;
    /// Drops a collection and its data.
    fn drop_collection(&self, name: &str) -> Result<()>;
    /// Inserts rows; fails with [`Error::AlreadyExists`](crate::Error::AlreadyExists) and
    /// writes nothing when a key is stored already.
    fn insert(&self, collection: &str, batch: Batch) -> Result<Written>;
    /// Inserts or replaces rows by key.
    fn upsert(&self, collection: &str, batch: Batch) -> Result<Written>;
    /// Deletes rows by key (missing keys are ignored).
    fn delete(&self, collection: &str, keys: &[String]) -> Result<Written>;
    /// Exact number of live rows.
    fn count(&self, collection: &str) -> Result<u64>;
    /// The reads of one scan or search: a snapshot on the embedded engine, the engine itself
    /// on Milvus (see the module docs).
    fn view(&self) -> Box<dyn View + '_>;
    /// Makes written data compact or durable where the engine needs it (embedded: flushes
    /// memtables into segments; Milvus: nothing).
    fn flush(&self) -> Result<()>;
    /// Stops background work (embedded writer: flushes).
    fn close(&self) -> Result<()>;
    /// Engine statistics (all zero but `read_only` on Milvus).
    fn stats(&self) -> apksift_index::Stats;
    /// Checks that the engine can serve requests now (embedded: always; Milvus: the
    /// server answers).
    fn check(&self) -> Result<()> {
        Ok(())
    }
    /// The embedded engine, if this is one.
    fn as_database(&self) -> Option<&Database> {
        None
    }
    /// The Milvus engine, if this is one.
    #[cfg(feature = "milvus")]
    fn as_milvus(&self) -> Option<&apksift_milvus::MilvusEngine> {
        None
    }
}

// ------------------------------------------------------------------------- embedded

impl View for Database {
    fn get(
        &self,
        collection: &str,
        keys: &[String],
        fields: &[String],
    ) -> Result<Vec<Option<Fields>>> {
        Ok(Database::get(self, collection, keys, fields)?)
    }
    fn query(
        &self,
        collection: &str,
        filter: Option<&str>,
        fields: &[String],
        limit: usize,
        offset: usize,
    ) -> Result<Vec<(String, Fields)>> {
        Ok(Database::query(
            self, collection, filter, fields, limit, offset,
        )?)
    }
    fn search(
        &self,
        collection: &str,
        field: &str,
        vectors: &[QueryVector],
        params: &SearchParams,
    ) -> Result<apksift_index::SearchResult> {
        Ok(Database::search(self, collection, field, vectors, params)?)
    }
}

/// One snapshot of every collection of the embedded engine.
struct Snapshot(Arc<DbSnapshot>);

impl View for Snapshot {
    fn get(
        &self,
        collection: &str,
        keys: &[String],
        fields: &[String],
    ) -> Result<Vec<Option<Fields>>> {
        Ok(self.0.collection(collection)?.get(keys, fields)?)
    }
    fn query(
        &self,
        collection: &str,
        filter: Option<&str>,
        fields: &[String],
        limit: usize,
        offset: usize,
    ) -> Result<Vec<(String, Fields)>> {
        Ok(self
            .0
            .collection(collection)?
            .query(filter, fields, limit, offset)?)
    }
    fn search(
        &self,
        collection: &str,
        field: &str,
        vectors: &[QueryVector],
        params: &SearchParams,
    ) -> Result<apksift_index::SearchResult> {
        Ok(self
            .0
            .collection(collection)?
            .search(field, vectors, params)?)
    }
}

impl Backend for Database {
    fn kind(&self) -> &'static str {
        "embedded"
    }
    fn location(&self) -> String {
        Database::location(self)
    }
    fn is_read_only(&self) -> bool {
        Database::is_read_only(self)
    }
    fn list_collections(&self) -> Result<Vec<String>> {
        Ok(Database::list_collections(self))
    }
    fn create_collection(&self, name: &str, schema: Schema) -> Result<bool> {
        match Database::create_collection(self, name, schema) {
            Ok(()) => Ok(true),
            Err(apksift_index::Error::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
    fn describe(&self, name: &str) -> Result<Schema> {
        Ok(Database::describe(self, name)?.schema)
    }
    fn info(&self, name: &str) -> Result<CollectionInfo> {
        Ok(Database::describe(self, name)?)
    }
    fn drop_collection(&self, name: &str) -> Result<()> {
        Ok(Database::drop_collection(self, name)?)
    }
    fn insert(&self, collection: &str, batch: Batch) -> Result<Written> {
        Ok(Database::insert(self, collection, batch)?.into())
    }
    fn upsert(&self, collection: &str, batch: Batch) -> Result<Written> {
        Ok(Database::upsert(self, collection, batch)?.into())
    }
    fn delete(&self, collection: &str, keys: &[String]) -> Result<Written> {
        Ok(Database::delete(self, collection, keys)?.into())
    }
    fn count(&self, collection: &str) -> Result<u64> {
        Ok(Database::count(self, collection)?)
    }
    fn view(&self) -> Box<dyn View + '_> {
        Box::new(Snapshot(self.snapshot()))
    }
    fn flush(&self) -> Result<()> {
        Ok(Database::flush(self)?)
    }
    fn close(&self) -> Result<()> {
        // `Database` is a handle: closing a clone stops the shared engine.
        Ok(self.clone().close()?)
    }
    fn stats(&self) -> apksift_index::Stats {
        Database::stats(self)
    }
    fn as_database(&self) -> Option<&Database> {
        Some(self)
    }
}

// --------------------------------------------------------------------------- milvus

#[cfg(feature = "milvus")]
pub use self::milvus::MilvusBackend;

#[cfg(feature = "milvus")]
mod milvus {
    use apksift_milvus::MilvusEngine;

    use super::*;
    use crate::Error;

    /// A [`MilvusEngine`] as a store backend; `read_only` refuses writes in this process
    /// (Milvus itself has no read-only handles: any client may write).
    #[derive(Debug, Clone)]
    pub struct MilvusBackend {
        engine: MilvusEngine,
        read_only: bool,
    }

    impl MilvusBackend {
        /// Wraps a connected engine.
        pub fn new(engine: MilvusEngine, read_only: bool) -> MilvusBackend {
            MilvusBackend { engine, read_only }
        }

        /// The engine.
        pub fn engine(&self) -> &MilvusEngine {
            &self.engine
        }

        fn writable(&self) -> Result<()> {
            if self.read_only {
                Err(Error::ReadOnly)
            } else {
                Ok(())
            }
        }
    }

    impl View for MilvusBackend {
        fn get(
            &self,
            collection: &str,
            keys: &[String],
            fields: &[String],
        ) -> Result<Vec<Option<Fields>>> {
            Ok(self.engine.get(collection, keys, fields)?)
        }
        fn query(
            &self,
            collection: &str,
            filter: Option<&str>,
            fields: &[String],
            limit: usize,
            offset: usize,
        ) -> Result<Vec<(String, Fields)>> {
            Ok(self
                .engine
                .query(collection, filter, fields, limit, offset)?)
        }
        fn search(
            &self,
            collection: &str,
            field: &str,
            vectors: &[QueryVector],
            params: &SearchParams,
        ) -> Result<apksift_index::SearchResult> {
            Ok(self.engine.search(collection, field, vectors, params)?)
        }
    }

    impl Backend for MilvusBackend {
        fn kind(&self) -> &'static str {
            "milvus"
        }
        fn location(&self) -> String {
            self.engine.location()
        }
        fn is_read_only(&self) -> bool {
            self.read_only
        }
        fn list_collections(&self) -> Result<Vec<String>> {
            Ok(self.engine.list_collections()?)
        }
        fn create_collection(&self, name: &str, schema: Schema) -> Result<bool> {
            self.writable()?;
            match self.engine.create_collection(name, schema) {
                Ok(()) => Ok(true),
                Err(apksift_milvus::Error::AlreadyExists(_)) => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
        fn describe(&self, name: &str) -> Result<Schema> {
            Ok(self.engine.describe(name)?)
        }
        fn info(&self, name: &str) -> Result<CollectionInfo> {
            let schema = self.engine.describe(name)?;
            let rows = self.engine.count(name)?;
            Ok(CollectionInfo {
                name: name.to_string(),
                id: 0,
                schema,
                rows,
                segments: 0,
                memtable_rows: 0,
                segment_bytes: 0,
            })
        }
        fn drop_collection(&self, name: &str) -> Result<()> {
            self.writable()?;
            Ok(self.engine.drop_collection(name)?)
        }
        fn insert(&self, collection: &str, batch: Batch) -> Result<Written> {
            self.writable()?;
            // Milvus has no insert-if-absent: a plain Milvus insert of a stored key adds a
            // duplicate. Checking the keys first gives the embedded engine's answer for
            // keys stored before this call; two clients inserting the same new key at the
            // same moment both succeed and the later one wins (an upsert), never a
            // duplicate row.
            let fields: Vec<String> = Vec::new();
            let got = self.engine.get(collection, &batch.keys, &fields)?;
            if let Some((k, _)) = batch.keys.iter().zip(&got).find(|(_, r)| r.is_some()) {
                return Err(Error::AlreadyExists(format!(
                    "key {k:?} already exists in collection {collection:?} (use upsert to replace)"
                )));
            }
            let rows = batch.keys.len() as u64;
            self.engine.upsert(collection, batch)?;
            Ok(Written { rows, lsn: None })
        }
        fn upsert(&self, collection: &str, batch: Batch) -> Result<Written> {
            self.writable()?;
            let rows = batch.keys.len() as u64;
            self.engine.upsert(collection, batch)?;
            Ok(Written { rows, lsn: None })
        }
        fn delete(&self, collection: &str, keys: &[String]) -> Result<Written> {
            self.writable()?;
            // Milvus's Delete does not say which keys existed; the embedded engine does.
            let existed = self
                .engine
                .get(collection, keys, &[])?
                .iter()
                .filter(|r| r.is_some())
                .count() as u64;
            self.engine.delete(collection, keys)?;
            Ok(Written {
                rows: existed,
                lsn: None,
            })
        }
        fn count(&self, collection: &str) -> Result<u64> {
            Ok(self.engine.count(collection)?)
        }
        fn view(&self) -> Box<dyn View + '_> {
            // No snapshot on Milvus: each read is its own request (module docs).
            Box::new(self.clone())
        }
        fn flush(&self) -> Result<()> {
            Ok(self.engine.flush()?)
        }
        fn close(&self) -> Result<()> {
            Ok(())
        }
        fn stats(&self) -> apksift_index::Stats {
            apksift_index::Stats {
                read_only: self.read_only,
                ..apksift_index::Stats::default()
            }
        }
        fn check(&self) -> Result<()> {
            self.engine.server_version()?;
            Ok(())
        }
        fn as_milvus(&self) -> Option<&MilvusEngine> {
            Some(&self.engine)
        }
    }
}
