//! Bulk writes through `COPY ... FROM STDIN (FORMAT binary)`: large uploads and demographics
//! loads stream their rows into a temporary table (dropped at commit) and apply them with one
//! `INSERT ... ON CONFLICT`, instead of a round trip per row. When the same key appears more than
//! once in a batch the last one wins, exactly as applying the rows one by one would.

use super::pool::Conn;
use crate::sql::demographics::superseded_by;
use crate::sql::uploads::PendingUpsert;
use crate::sql::{big, Db};
use crate::StoreResult;
use chrono::{DateTime, SubsecRound, Utc};
use cpis_domain::report::RowResult;
use cpis_domain::{Demographics, NhsNumber};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

/// Streams `rows` into `copy_sql` (a `COPY ... FROM STDIN (FORMAT binary)`), each value in the
/// type its column has in `columns_sql` (a query of the copied columns).
fn copy<T>(
    conn: &mut Conn,
    copy_sql: &str,
    columns_sql: &str,
    rows: &[T],
    fields: impl Fn(
        usize,
        &T,
        &mut dyn FnMut(&[&(dyn ToSql + Sync)]) -> StoreResult<()>,
    ) -> StoreResult<()>,
) -> StoreResult<()> {
    // Not from the statement cache: a staging table is made anew in each transaction.
    let columns = conn.client().prepare(columns_sql)?;
    let types: Vec<Type> = columns
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    let sink = conn.client().copy_in(copy_sql)?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    for (i, row) in rows.iter().enumerate() {
        fields(i, row, &mut |values| Ok(writer.write(values)?))?;
    }
    writer.finish()?;
    Ok(())
}

pub fn upsert_demographics(
    conn: &mut Conn,
    entries: &[Demographics],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    conn.batch(
        "CREATE TEMP TABLE cpis_demographics_in (
             ord bigint, nhs_number text, status text, superseded_by text, date_of_birth date,
             sensitive boolean, mother_nhs_number text
         ) ON COMMIT DROP",
    )?;
    copy(
        conn,
        "COPY cpis_demographics_in FROM STDIN (FORMAT binary)",
        "SELECT * FROM cpis_demographics_in",
        entries,
        |i, e, write| {
            write(&[
                &(i as i64),
                &e.nhs_number.digits(),
                &e.status.code(),
                &superseded_by(e),
                &e.date_of_birth,
                &e.sensitive,
                &e.mother_nhs_number.map(|m| m.digits()),
            ])
        },
    )?;
    conn.exec(
        "INSERT INTO demographics (nhs_number, status, superseded_by, date_of_birth, sensitive, updated_at,
                                   mother_nhs_number)
         SELECT DISTINCT ON (nhs_number) nhs_number, status, superseded_by, date_of_birth, sensitive, $1,
                mother_nhs_number
         FROM cpis_demographics_in ORDER BY nhs_number, ord DESC
         ON CONFLICT (nhs_number) DO UPDATE SET
             status = excluded.status, superseded_by = excluded.superseded_by,
             date_of_birth = excluded.date_of_birth, sensitive = excluded.sensitive,
             updated_at = excluded.updated_at,
             mother_nhs_number = coalesce(excluded.mother_nhs_number, demographics.mother_nhs_number)",
        &[&now],
    )?;
    conn.batch("DROP TABLE cpis_demographics_in")?;
    Ok(())
}

/// Writes a batch of upserts through COPY. `staged` says whether this transaction already made
/// the staging table (it is dropped at commit or rollback). Returns the NHS numbers whose record
/// lost its sensitive mark.
pub fn upsert_many(
    conn: &mut Conn,
    rows: &[PendingUpsert],
    staged: &mut bool,
) -> StoreResult<Vec<NhsNumber>> {
    if *staged {
        conn.batch("TRUNCATE cpis_upserts_in")?;
    } else {
        conn.batch(
            "CREATE TEMP TABLE cpis_upserts_in (
                 ord bigint, la_ods text, nhs_number text, local_id text, given_name text,
                 family_name text, date_of_birth date, marked boolean, mark_stated boolean,
                 now timestamptz,
                 upload_id text, plan_type text, start_date date, end_date date,
                 expected_delivery_date date
             ) ON COMMIT DROP",
        )?;
        *staged = true;
    }
    copy(
        conn,
        "COPY cpis_upserts_in FROM STDIN (FORMAT binary)",
        "SELECT * FROM cpis_upserts_in",
        rows,
        |i, u, write| {
            let (r, plan) = (&u.row, &u.row.plan);
            write(&[
                &(i as i64),
                &u.la.as_str(),
                &r.nhs_number.digits(),
                &r.local_id,
                &r.given_name,
                &r.family_name,
                &r.date_of_birth,
                &r.sensitive.is_marked(),
                &u.mark_stated(),
                &u.now.trunc_subsecs(6),
                &u.upload.as_str(),
                &plan.plan_type().code(),
                &plan.start(),
                &plan.end(),
                &plan.expected_delivery(),
            ])
        },
    )?;
    // The record takes the last row's fields; created_at is the first row's time, as when the
    // rows are applied one by one. Its sensitive mark follows its plans' marks: a plan takes
    // its row's stated mark, an unstated one keeps what it had (a new plan is unmarked). As in
    // `uploads::upsert_one`, a row that changes nothing writes nothing: `updated_at` and
    // `last_upload_id` say when and by which upload a record's or plan's own fields changed.
    //
    // Every join below meets a staged row (at most `sql::tx::FLUSH_AT`) with `records` or `plans`
    // by a unique key, so an index probe per row is always the right plan. The planner, with no
    // statistics on a table just filled, otherwise hashes all of `plans` or `records` (measured
    // on a 5,000-row daily file against 500,000 records: the mark update read all 500,000 plans,
    // 96 ms of the file's 200 ms); with `ANALYZE` on the staging table it did the same to the
    // statement that clears marks instead. Hash and merge joins are off for these statements
    // only.
    conn.batch(
        "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;
         INSERT INTO records (nhs_number, la_ods, local_id, given_name, family_name, date_of_birth,
                              sensitive, created_at, updated_at, last_upload_id)
         SELECT DISTINCT ON (la_ods, nhs_number) nhs_number, la_ods, local_id, given_name,
                family_name, date_of_birth, false,
                first_value(now) OVER (PARTITION BY la_ods, nhs_number ORDER BY ord), now, upload_id
         FROM cpis_upserts_in ORDER BY la_ods, nhs_number, ord DESC
         ON CONFLICT (nhs_number, la_ods) DO UPDATE SET
             local_id = excluded.local_id, given_name = excluded.given_name,
             family_name = excluded.family_name, date_of_birth = excluded.date_of_birth,
             updated_at = excluded.updated_at, last_upload_id = excluded.last_upload_id
         WHERE (records.local_id, records.given_name, records.family_name, records.date_of_birth)
               IS DISTINCT FROM
               (excluded.local_id, excluded.given_name, excluded.family_name, excluded.date_of_birth);
         INSERT INTO plans (record_id, plan_type, start_date, end_date, expected_delivery_date,
                            sensitive, updated_at)
         SELECT DISTINCT ON (r.id, b.plan_type) r.id, b.plan_type, b.start_date, b.end_date,
                b.expected_delivery_date, b.marked, b.now
         FROM cpis_upserts_in b JOIN records r ON r.nhs_number = b.nhs_number AND r.la_ods = b.la_ods
         ORDER BY r.id, b.plan_type, b.ord DESC
         ON CONFLICT (record_id, plan_type) DO UPDATE SET
             start_date = excluded.start_date, end_date = excluded.end_date,
             expected_delivery_date = excluded.expected_delivery_date,
             updated_at = excluded.updated_at
         WHERE (plans.start_date, plans.end_date, plans.expected_delivery_date)
               IS DISTINCT FROM
               (excluded.start_date, excluded.end_date, excluded.expected_delivery_date);
         UPDATE plans p SET sensitive = b.marked, updated_at = b.now
         FROM cpis_upserts_in b JOIN records r ON r.nhs_number = b.nhs_number AND r.la_ods = b.la_ods
         WHERE p.record_id = r.id AND p.plan_type = b.plan_type AND b.mark_stated
           AND p.sensitive <> b.marked;
         UPDATE records r SET sensitive = true
         FROM (SELECT DISTINCT la_ods, nhs_number FROM cpis_upserts_in WHERE marked) b
         WHERE r.la_ods = b.la_ods AND r.nhs_number = b.nhs_number AND NOT r.sensitive;",
    )?;
    let unmarked = conn.rows(
        "UPDATE records r SET sensitive = false
         FROM (SELECT DISTINCT la_ods, nhs_number FROM cpis_upserts_in
               WHERE mark_stated AND NOT marked) b
         WHERE r.la_ods = b.la_ods AND r.nhs_number = b.nhs_number AND r.sensitive
           AND NOT EXISTS (SELECT 1 FROM plans p WHERE p.record_id = r.id AND p.sensitive)
         RETURNING r.nhs_number",
        &[],
    )?;
    conn.batch("RESET enable_hashjoin; RESET enable_mergejoin")?;
    unmarked.iter().map(|r| r.get(0)).collect()
}

const ROW_COLUMNS: &str =
    "upload_seq, row_no, nhs_number, outcome, detail, message, new_nhs_number, local_id";

/// Writes one upload's row results through COPY.
pub fn row_results(conn: &mut Conn, upload_seq: i64, rows: &[RowResult]) -> StoreResult<()> {
    copy(
        conn,
        &format!("COPY upload_rows ({ROW_COLUMNS}) FROM STDIN (FORMAT binary)"),
        &format!("SELECT {ROW_COLUMNS} FROM upload_rows"),
        rows,
        |_, r, write| {
            write(&[
                &upload_seq,
                &big(r.row),
                &r.nhs_number,
                &r.outcome.code(),
                &r.detail.map(|d| d.code()),
                &r.message,
                &r.new_nhs_number.map(|n| n.digits()),
                &r.local_id,
            ])
        },
    )
}
