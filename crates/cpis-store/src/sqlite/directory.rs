//! Directory (local authorities, care settings) and the demographics index.

use super::convert::{date, parse_date, parse_nhs, parse_ods, ts};
use crate::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use cpis_domain::{
    CareSetting, DemographicStatus, Demographics, LocalAuthority, NhsNumber, OdsCode,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

pub fn upsert_local_authorities(
    conn: &mut Connection,
    las: &[LocalAuthority],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO local_authorities
                 (ods_code, name, office_hours_phone, edt_phone, secure_email, mesh_mailbox, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (ods_code) DO UPDATE SET
                 name = excluded.name, office_hours_phone = excluded.office_hours_phone,
                 edt_phone = excluded.edt_phone, secure_email = excluded.secure_email,
                 mesh_mailbox = excluded.mesh_mailbox, updated_at = excluded.updated_at",
        )?;
        for la in las {
            stmt.execute(params![
                la.ods_code.as_str(),
                la.name,
                la.office_hours_phone,
                la.edt_phone,
                la.secure_email,
                la.mesh_mailbox,
                ts(now)
            ])?;
        }
    }
    tx.commit()?;
    Ok(las.len())
}

pub fn upsert_care_settings(
    conn: &mut Connection,
    settings: &[CareSetting],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO care_settings (ods_code, name, setting_type, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (ods_code) DO UPDATE SET
                 name = excluded.name, setting_type = excluded.setting_type,
                 updated_at = excluded.updated_at",
        )?;
        for s in settings {
            stmt.execute(params![
                s.ods_code.as_str(),
                s.name,
                s.setting_type.code(),
                ts(now)
            ])?;
        }
    }
    tx.commit()?;
    Ok(settings.len())
}

fn la_from_row(r: &Row<'_>) -> rusqlite::Result<(String, LocalAuthorityText)> {
    Ok((
        r.get(0)?,
        LocalAuthorityText {
            name: r.get(1)?,
            office_hours_phone: r.get(2)?,
            edt_phone: r.get(3)?,
            secure_email: r.get(4)?,
            mesh_mailbox: r.get(5)?,
        },
    ))
}

struct LocalAuthorityText {
    name: String,
    office_hours_phone: String,
    edt_phone: String,
    secure_email: Option<String>,
    mesh_mailbox: Option<String>,
}

fn la_into_domain((ods, t): (String, LocalAuthorityText)) -> StoreResult<LocalAuthority> {
    Ok(LocalAuthority {
        ods_code: parse_ods(&ods)?,
        name: t.name,
        office_hours_phone: t.office_hours_phone,
        edt_phone: t.edt_phone,
        secure_email: t.secure_email,
        mesh_mailbox: t.mesh_mailbox,
    })
}

const LA_COLUMNS: &str =
    "ods_code, name, office_hours_phone, edt_phone, secure_email, mesh_mailbox";

pub fn local_authority(conn: &Connection, ods: &OdsCode) -> StoreResult<Option<LocalAuthority>> {
    conn.prepare_cached(&format!(
        "SELECT {LA_COLUMNS} FROM local_authorities WHERE ods_code = ?1"
    ))?
    .query_row([ods.as_str()], la_from_row)
    .optional()?
    .map(la_into_domain)
    .transpose()
}

pub fn local_authorities(conn: &Connection) -> StoreResult<Vec<LocalAuthority>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {LA_COLUMNS} FROM local_authorities ORDER BY ods_code"
    ))?;
    let rows = stmt.query_map([], la_from_row)?;
    rows.map(|r| la_into_domain(r?)).collect()
}

pub fn care_setting(conn: &Connection, ods: &OdsCode) -> StoreResult<Option<CareSetting>> {
    let row: Option<(String, String, String)> = conn
        .prepare_cached(
            "SELECT ods_code, name, setting_type FROM care_settings WHERE ods_code = ?1",
        )?
        .query_row([ods.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    row.map(|(ods, name, t)| {
        Ok(CareSetting {
            ods_code: parse_ods(&ods)?,
            name,
            setting_type: t.parse().map_err(|_| StoreError::corrupt("setting type"))?,
        })
    })
    .transpose()
}

pub fn upsert_demographics(
    conn: &mut Connection,
    entries: &[Demographics],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let tx = conn.transaction()?;
    for e in entries {
        upsert_demographic(&tx, e, now)?;
    }
    tx.commit()?;
    Ok(entries.len())
}

/// One index entry, inside the caller's transaction.
pub fn upsert_demographic(
    conn: &Connection,
    e: &Demographics,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let superseded_by = match e.status {
        DemographicStatus::Superseded(n) => Some(n.digits()),
        _ => None,
    };
    conn.prepare_cached(
        "INSERT INTO demographics (nhs_number, status, superseded_by, date_of_birth, sensitive, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (nhs_number) DO UPDATE SET
             status = excluded.status, superseded_by = excluded.superseded_by,
             date_of_birth = excluded.date_of_birth, sensitive = excluded.sensitive,
             updated_at = excluded.updated_at",
    )?
    .execute(params![
        e.nhs_number.digits(),
        e.status.code(),
        superseded_by,
        date(e.date_of_birth),
        e.sensitive,
        ts(now)
    ])?;
    Ok(())
}

pub fn demographics(conn: &Connection, nhs: NhsNumber) -> StoreResult<Option<Demographics>> {
    let row: Option<(String, Option<String>, String, bool)> = conn
        .prepare_cached(
            "SELECT status, superseded_by, date_of_birth, sensitive FROM demographics WHERE nhs_number = ?1",
        )?
        .query_row([nhs.digits()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    row.map(|(status, by, dob, sensitive)| {
        let status = match (status.as_str(), by) {
            ("active", None) => DemographicStatus::Active,
            ("inactive", None) => DemographicStatus::Inactive,
            ("superseded", Some(by)) => DemographicStatus::Superseded(parse_nhs(&by)?),
            _ => return Err(StoreError::corrupt("demographic status")),
        };
        Ok(Demographics {
            nhs_number: nhs,
            status,
            date_of_birth: parse_date(&dob)?,
            sensitive,
        })
    })
    .transpose()
}
