//! Schema migrations for SQLite, embedded in the binary and applied in order at open. The
//! version lives in `PRAGMA user_version`; each migration runs in its own transaction.

use crate::StoreResult;
use rusqlite::Connection;

const MIGRATIONS: &[(&str, &str)] = crate::sql::migrations!("sqlite");

pub fn current_version(conn: &Connection) -> StoreResult<u32> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

pub fn run(conn: &mut Connection) -> StoreResult<()> {
    let have = current_version(conn)? as usize;
    crate::sql::check_schema(have, MIGRATIONS.len())?;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(have) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        if current_version(&tx)? as usize > i {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
        tracing::info!(migration = name, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Column `at` of every row `sql` returns, as text.
    fn texts(conn: &Connection, sql: &str, at: usize) -> Vec<String> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(at))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// A database migrated up to, not including, the migration `name`.
    fn just_before(name: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        let before = MIGRATIONS.iter().position(|(n, _)| *n == name).unwrap();
        for (_, sql) in &MIGRATIONS[..before] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", before as u32)
            .unwrap();
        conn
    }

    /// An upgrade to the work queue (0014) does not escalate every old unacknowledged
    /// notification at once: those a day old are marked escalated by the migration, a younger
    /// one, an acknowledged one and an upload report are left as they were.
    #[test]
    fn the_work_queue_upgrade_marks_old_unacknowledged_notifications_escalated() {
        let mut conn = just_before("0014_work_queue");
        let at =
            |days: i64| crate::sql::time_text(chrono::Utc::now() - chrono::Duration::days(days));
        for (i, (kind, days, acked)) in [
            ("access", 3, false),
            ("was-not-brought", 2, false),
            ("access", 3, true),
            ("upload-report", 3, false),
            ("access", 0, false),
        ]
        .into_iter()
        .enumerate()
        {
            conn.execute(
                "INSERT INTO notifications (id, la_ods, kind, created_at, payload, la_seq,
                    acknowledged_at) VALUES (?1, 'E08000026', ?2, ?3, '{}', ?4, ?5)",
                rusqlite::params![
                    format!("n{i}"),
                    kind,
                    at(days),
                    i as i64 + 1,
                    acked.then(|| at(days))
                ],
            )
            .unwrap();
        }
        run(&mut conn).unwrap();
        let escalated: Vec<(String, bool)> = conn
            .prepare("SELECT id, escalated_at IS NOT NULL FROM notifications ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            escalated,
            [
                ("n0".to_owned(), true),
                ("n1".to_owned(), true),
                ("n2".to_owned(), false),
                ("n3".to_owned(), false),
                ("n4".to_owned(), false),
            ]
        );
    }

    /// The upgrade that stops indexing an access's id (0021) rebuilds the table: every access,
    /// with every column, is there afterwards under its sequence number, the child's history
    /// index with it, and the next access takes the next number.
    #[test]
    fn the_access_id_upgrade_keeps_every_access() {
        let mut conn = just_before("0021_access_id_unindexed");
        let columns = "seq, id, time, nhs_number, kind, user_id, user_name, role, org_ods, \
                       org_name, setting_type, trace_id, sds_user_id, role_profile_id, role_code";
        for (seq, kind) in [(3, "unscheduled"), (7, "silent"), (8, "miss")] {
            conn.execute(
                &format!(
                    "INSERT INTO accesses ({columns}) VALUES (?1, ?2, '2026-12-01T10:00:00.000Z',
                        '9434765919', ?3, 'u1', 'Dr A', 'clinician', 'RX1', 'A and E', 'ed',
                        ?4, ?5, 'rp1', 'R8000')"
                ),
                rusqlite::params![
                    seq,
                    format!("a{seq}"),
                    kind,
                    format!("t{seq}"),
                    (seq == 3).then_some("555")
                ],
            )
            .unwrap();
        }
        let dump = |conn: &Connection| -> Vec<String> {
            conn.prepare(&format!("SELECT {columns} FROM accesses ORDER BY seq"))
                .unwrap()
                .query_map([], |r| {
                    Ok((0..15)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let old = dump(&conn);
        run(&mut conn).unwrap();
        assert_eq!(dump(&conn), old);
        let indexes = texts(
            &conn,
            "SELECT name FROM pragma_index_list('accesses') ORDER BY name",
            0,
        );
        assert_eq!(indexes, ["accesses_history"]);
        conn.execute(
            "INSERT INTO accesses (id, time, nhs_number, kind, user_id, user_name, role, org_ods,
                org_name) VALUES ('a9', 't', '9434765919', 'miss', 'u', 'n', 'r', 'o', 'n')",
            [],
        )
        .unwrap();
        let seq: i64 = conn
            .query_row("SELECT seq FROM accesses WHERE id = 'a9'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seq, 9);
    }

    /// After 0023 the access-history index keys on the child alone (`seq`, the rowid, is in
    /// every entry and orders equal keys): a child's accesses are still read from it in sequence
    /// order and by a range of sequence numbers, with no sort.
    #[test]
    fn a_childs_history_is_read_from_the_child_index_in_sequence_order() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        let columns = texts(
            &conn,
            "SELECT name FROM pragma_index_info('accesses_history')",
            0,
        );
        assert_eq!(columns, ["nhs_number"]);
        for query in [
            "SELECT seq FROM accesses WHERE nhs_number = '9434765919' AND kind = 'unscheduled'
             ORDER BY seq DESC LIMIT 1",
            "SELECT * FROM accesses WHERE nhs_number = '9434765919' AND kind = 'unscheduled' AND seq > 5
             ORDER BY seq LIMIT 25",
            "SELECT time, org_ods FROM accesses WHERE nhs_number = '9434765919' AND kind = 'unscheduled'
             AND seq > 5 AND seq <= 9 ORDER BY seq",
        ] {
            let plan = texts(&conn, &format!("EXPLAIN QUERY PLAN {query}"), 3);
            assert!(
                plan.len() == 1
                    && plan[0].starts_with("SEARCH accesses USING ")
                    && plan[0].contains("INDEX accesses_history (nhs_number=?"),
                "{query}: {plan:?}"
            );
        }
        let ranged: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT seq FROM accesses WHERE nhs_number = '9434765919'
                 AND kind = 'unscheduled' AND seq > 5 AND seq <= 9",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(ranged.contains("rowid>? AND rowid<?"), "{ranged}");
    }
}
