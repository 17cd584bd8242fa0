//! `Store::care_settings` on PostgreSQL: the whole care-setting directory (the admin page).

use super::convert::parse_ods;
use super::pool::Conn;
use crate::{StoreError, StoreResult};
use cpis_domain::CareSetting;

pub fn care_settings(conn: &mut Conn) -> StoreResult<Vec<CareSetting>> {
    conn.query(
        "SELECT ods_code, name, setting_type FROM care_settings ORDER BY ods_code COLLATE \"C\"",
        &[],
    )?
    .iter()
    .map(|r| {
        Ok(CareSetting {
            ods_code: parse_ods(r.try_get::<_, &str>(0)?)?,
            name: r.try_get(1)?,
            setting_type: r
                .try_get::<_, &str>(2)?
                .parse()
                .map_err(|_| StoreError::corrupt("setting type"))?,
        })
    })
    .collect()
}
