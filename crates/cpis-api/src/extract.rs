//! Query-string extractors whose rejections follow the one error policy (JSON for the API,
//! OperationOutcome for FHIR) instead of axum's plain-text default.

use crate::error::ApiError;
use crate::fhir::FhirError;
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
            .map_err(|e| ApiError::BadRequest(query_problem(&e.body_text())))
    }
}

/// A query-string error in words, without the deserialiser's own ("Failed to deserialize query
/// string: limit: invalid digit found in string" becomes "query parameter 'limit' must be a whole
/// number").
pub fn query_problem(text: &str) -> String {
    let text = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(text);
    let (field, why) = match text.split_once(": ") {
        Some((f, w)) if !f.contains(' ') => (Some(f), w),
        _ => (None, text),
    };
    let why = if why.contains("invalid digit") || why.contains("cannot parse integer") {
        "must be a whole number".to_owned()
    } else if why.contains("number too large") {
        "is too large".to_owned()
    } else if why.contains("provided string was not `true` or `false`") {
        "must be true or false".to_owned()
    } else if let Some(expected) = why.split_once(", expected ").map(|(_, e)| e) {
        format!("must be {}", expected.replace('`', "'"))
    } else if let Some(name) = why
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return format!("query parameter '{name}' is required");
    } else if why.contains("input contains invalid characters")
        || why.contains("premature end of input")
    {
        "is not a valid date or time (use YYYY-MM-DD or RFC 3339)".to_owned()
    } else {
        "has a value that cannot be used".to_owned()
    };
    match field {
        Some(f) => format!("query parameter '{f}' {why}"),
        None => format!("the query string {why}"),
    }
}

/// `Query<T>` for the FHIR API.
pub struct FhirQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for FhirQuery<T> {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(t)| FhirQuery(t))
            .map_err(|e| ApiError::BadRequest(query_problem(&e.body_text())).into())
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

#[cfg(test)]
mod tests {
    use super::query_problem;

    #[test]
    fn query_errors_read_as_sentences_without_deserialiser_words() {
        for (raw, want) in [
            ("Failed to deserialize query string: limit: invalid digit found in string", "query parameter 'limit' must be a whole number"),
            ("Failed to deserialize query string: mode: unknown variant `half`, expected `delta` or `full`", "query parameter 'mode' must be 'delta' or 'full'"),
            ("Failed to deserialize query string: format: unknown variant `xml`, expected one of `json`, `csv`", "query parameter 'format' must be one of 'json', 'csv'"),
            ("Failed to deserialize query string: missing field `file_id`", "query parameter 'file_id' is required"),
        ] {
            assert_eq!(query_problem(raw), want);
        }
    }
}
