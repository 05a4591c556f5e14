//! Errors of the core layer.

/// Errors of [`crate::Store`] operations.
///
/// The server maps them to HTTP statuses: [`Error::Invalid`] → 400,
/// [`Error::NotFound`] → 404, [`Error::ReadOnly`] → 409/405, [`Error::Incompatible`],
/// [`Error::Storage`] and [`Error::Backend`] → 500/503.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input from the caller (a malformed sha256, an unknown threat level, a bad filter,
    /// a bad search parameter, an unreadable import row that stops the import). Nothing was
    /// written.
    #[error("{0}")]
    Invalid(String),
    /// A sample or collection that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A collection or key that exists already (a create or an insert).
    #[error("{0}")]
    AlreadyExists(String),
    /// The store was opened read-only (a replica): writes go to the writer.
    #[error("the store is open read-only; writes go to the single writer")]
    ReadOnly,
    /// The directory holds a store whose collections do not have the schema this version
    /// expects (or holds something else).
    #[error("incompatible store: {0}")]
    Incompatible(String),
    /// Reading an import stream failed (I/O or CSV framing).
    #[error("reading the import: {0}")]
    Read(String),
    /// The engine failed (I/O, corruption, a poisoned log).
    #[error(transparent)]
    Storage(apksift_index::Error),
    /// A remote engine (Milvus) failed or could not be reached (transport or server error).
    #[error("{0}")]
    Backend(String),
}

impl From<apksift_index::Error> for Error {
    fn from(e: apksift_index::Error) -> Self {
        match e {
            apksift_index::Error::Invalid(m) => Error::Invalid(m),
            apksift_index::Error::NotFound(m) => Error::NotFound(m),
            apksift_index::Error::ReadOnly => Error::ReadOnly,
            apksift_index::Error::AlreadyExists(m) => Error::AlreadyExists(m),
            other => Error::Storage(other),
        }
    }
}

#[cfg(feature = "milvus")]
impl From<apksift_milvus::Error> for Error {
    fn from(e: apksift_milvus::Error) -> Self {
        use apksift_milvus::Error as M;
        match e {
            M::Invalid(m) => Error::Invalid(m),
            M::Unsupported(m) => Error::Invalid(format!("unsupported on Milvus: {m}")),
            M::NotFound(m) => Error::NotFound(m),
            M::AlreadyExists(m) => Error::AlreadyExists(m),
            M::Incompatible(m) => Error::Incompatible(m),
            M::Index(e) => e.into(),
            other => Error::Backend(other.to_string()),
        }
    }
}

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    /// True when the caller's input was at fault (HTTP 4xx).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::Invalid(_) | Error::NotFound(_) | Error::AlreadyExists(_)
        )
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
