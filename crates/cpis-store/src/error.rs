use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// [`StoreError::Unavailable`] errors made by this process (either backend), for `/metrics`.
static UNAVAILABLE: AtomicU64 = AtomicU64::new(0);

/// Storage failures, sorted by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Busy, locked or out of reach: try again later (uploads report CPF05).
    #[error("database temporarily unavailable: {0}")]
    Unavailable(String),
    /// A constraint the caller should have respected (unknown LA, duplicate key…).
    #[error("database constraint violated: {0}")]
    Constraint(String),
    /// Bad database URL or settings.
    #[error("database configuration: {0}")]
    Config(String),
    /// Stored data that does not parse back (a bug or a hand edit).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    pub fn corrupt(what: impl fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }

    /// A [`StoreError::Unavailable`], counted ([`unavailable_errors`]).
    pub fn unavailable(what: impl fmt::Display) -> Self {
        UNAVAILABLE.fetch_add(1, Ordering::Relaxed);
        StoreError::Unavailable(what.to_string())
    }
}

/// How many times the database was found unavailable (busy past the timeout, unreachable, out
/// of disk, connection lost…) since the process started.
pub fn unavailable_errors() -> u64 {
    UNAVAILABLE.load(Ordering::Relaxed)
}
