//! `Store::care_settings` on SQLite: the whole care-setting directory (the admin page).

use super::convert::parse_ods;
use crate::{StoreError, StoreResult};
use cpis_domain::CareSetting;
use rusqlite::Connection;

pub fn care_settings(conn: &Connection) -> StoreResult<Vec<CareSetting>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ods_code, name, setting_type FROM care_settings ORDER BY ods_code",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (ods, name, t) = row?;
        Ok(CareSetting {
            ods_code: parse_ods(&ods)?,
            name,
            setting_type: t.parse().map_err(|_| StoreError::corrupt("setting type"))?,
        })
    })
    .collect()
}
