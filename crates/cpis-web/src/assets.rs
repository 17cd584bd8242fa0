//! Static assets embedded at build time (see `build.rs`): the NHS.UK frontend from npm and the
//! project's own files in `crates/cpis-web/assets/`, served at `/assets/<id>/<name>` where
//! `<id>` is a hash of their content, so browsers may cache them for a year.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub struct AssetFile {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The URL prefix of this build's assets, e.g. `/assets/3f2a9c01b7de`.
pub fn prefix() -> String {
    format!("/assets/{ASSET_ID}")
}

pub fn find(name: &str) -> Option<&'static AssetFile> {
    FILES.iter().find(|f| f.name == name)
}

/// `GET /assets/{id}/{*name}`. Another build's id is a 404: its files are not here.
pub async fn serve(Path((id, name)): Path<(String, String)>) -> Response {
    match find(&name).filter(|_| id == ASSET_ID) {
        Some(file) => (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(file.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            file.bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "not found",
        )
            .into_response(),
    }
}
