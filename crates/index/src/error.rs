/// Engine errors.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request breaks a rule (bad schema, wrong vector length, unknown
    /// field, bad key, unsupported parameter…). Nothing was stored.
    #[error("{0}")]
    Invalid(String),
    /// A collection or key that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A collection that already exists, or an insert of an existing key.
    #[error("{0}")]
    AlreadyExists(String),
    /// The store is open read-only (a replica).
    #[error("the store is open read-only (replica); writes go to the writer")]
    ReadOnly,
    /// Storage failure (I/O, corruption, poisoned log).
    #[error(transparent)]
    Storage(#[from] apksift_storage::Error),
}

impl Error {
    /// A rule violation.
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    /// Something missing.
    pub fn not_found(msg: impl Into<String>) -> Error {
        Error::NotFound(msg.into())
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
