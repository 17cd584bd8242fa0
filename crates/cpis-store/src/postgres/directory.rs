//! Directory (local authorities, care settings) and the demographics index.

use super::bulk;
use super::convert::{parse_nhs, parse_ods, ts};
use super::pool::Conn;
use crate::{StoreError, StoreResult};
use chrono::{DateTime, NaiveDate, Utc};
use cpis_domain::{
    CareSetting, DemographicStatus, Demographics, LocalAuthority, NhsNumber, OdsCode,
};
use postgres::Row;

/// Batches larger than this go through COPY rather than one statement per entry.
const COPY_OVER: usize = 256;

pub fn upsert_local_authorities(
    conn: &mut Conn,
    las: &[LocalAuthority],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let now = ts(now);
    for la in las {
        conn.execute(
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
    conn: &mut Conn,
    settings: &[CareSetting],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let now = ts(now);
    for s in settings {
        conn.execute(
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
    Ok(LocalAuthority {
        ods_code: parse_ods(r.try_get::<_, &str>(0)?)?,
        name: r.try_get(1)?,
        office_hours_phone: r.try_get(2)?,
        edt_phone: r.try_get(3)?,
        secure_email: r.try_get(4)?,
        mesh_mailbox: r.try_get(5)?,
    })
}

pub fn local_authority(conn: &mut Conn, ods: &OdsCode) -> StoreResult<Option<LocalAuthority>> {
    conn.query_opt(
        &format!("SELECT {LA_COLUMNS} FROM local_authorities WHERE ods_code = $1"),
        &[&ods.as_str()],
    )?
    .as_ref()
    .map(la_from_row)
    .transpose()
}

pub fn local_authorities(conn: &mut Conn) -> StoreResult<Vec<LocalAuthority>> {
    conn.query(
        &format!("SELECT {LA_COLUMNS} FROM local_authorities ORDER BY ods_code COLLATE \"C\""),
        &[],
    )?
    .iter()
    .map(la_from_row)
    .collect()
}

pub fn care_setting(conn: &mut Conn, ods: &OdsCode) -> StoreResult<Option<CareSetting>> {
    let Some(r) = conn.query_opt(
        "SELECT ods_code, name, setting_type FROM care_settings WHERE ods_code = $1",
        &[&ods.as_str()],
    )?
    else {
        return Ok(None);
    };
    Ok(Some(CareSetting {
        ods_code: parse_ods(r.try_get::<_, &str>(0)?)?,
        name: r.try_get(1)?,
        setting_type: r
            .try_get::<_, &str>(2)?
            .parse()
            .map_err(|_| StoreError::corrupt("setting type"))?,
    }))
}

/// Inside the caller's transaction.
pub fn upsert_demographics(
    conn: &mut Conn,
    entries: &[Demographics],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let now = ts(now);
    if entries.len() > COPY_OVER {
        bulk::upsert_demographics(conn, entries, now)?;
        return Ok(entries.len());
    }
    for e in entries {
        conn.execute(
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

fn demographics_row(nhs: NhsNumber, r: &postgres::Row) -> StoreResult<Demographics> {
    let status = match (r.try_get::<_, &str>(0)?, r.try_get::<_, Option<&str>>(1)?) {
        ("active", None) => DemographicStatus::Active,
        ("inactive", None) => DemographicStatus::Inactive,
        ("superseded", Some(by)) => DemographicStatus::Superseded(parse_nhs(by)?),
        _ => return Err(StoreError::corrupt("demographic status")),
    };
    Ok(Demographics {
        nhs_number: nhs,
        status,
        date_of_birth: r.try_get::<_, NaiveDate>(2)?,
        sensitive: r.try_get(3)?,
    })
}

pub fn demographics(conn: &mut Conn, nhs: NhsNumber) -> StoreResult<Option<Demographics>> {
    conn.query_opt(
        "SELECT status, superseded_by, date_of_birth, sensitive FROM demographics WHERE nhs_number = $1",
        &[&nhs.digits()],
    )?
    .map(|r| demographics_row(nhs, &r))
    .transpose()
}

/// Many entries in one round trip.
pub fn demographics_many(
    conn: &mut Conn,
    nhs: &[NhsNumber],
) -> StoreResult<std::collections::HashMap<NhsNumber, Demographics>> {
    let digits: Vec<String> = nhs.iter().map(|n| n.digits()).collect();
    let rows = conn.query(
        "SELECT status, superseded_by, date_of_birth, sensitive, nhs_number FROM demographics
         WHERE nhs_number = ANY($1)",
        &[&digits],
    )?;
    let mut out = std::collections::HashMap::with_capacity(rows.len());
    for r in rows {
        let n = parse_nhs(r.try_get::<_, &str>(4)?)?;
        out.insert(n, demographics_row(n, &r)?);
    }
    Ok(out)
}
