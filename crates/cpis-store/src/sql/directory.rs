//! The directory: local authorities (with their contact numbers) and care settings.

use super::{from_row, Db, Row};
use crate::StoreResult;
use chrono::{DateTime, Utc};
use cpis_domain::{CareSetting, LocalAuthority, OdsCode};
use std::collections::HashMap;

/// PostgreSQL batches larger than this go through COPY rather than one statement per entry.
pub const COPY_OVER: usize = 256;

pub fn upsert_local_authorities(
    db: &mut dyn Db,
    las: &[LocalAuthority],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    for la in las {
        db.exec(
            "INSERT INTO local_authorities
                 (ods_code, name, office_hours_phone, edt_phone, secure_email, mesh_mailbox,
                  office_hours, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (ods_code) DO UPDATE SET
                 name = excluded.name, office_hours_phone = excluded.office_hours_phone,
                 edt_phone = excluded.edt_phone, secure_email = excluded.secure_email,
                 mesh_mailbox = excluded.mesh_mailbox, office_hours = excluded.office_hours,
                 updated_at = excluded.updated_at",
            &[
                &la.ods_code.as_str(),
                &la.name,
                &la.office_hours_phone,
                &la.edt_phone,
                &la.secure_email,
                &la.mesh_mailbox,
                &la.office_hours.to_string(),
                &now,
            ],
        )?;
    }
    Ok(las.len())
}

pub fn upsert_care_settings(
    db: &mut dyn Db,
    settings: &[CareSetting],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    for s in settings {
        db.exec(
            "INSERT INTO care_settings (ods_code, name, setting_type, phone, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (ods_code) DO UPDATE SET
                 name = excluded.name, setting_type = excluded.setting_type,
                 phone = excluded.phone, updated_at = excluded.updated_at",
            &[
                &s.ods_code.as_str(),
                &s.name,
                &s.setting_type.code(),
                &s.phone.as_ref().map(|p| p.as_str()),
                &now,
            ],
        )?;
    }
    Ok(settings.len())
}

const LA_COLUMNS: &str =
    "ods_code, name, office_hours_phone, edt_phone, office_hours, secure_email, mesh_mailbox";

fn la_from_row(r: &Row) -> StoreResult<LocalAuthority> {
    Ok(from_row!(r, 0 => LocalAuthority {
        ods_code, name, office_hours_phone, edt_phone, office_hours, secure_email, mesh_mailbox
    }))
}

pub fn local_authority(db: &mut dyn Db, ods: &OdsCode) -> StoreResult<Option<LocalAuthority>> {
    db.find(
        &format!("SELECT {LA_COLUMNS} FROM local_authorities WHERE ods_code = $1"),
        &[&ods.as_str()],
        la_from_row,
    )
}

/// The directory entries of the LAs `codes` names (PostgreSQL only: `= ANY`), by ODS code.
pub fn local_authorities_in(
    db: &mut dyn Db,
    codes: &[String],
) -> StoreResult<HashMap<String, LocalAuthority>> {
    let list = db.list(
        &format!("SELECT {LA_COLUMNS} FROM local_authorities WHERE ods_code = ANY($1)"),
        &[&codes.to_vec()],
        la_from_row,
    )?;
    Ok(list
        .into_iter()
        .map(|la| (la.ods_code.as_str().to_owned(), la))
        .collect())
}

pub fn local_authorities(db: &mut dyn Db) -> StoreResult<Vec<LocalAuthority>> {
    db.list(
        &format!("SELECT {LA_COLUMNS} FROM local_authorities ORDER BY ods_code COLLATE \"C\""),
        &[],
        la_from_row,
    )
}

fn care_setting_from_row(r: &Row) -> StoreResult<CareSetting> {
    Ok(from_row!(r, 0 => CareSetting { ods_code, name, setting_type, phone }))
}

pub fn care_setting(db: &mut dyn Db, ods: &OdsCode) -> StoreResult<Option<CareSetting>> {
    db.find(
        "SELECT ods_code, name, setting_type, phone FROM care_settings WHERE ods_code = $1",
        &[&ods.as_str()],
        care_setting_from_row,
    )
}

/// Every care setting, by ODS code (the admin directory page).
pub fn care_settings(db: &mut dyn Db) -> StoreResult<Vec<CareSetting>> {
    db.list(
        "SELECT ods_code, name, setting_type, phone FROM care_settings ORDER BY ods_code COLLATE \"C\"",
        &[],
        care_setting_from_row,
    )
}
