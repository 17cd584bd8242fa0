//! The upload page's form: `multipart/form-data` (a file cannot travel in an urlencoded form).
//! The CSRF rule is the one every form follows (`forms::refuse_cross_site`, then
//! `cpis_api::auth::require_csrf` on the `csrf_token` field); the token must come before the file,
//! as the page's form sends it, so no file is even spooled for a forged request. The file is
//! streamed to a spool file (never held in memory), with the server's upload size limit.

use super::forms;
use super::signed_in::SignedIn;
use crate::error::WebError;
use axum::extract::multipart::Field;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use cpis_api::{ApiError, AppState};
use cpis_core::la_upload::BodyCoding;
use cpis_core::upload::SpooledFile;

/// The longest text field read (the CSRF token, the mode, the date parts).
const TEXT_LIMIT: usize = 256;

/// What the upload form sent, its CSRF token checked. Fields the page does not have are
/// ignored.
pub struct UploadForm {
    pub user: SignedIn,
    pub mode: String,
    pub day: String,
    pub month: String,
    pub year: String,
    /// The file, when one was chosen (`None` for an empty file input).
    pub file: Option<SpooledFile>,
    /// The chosen file's name as the browser sent it (no folders).
    pub file_name: Option<String>,
    /// The browser asked for JSON (the page's script): answer with the upload id.
    pub wants_json: bool,
}

impl FromRequest<AppState> for UploadForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        forms::refuse_cross_site(&parts).map_err(web)?;
        let user = SignedIn::from_request_parts(&mut parts, state).await?;
        let wants_json = parts
            .headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        // The multipart reader needs the headers (boundary) and extensions (body limit).
        let mut inner = Request::new(body);
        *inner.headers_mut() = parts.headers.clone();
        *inner.extensions_mut() = parts.extensions.clone();
        let mut multipart = Multipart::from_request(inner, state)
            .await
            .map_err(|_| web(unreadable()))?;
        let mut form = UploadForm {
            user,
            mode: String::new(),
            day: String::new(),
            month: String::new(),
            year: String::new(),
            file: None,
            file_name: None,
            wants_json,
        };
        let mut csrf: Option<String> = None;
        let mut checked = false;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|_| web(unreadable()))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" {
                if !checked {
                    check(state, &form.user, &parts, csrf.as_deref()).await?;
                    checked = true;
                }
                let file_name = field
                    .file_name()
                    .map(|n| n.rsplit(['/', '\\']).next().unwrap_or("").to_owned())
                    .filter(|n| !n.is_empty());
                let has_name = file_name.is_some();
                let spooled = spool(state, field).await.map_err(web)?;
                if has_name || !spooled.is_empty() {
                    form.file = Some(spooled);
                    form.file_name = file_name;
                }
                continue;
            }
            let value = text(field).await.map_err(web)?;
            match name.as_str() {
                "csrf_token" => csrf = Some(value),
                "mode" => form.mode = value,
                "file_date-day" => form.day = value,
                "file_date-month" => form.month = value,
                "file_date-year" => form.year = value,
                _ => {}
            }
        }
        if !checked {
            check(state, &form.user, &parts, csrf.as_deref()).await?;
        }
        Ok(form)
    }
}

async fn check(
    state: &AppState,
    user: &SignedIn,
    parts: &Parts,
    sent: Option<&str>,
) -> Result<(), Response> {
    cpis_api::auth::require_csrf(
        state,
        &user.principal,
        parts,
        Some(user.trace_id.clone()),
        sent.unwrap_or(""),
        &user.csrf,
    )
    .await
    .map_err(web)
}

fn web(e: ApiError) -> Response {
    WebError(e).into_response()
}

fn unreadable() -> ApiError {
    ApiError::BadRequest("The form could not be read. Go back and try again.".into())
}

/// A short text field (longer values are cut: no field of this form is long).
async fn text(mut field: Field<'_>) -> Result<String, ApiError> {
    let mut out: Vec<u8> = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|_| unreadable())? {
        if out.len() < TEXT_LIMIT {
            out.extend_from_slice(&chunk[..chunk.len().min(TEXT_LIMIT - out.len())]);
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Streams the file field into a spool file on a blocking thread (the API's spool, see
/// [`cpis_api::uploads`]).
async fn spool(state: &AppState, mut field: Field<'_>) -> Result<SpooledFile, ApiError> {
    let spool = cpis_api::uploads::start_spool(state, BodyCoding::Identity);
    let mut read_error = false;
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if !spool.write(chunk).await {
                    break; // the writer stopped: its error says why
                }
            }
            Ok(None) => break,
            Err(_) => {
                read_error = true;
                break;
            }
        }
    }
    let spooled = spool.finish().await;
    if read_error {
        return Err(unreadable());
    }
    spooled.map_err(cpis_api::uploads::spool_error)
}
