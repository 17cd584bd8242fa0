//! What the SQLite store keeps, for the tests that read the database file itself.

/// A notification's payload from column `i` of a `notifications` row: JSON text, or JSON the store
/// keeps deflated (docs/ARCHITECTURE.md, "Writes per lookup"), read by the store's own function.
pub fn notification_payload(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<String> {
    match row.get_ref(i)? {
        rusqlite::types::ValueRef::Text(text) => Ok(String::from_utf8_lossy(text).into_owned()),
        rusqlite::types::ValueRef::Blob(deflated) => cpis_store::inflate_payload(deflated)
            .and_then(|bytes| String::from_utf8(bytes).map_err(std::io::Error::other))
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    i,
                    rusqlite::types::Type::Blob,
                    Box::new(e),
                )
            }),
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            "payload".into(),
            other.data_type(),
        )),
    }
}
