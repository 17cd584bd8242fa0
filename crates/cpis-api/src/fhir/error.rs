//! The FHIR surface's rendering of the one error type: every [`ApiError`] a FHIR handler returns
//! becomes an `OperationOutcome` with the Spine error code NHS England's CP-IS guide maps it to.

use crate::error::ApiError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use cpis_store::StoreError;

/// The same errors, rendered for the FHIR API as an `OperationOutcome`.
#[derive(Debug)]
pub struct FhirError(pub ApiError);

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        FhirError(e)
    }
}

/// `?` in FHIR handlers: every error that becomes an [`ApiError`] becomes a [`FhirError`].
macro_rules! fhir_from {
    ($($t:ty),*) => {$(
        impl From<$t> for FhirError {
            fn from(e: $t) -> Self {
                FhirError(e.into())
            }
        }
    )*};
}
fhir_from!(
    StoreError,
    tokio::task::JoinError,
    cpis_core::lookup::LookupError
);

/// The code system NHS England's FHIR APIs put in `OperationOutcome.issue.details` (SPEC 3.1).
pub const SPINE_ERROR_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode";
/// The same codes under the system the CP-IS guide's worked example uses; both codings are sent
/// so a consumer built to either finds its code (docs/FHIR.md).
pub const ENGLAND_SPINE_ERROR_SYSTEM: &str =
    "https://fhir.nhs.uk/CodeSystem/England-SpineErrorOrWarningCode";

impl ApiError {
    /// The FHIR `IssueType` for this error.
    pub(crate) fn fhir_issue_code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated | ApiError::SignInFailed => "login",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not-found",
            ApiError::MethodNotAllowed | ApiError::NotAcceptable(_) => "not-supported",
            ApiError::BadRequest(_)
            | ApiError::InvalidSearch(_)
            | ApiError::UnsupportedMediaType(_) => "invalid",
            ApiError::PayloadTooLarge { .. } => "too-costly",
            ApiError::Conflict(_) => "conflict",
            ApiError::Throttled { .. } | ApiError::AuthThrottled { .. } => "throttled",
            ApiError::Unavailable => "transient",
            ApiError::Internal(_) => "exception",
        }
    }

    /// The Spine error code and its display (UK Core SpineErrorOrWarningCode), as the CP-IS
    /// guide's error table maps them; statuses the table does not name use the nearest code of
    /// the same list (docs/FHIR.md).
    pub(crate) fn spine_code(&self) -> (&'static str, &'static str) {
        const ACCESS_DENIED: (&str, &str) = (
            "ACCESS_DENIED",
            "Access has been denied to process this request",
        );
        match self {
            ApiError::InvalidSearch(_) => ("INVALID_SEARCH_DATA", "Invalid search data"),
            ApiError::BadRequest(_) => ("PRECONDITION_FAILED", "Precondition failed"),
            ApiError::Unauthenticated
            | ApiError::SignInFailed
            | ApiError::Forbidden(_)
            | ApiError::Throttled { .. }
            | ApiError::AuthThrottled { .. } => ACCESS_DENIED,
            ApiError::NotFound => ("RESOURCE_NOT_FOUND", "Resource not found"),
            ApiError::MethodNotAllowed => ("UNSUPPORTED_SERVICE", "Unsupported service"),
            ApiError::NotAcceptable(_) | ApiError::UnsupportedMediaType(_) => {
                ("UNSUPPORTED_VALUE", "Unsupported value")
            }
            ApiError::PayloadTooLarge { .. } => ("INVALID_VALUE", "Invalid value"),
            ApiError::Conflict(_) => ("INVALID_UPDATE", "Invalid update"),
            ApiError::Unavailable => ("UNABLE_TO_CALL_SERVICE", "Unable to call service"),
            ApiError::Internal(_) => ("FAILURE_TO_PROCESS_MESSAGE", "Failure to process message"),
        }
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let err = self.0;
        let status = err.status();
        err.log_internal();
        let mut resp = operation_outcome(
            status,
            err.fhir_issue_code(),
            err.spine_code(),
            &err.to_string(),
            None,
        );
        let h = resp.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        err.set_retry_after(h);
        resp
    }
}

/// An `OperationOutcome` with one error issue: its FHIR issue type, its Spine code (under both
/// code systems), the diagnostics, and the element it is about (`expression`, FHIRPath) when one.
pub(crate) fn operation_outcome(
    status: StatusCode,
    issue_code: &str,
    (code, display): (&str, &str),
    diagnostics: &str,
    expression: Option<&str>,
) -> Response {
    let mut issue = serde_json::json!({
        "severity": "error",
        "code": issue_code,
        "details": {
            "coding": [
                {"system": SPINE_ERROR_SYSTEM, "code": code, "display": display},
                {"system": ENGLAND_SPINE_ERROR_SYSTEM, "code": code, "display": display}
            ]
        },
        "diagnostics": diagnostics,
    });
    if let Some(e) = expression {
        issue["expression"] = serde_json::json!([e]);
    }
    let body = serde_json::json!({"resourceType": "OperationOutcome", "issue": [issue]});
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(crate::fhir::FHIR_JSON),
    );
    resp
}
