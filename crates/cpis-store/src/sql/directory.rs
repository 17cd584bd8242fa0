//! The directory (local authorities, care settings) and the demographics index.

use super::{from_row, Db, Row};
use crate::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use cpis_domain::{
    CareSetting, DemographicStatus, Demographics, LocalAuthority, NhsNumber, OdsCode,
};
use std::collections::HashMap;

/// PostgreSQL batches larger than this go through COPY rather than one statement per entry.
const COPY_OVER: usize = 256;

pub fn upsert_local_authorities(
    db: &mut dyn Db,
    las: &[LocalAuthority],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    for la in las {
        db.exec(
            "INSERT INTO local_authorities
                 (ods_code, name, office_hours_phone, edt_phone, secure_email, mesh_mailbox, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (ods_code) DO UPDATE SET
                 name = excluded.name, office_hours_phone = excluded.office_hours_phone,
                 edt_phone = excluded.edt_phone, secure_email = excluded.secure_email,
                 mesh_mailbox = excluded.mesh_mailbox, updated_at = excluded.updated_at",
            &[
                &la.ods_code.as_str(),
                &la.name,
                &la.office_hours_phone,
                &la.edt_phone,
                &la.secure_email,
                &la.mesh_mailbox,
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
            "INSERT INTO care_settings (ods_code, name, setting_type, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (ods_code) DO UPDATE SET
                 name = excluded.name, setting_type = excluded.setting_type,
                 updated_at = excluded.updated_at",
            &[&s.ods_code.as_str(), &s.name, &s.setting_type.code(), &now],
        )?;
    }
    Ok(settings.len())
}

const LA_COLUMNS: &str =
    "ods_code, name, office_hours_phone, edt_phone, secure_email, mesh_mailbox";

fn la_from_row(r: &Row) -> StoreResult<LocalAuthority> {
    Ok(from_row!(r, 0 => LocalAuthority {
        ods_code, name, office_hours_phone, edt_phone, secure_email, mesh_mailbox
    }))
}

pub fn local_authority(db: &mut dyn Db, ods: &OdsCode) -> StoreResult<Option<LocalAuthority>> {
    db.find(
        &format!("SELECT {LA_COLUMNS} FROM local_authorities WHERE ods_code = $1"),
        &[&ods.as_str()],
        la_from_row,
    )
}

pub fn local_authorities(db: &mut dyn Db) -> StoreResult<Vec<LocalAuthority>> {
    db.list(
        &format!("SELECT {LA_COLUMNS} FROM local_authorities ORDER BY ods_code COLLATE \"C\""),
        &[],
        la_from_row,
    )
}

fn care_setting_from_row(r: &Row) -> StoreResult<CareSetting> {
    Ok(from_row!(r, 0 => CareSetting { ods_code, name, setting_type }))
}

pub fn care_setting(db: &mut dyn Db, ods: &OdsCode) -> StoreResult<Option<CareSetting>> {
    db.find(
        "SELECT ods_code, name, setting_type FROM care_settings WHERE ods_code = $1",
        &[&ods.as_str()],
        care_setting_from_row,
    )
}

/// Every care setting, by ODS code (the admin directory page).
pub fn care_settings(db: &mut dyn Db) -> StoreResult<Vec<CareSetting>> {
    db.list(
        "SELECT ods_code, name, setting_type FROM care_settings ORDER BY ods_code COLLATE \"C\"",
        &[],
        care_setting_from_row,
    )
}

/// Inside the caller's transaction. Large batches on PostgreSQL go through COPY.
pub fn upsert_demographics(
    db: &mut dyn Db,
    entries: &[Demographics],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    if entries.len() > COPY_OVER {
        if let Some(pg) = db.postgres() {
            crate::postgres::bulk::upsert_demographics(pg, entries, now)?;
            return Ok(entries.len());
        }
    }
    for e in entries {
        db.exec(
            "INSERT INTO demographics (nhs_number, status, superseded_by, date_of_birth, sensitive, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (nhs_number) DO UPDATE SET
                 status = excluded.status, superseded_by = excluded.superseded_by,
                 date_of_birth = excluded.date_of_birth, sensitive = excluded.sensitive,
                 updated_at = excluded.updated_at",
            &[
                &e.nhs_number.digits(),
                &e.status.code(),
                &superseded_by(e),
                &e.date_of_birth,
                &e.sensitive,
                &now,
            ],
        )?;
    }
    Ok(entries.len())
}

pub fn superseded_by(e: &Demographics) -> Option<String> {
    match e.status {
        DemographicStatus::Superseded(n) => Some(n.digits()),
        _ => None,
    }
}

fn demographics_row(nhs: NhsNumber, r: &Row) -> StoreResult<Demographics> {
    let status = match (r.str(0)?, r.opt_str(1)?) {
        ("active", None) => DemographicStatus::Active,
        ("inactive", None) => DemographicStatus::Inactive,
        ("superseded", Some(_)) => DemographicStatus::Superseded(r.get(1)?),
        _ => return Err(StoreError::corrupt("demographic status")),
    };
    Ok(Demographics {
        nhs_number: nhs,
        status,
        date_of_birth: r.get(2)?,
        sensitive: r.get(3)?,
    })
}

pub fn demographics(db: &mut dyn Db, nhs: NhsNumber) -> StoreResult<Option<Demographics>> {
    db.find(
        "SELECT status, superseded_by, date_of_birth, sensitive FROM demographics WHERE nhs_number = $1",
        &[&nhs.digits()],
        |r| demographics_row(nhs, r),
    )
}

/// Many entries at once: one round trip on PostgreSQL (`= ANY`), one lookup each on SQLite.
pub fn demographics_many(
    db: &mut dyn Db,
    nhs: &[NhsNumber],
) -> StoreResult<HashMap<NhsNumber, Demographics>> {
    let mut out = HashMap::with_capacity(nhs.len());
    if db.postgres().is_none() {
        for n in nhs {
            if let Some(d) = demographics(db, *n)? {
                out.insert(*n, d);
            }
        }
        return Ok(out);
    }
    let digits: Vec<String> = nhs.iter().map(|n| n.digits()).collect();
    let rows = db.rows(
        "SELECT status, superseded_by, date_of_birth, sensitive, nhs_number FROM demographics
         WHERE nhs_number = ANY($1)",
        &[&digits],
    )?;
    for r in rows {
        let n = r.get(4)?;
        out.insert(n, demographics_row(n, &r)?);
    }
    Ok(out)
}
