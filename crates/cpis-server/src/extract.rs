//! Query-string extractors whose rejections follow the one error policy (JSON for the API,
//! OperationOutcome for FHIR) instead of axum's plain-text default.

use crate::error::{ApiError, FhirError};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// `Query<T>` for the JSON API.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(t)| ApiQuery(t))
            .map_err(|e| ApiError::BadRequest(format!("invalid query string: {}", e.body_text())))
    }
}

/// `Query<T>` for the FHIR API.
pub struct FhirQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for FhirQuery<T> {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(t)| FhirQuery(t))
            .map_err(|e| {
                ApiError::BadRequest(format!("invalid query string: {}", e.body_text())).into()
            })
    }
}

/// Cursors and row numbers are stored as signed 64-bit integers: larger values are refused
/// rather than wrapped.
pub fn cursor(value: u64, name: &str) -> Result<u64, ApiError> {
    if value > i64::MAX as u64 {
        Err(ApiError::BadRequest(format!("{name} is out of range")))
    } else {
        Ok(value)
    }
}

/// A path parameter for the JSON API. An id that cannot even be decoded (say, bytes that are not
/// UTF-8) is answered like any id that does not exist: a JSON 404 that gives no hint either way.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| ApiPath(t))
            .map_err(|_| ApiError::NotFound)
    }
}
