use std::fmt;

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
}
