//! What the SQLite store keeps, for the tests that read the database file itself.

use std::io::Read;

/// A notification's payload from column `i` of a `notifications` row: JSON text, or JSON the store
/// keeps deflated (docs/ARCHITECTURE.md, "Writes per lookup").
pub fn notification_payload(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<String> {
    match row.get_ref(i)? {
        rusqlite::types::ValueRef::Text(text) => Ok(String::from_utf8_lossy(text).into_owned()),
        rusqlite::types::ValueRef::Blob(deflated) => {
            let mut text = String::new();
            flate2::read::DeflateDecoder::new(deflated)
                .read_to_string(&mut text)
                .map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        i,
                        rusqlite::types::Type::Blob,
                        Box::new(e),
                    )
                })?;
            Ok(text)
        }
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            "payload".into(),
            other.data_type(),
        )),
    }
}
