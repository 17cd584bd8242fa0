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
use cpis_domain::{Demographics, NhsNumber, PlanType};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use std::collections::HashMap;

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

/// One plan of a batch, folded as applying the batch's rows one by one would: its last row,
/// the mark of its last row that states one, and, on one plan of each record, the record's
/// last row and its first row's time (the record's fields are its last row's; it was created
/// at its first).
struct FoldedPlan<'a> {
    last: &'a PendingUpsert,
    stated_mark: Option<bool>,
    record: Option<(&'a PendingUpsert, DateTime<Utc>)>,
}

/// Folds a batch into one entry per plan, in the order plans first appear. Done here rather
/// than in SQL (`DISTINCT ON`, window functions, a sort per statement) because the database
/// server's CPU sets the pace of a PostgreSQL upload while cpis waits for it (issue #16).
fn fold(rows: &[PendingUpsert]) -> Vec<FoldedPlan<'_>> {
    let mut plans: HashMap<(&str, NhsNumber, PlanType), usize> = HashMap::new();
    let mut records: HashMap<(&str, NhsNumber), (&PendingUpsert, DateTime<Utc>, usize)> =
        HashMap::new();
    let mut folded: Vec<FoldedPlan<'_>> = Vec::with_capacity(rows.len());
    for u in rows {
        let (la, nhs) = (u.la.as_str(), u.row.nhs_number);
        let at = *plans
            .entry((la, nhs, u.row.plan.plan_type()))
            .or_insert_with(|| {
                folded.push(FoldedPlan {
                    last: u,
                    stated_mark: None,
                    record: None,
                });
                folded.len() - 1
            });
        let plan = &mut folded[at];
        plan.last = u;
        if u.mark_stated() {
            plan.stated_mark = Some(u.row.sensitive.is_marked());
        }
        records
            .entry((la, nhs))
            .and_modify(|(last, _, _)| *last = u)
            .or_insert((u, u.now, at));
    }
    for (last, created, at) in records.into_values() {
        folded[at].record = Some((last, created));
    }
    folded
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
        // A row per plan; the record's columns are filled on one plan of each record only.
        conn.batch(
            "CREATE TEMP TABLE cpis_upserts_in (
                 la_ods text, nhs_number text, plan_type text, start_date date, end_date date,
                 expected_delivery_date date, now timestamptz, stated boolean,
                 stated_mark boolean, record_row boolean, local_id text, given_name text,
                 family_name text, date_of_birth date, created_at timestamptz,
                 record_now timestamptz, upload_id text
             ) ON COMMIT DROP",
        )?;
        *staged = true;
    }
    let folded = fold(rows);
    copy(
        conn,
        "COPY cpis_upserts_in FROM STDIN (FORMAT binary)",
        "SELECT * FROM cpis_upserts_in",
        &folded,
        |_, f, write| {
            let (u, plan) = (f.last, &f.last.row.plan);
            let record = f.record.map(|(last, created)| (&last.row, created, last));
            write(&[
                &u.la.as_str(),
                &u.row.nhs_number.digits(),
                &plan.plan_type().code(),
                &plan.start(),
                &plan.end(),
                &plan.expected_delivery(),
                &u.now.trunc_subsecs(6),
                &f.stated_mark.is_some(),
                &f.stated_mark.unwrap_or(false),
                &record.is_some(),
                &record.and_then(|(r, _, _)| r.local_id.as_deref()),
                &record.and_then(|(r, _, _)| r.given_name.as_deref()),
                &record.and_then(|(r, _, _)| r.family_name.as_deref()),
                &record.map(|(r, _, _)| r.date_of_birth),
                &record.map(|(_, created, _)| created.trunc_subsecs(6)),
                &record.map(|(_, _, last)| last.now.trunc_subsecs(6)),
                &record.map(|(_, _, last)| last.upload.as_str()),
            ])
        },
    )?;
    // As in `uploads::upsert_one`, a row that changes nothing writes nothing: `updated_at` and
    // `last_upload_id` say when and by which upload a record's or plan's own fields changed. The
    // records statement still meets every held record on its key (and so locks it until commit,
    // whether or not it changes): a demographics change moving the child's records to a new
    // number waits for the upload instead of taking the record from under the plans statement.
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
         SELECT nhs_number, la_ods, local_id, given_name, family_name, date_of_birth, false,
                created_at, record_now, upload_id
         FROM cpis_upserts_in WHERE record_row ORDER BY la_ods, nhs_number
         ON CONFLICT (nhs_number, la_ods) DO UPDATE SET
             local_id = excluded.local_id, given_name = excluded.given_name,
             family_name = excluded.family_name, date_of_birth = excluded.date_of_birth,
             updated_at = excluded.updated_at, last_upload_id = excluded.last_upload_id
         WHERE (records.local_id, records.given_name, records.family_name, records.date_of_birth)
               IS DISTINCT FROM
               (excluded.local_id, excluded.given_name, excluded.family_name, excluded.date_of_birth)",
    )?;
    // Then each plan, its mark and its record's mark in one statement (issue #16: the marks were
    // two more statements probing every staged row's record and plan again, a quarter of a
    // PostgreSQL reload, and a plan that changed nothing was locked by its upsert). A plan takes
    // its last row's dates and the mark of its last row that states one; with none stated it
    // keeps its own (a new plan is unmarked). Only plans that change are written: `src` reads each
    // plan as held, so a row that changes nothing writes and locks nothing. Plans whose rows state
    // a mark and those whose rows do not are upserted apart, so that a plan met on its key at
    // insert (another transaction made it after `src` was read) keeps its mark unless a row
    // states one. A record is marked when a row marks one of its plans; the statement returns
    // the records a row unmarked a plan of, whose own mark goes once no plan holds one (below).
    let unmarking: Vec<i64> = conn
        .rows(
            "WITH src AS MATERIALIZED (
                 SELECT r.id AS record_id, r.sensitive AS record_marked, d.plan_type,
                        d.start_date, d.end_date, d.expected_delivery_date, d.now, d.stated,
                        CASE WHEN d.stated THEN d.stated_mark ELSE coalesce(p.sensitive, false)
                        END AS mark,
                        p.record_id IS NOT NULL AS held, p.start_date AS held_start,
                        p.end_date AS held_end, p.expected_delivery_date AS held_expected,
                        p.sensitive AS held_mark
                 FROM cpis_upserts_in d
                 JOIN records r ON r.nhs_number = d.nhs_number AND r.la_ods = d.la_ods
                 LEFT JOIN plans p ON p.record_id = r.id AND p.plan_type = d.plan_type
             ),
             changed AS (
                 SELECT * FROM src
                 WHERE NOT held
                    OR (held_start, held_end, held_expected, held_mark)
                       IS DISTINCT FROM (start_date, end_date, expected_delivery_date, mark)
             ),
             stated AS (
                 INSERT INTO plans (record_id, plan_type, start_date, end_date,
                                    expected_delivery_date, sensitive, updated_at)
                 SELECT record_id, plan_type, start_date, end_date, expected_delivery_date, mark,
                        now
                 FROM changed WHERE stated ORDER BY record_id, plan_type
                 ON CONFLICT (record_id, plan_type) DO UPDATE SET
                     start_date = excluded.start_date, end_date = excluded.end_date,
                     expected_delivery_date = excluded.expected_delivery_date,
                     sensitive = excluded.sensitive, updated_at = excluded.updated_at
                 WHERE (plans.start_date, plans.end_date, plans.expected_delivery_date,
                        plans.sensitive)
                       IS DISTINCT FROM
                       (excluded.start_date, excluded.end_date, excluded.expected_delivery_date,
                        excluded.sensitive)
             ),
             unstated AS (
                 INSERT INTO plans (record_id, plan_type, start_date, end_date,
                                    expected_delivery_date, sensitive, updated_at)
                 SELECT record_id, plan_type, start_date, end_date, expected_delivery_date, mark,
                        now
                 FROM changed WHERE NOT stated ORDER BY record_id, plan_type
                 ON CONFLICT (record_id, plan_type) DO UPDATE SET
                     start_date = excluded.start_date, end_date = excluded.end_date,
                     expected_delivery_date = excluded.expected_delivery_date,
                     updated_at = excluded.updated_at
                 WHERE (plans.start_date, plans.end_date, plans.expected_delivery_date)
                       IS DISTINCT FROM
                       (excluded.start_date, excluded.end_date, excluded.expected_delivery_date)
             ),
             marking AS (
                 UPDATE records r SET sensitive = true
                 FROM (SELECT DISTINCT record_id FROM src
                       WHERE stated AND mark AND NOT record_marked) m
                 WHERE r.id = m.record_id AND NOT r.sensitive
             )
             SELECT DISTINCT record_id FROM src WHERE stated AND NOT mark AND record_marked",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect::<StoreResult<_>>()?;
    conn.batch("RESET enable_hashjoin; RESET enable_mergejoin")?;
    if unmarking.is_empty() {
        return Ok(Vec::new());
    }
    let ids = unmarking
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let unmarked = conn.rows(
        "UPDATE records r SET sensitive = false
         WHERE r.id = ANY(string_to_array($1, ',')::int8[]) AND r.sensitive
           AND NOT EXISTS (SELECT 1 FROM plans p WHERE p.record_id = r.id AND p.sensitive)
         RETURNING r.nhs_number",
        &[&ids],
    )?;
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
