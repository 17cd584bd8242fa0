//! A small blocking connection pool: at most `max` connections open, idle ones kept for reuse,
//! each with its own prepared-statement cache. A connection that broke (closed by the server, or
//! left in an unknown transaction state) is discarded instead of returned; one that sat idle is
//! checked before it is handed out, so a connection PostgreSQL ended while it was idle (a restart,
//! a failover, a terminated session) is replaced instead of failing a request.

use crate::sql::{Arg, Args, Db, Lock, Row, Value};
use crate::{StoreError, StoreResult};
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use postgres::types::{FromSql, ToSql, Type};
use postgres::{Client, NoTls, Statement};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Most prepared statements one connection keeps (the store uses a few dozen).
const STATEMENT_CACHE: usize = 256;
/// A connection idle at least this long is checked (one round trip) before it is reused. Busy
/// connections are reused sooner (the pool hands out the one returned last) and never pay for
/// it; a server restart or failover keeps a connection idle for longer than this, so one it broke
/// is caught here. 250 ms let a connection returned just before a quick restart (PostgreSQL
/// stopped in ~100 ms and started again) be handed out unchecked, and fail the first lookup
/// after it (seen once in CI, `tests/faults.rs`); a restart takes well over 50 ms.
const CHECK_AFTER_IDLE: Duration = Duration::from_millis(50);
/// How long that check may take before the connection is given up.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection with its prepared statements.
pub struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// Left in an unknown state (a failed rollback or commit): closed instead of returned.
    broken: bool,
}

impl Conn {
    fn new(client: Client) -> Self {
        Conn {
            client,
            statements: HashMap::new(),
            broken: false,
        }
    }

    /// The prepared statement for `sql`, prepared once per connection.
    pub fn statement(&mut self, sql: &str) -> StoreResult<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Marks the connection as unusable (it is closed instead of returned to the pool).
    pub fn discard(&mut self) {
        self.broken = true;
    }
}

struct State {
    /// Connections ready for reuse, with when they were returned.
    idle: Vec<(Conn, Instant)>,
    open: usize,
}

pub struct Pool {
    config: postgres::Config,
    max: usize,
    wait: Duration,
    state: Mutex<State>,
    freed: Condvar,
}

impl Pool {
    pub fn new(config: postgres::Config, max: usize, wait: Duration) -> Self {
        Pool {
            config,
            max: max.max(1),
            wait,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new connection outside the pool's count (migrations, tests).
    pub fn connect(&self) -> StoreResult<Conn> {
        Ok(Conn::new(self.config.connect(NoTls)?))
    }

    /// A connection from the pool, waiting for one to be returned when `max` are out.
    pub fn get(&self) -> StoreResult<Pooled<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            while let Some((mut conn, since)) = state.idle.pop() {
                if conn.is_closed() {
                    state.open -= 1;
                    continue;
                }
                if since.elapsed() >= CHECK_AFTER_IDLE {
                    // Checked outside the lock: other callers need not wait on this round trip.
                    drop(state);
                    if conn.client.is_valid(CHECK_TIMEOUT).is_err() {
                        drop(conn);
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        state = self.lock();
                        continue;
                    }
                }
                return Ok(Pooled {
                    conn: Some(conn),
                    pool: self,
                });
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        conn: Some(conn),
                        pool: self,
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::unavailable(
                    "no database connection free in the pool",
                ));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn put(&self, conn: Conn) {
        if conn.broken || conn.is_closed() {
            self.lock().open -= 1;
            self.freed.notify_one();
            drop(conn);
            return;
        }
        self.lock().idle.push((conn, Instant::now()));
        self.freed.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing a synchronous client blocks on its own runtime, which panics inside an async
        // context: close idle connections on a plain thread.
        let idle = std::mem::take(&mut self.lock().idle);
        if !idle.is_empty() {
            let _ = std::thread::Builder::new()
                .name("cpis-pg-close".into())
                .spawn(move || drop(idle))
                .map(|h| h.join());
        }
    }
}

/// A connection borrowed from the pool; returned when dropped.
pub struct Pooled<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
}

impl Deref for Pooled<'_> {
    type Target = Conn;
    #[allow(clippy::expect_used, reason = "cannot fail: present until dropped")]
    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("pooled connection present until dropped")
    }
}

impl DerefMut for Pooled<'_> {
    #[allow(clippy::expect_used, reason = "cannot fail: present until dropped")]
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("pooled connection present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put(conn);
        }
    }
}

/// A parameter as the statement's type wants it (an `Arg::Int` for an `integer` column is bound
/// as `i32`, a NULL with the column's type).
fn pg_arg<'a>(arg: Arg<'a>, ty: &Type) -> Box<dyn ToSql + Sync + 'a> {
    let name = ty.name();
    match arg {
        Arg::Null => match name {
            "int2" => Box::new(None::<i16>),
            "int4" => Box::new(None::<i32>),
            "int8" => Box::new(None::<i64>),
            "bool" => Box::new(None::<bool>),
            "timestamptz" => Box::new(None::<DateTime<Utc>>),
            "date" => Box::new(None::<NaiveDate>),
            "bytea" => Box::new(None::<Vec<u8>>),
            _ => Box::new(None::<String>),
        },
        Arg::Int(i) => match name {
            "int2" => Box::new(i16::try_from(i).unwrap_or(i16::MAX)),
            "int4" => Box::new(i32::try_from(i).unwrap_or(i32::MAX)),
            _ => Box::new(i),
        },
        Arg::Text(s) => Box::new(s),
        Arg::Blob(b) => Box::new(b),
        Arg::Bool(b) => Box::new(b),
        // What `timestamptz` holds, and what the SQLite text keeps.
        Arg::Time(t) => Box::new(t.trunc_subsecs(6)),
        Arg::Date(d) => Box::new(d),
        Arg::TextList(l) => Box::new(l),
        Arg::IntList(l) => Box::new(l),
    }
}

fn pg_value(r: &postgres::Row, i: usize, ty: &Type) -> StoreResult<Value> {
    fn get<'a, T: FromSql<'a>>(
        r: &'a postgres::Row,
        i: usize,
        value: impl FnOnce(T) -> Value,
    ) -> StoreResult<Value> {
        Ok(r.try_get::<_, Option<T>>(i)?.map_or(Value::Null, value))
    }
    match ty.name() {
        "int2" => get(r, i, |v: i16| Value::Int(v.into())),
        "int4" => get(r, i, |v: i32| Value::Int(v.into())),
        "int8" => get(r, i, Value::Int),
        "bool" => get(r, i, Value::Bool),
        "timestamptz" => get(r, i, Value::Time),
        "date" => get(r, i, Value::Date),
        "bytea" => get(r, i, Value::Blob),
        "float8" => get(r, i, Value::Real),
        _ => get(r, i, Value::Text),
    }
}

impl Conn {
    fn bound<'a>(
        &mut self,
        sql: &str,
        args: Args<'a>,
    ) -> StoreResult<(Statement, Vec<Box<dyn ToSql + Sync + 'a>>)> {
        let st = self.statement(sql)?;
        let values = args
            .iter()
            .enumerate()
            .map(|(i, a)| pg_arg(a.arg(), st.params().get(i).unwrap_or(&Type::TEXT)))
            .collect();
        Ok((st, values))
    }
}

fn refs<'a>(values: &'a [Box<dyn ToSql + Sync + '_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    values.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect()
}

impl Db for Conn {
    fn exec(&mut self, sql: &str, args: Args<'_>) -> StoreResult<u64> {
        let (st, values) = self.bound(sql, args)?;
        Ok(self.client.execute(&st, &refs(&values))?)
    }

    fn rows(&mut self, sql: &str, args: Args<'_>) -> StoreResult<Vec<Row>> {
        let (st, values) = self.bound(sql, args)?;
        let rows = self.client.query(&st, &refs(&values))?;
        let types: Vec<Type> = st.columns().iter().map(|c| c.type_().clone()).collect();
        rows.iter()
            .map(|r| {
                let values = types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| pg_value(r, i, ty))
                    .collect::<StoreResult<_>>()?;
                Ok(Row(values))
            })
            .collect()
    }

    /// Statements without parameters (simple query protocol).
    fn batch(&mut self, sql: &str) -> StoreResult<()> {
        Ok(self.client.batch_execute(sql)?)
    }

    fn begin(&mut self) -> StoreResult<()> {
        self.batch("BEGIN")
    }

    fn commit(&mut self) -> StoreResult<()> {
        let out = self.batch("COMMIT");
        if out.is_err() {
            self.discard();
        }
        out
    }

    fn rollback(&mut self) {
        if self.batch("ROLLBACK").is_err() {
            self.discard();
        }
    }

    fn lock(&mut self, lock: Lock<'_>) -> StoreResult<()> {
        match lock {
            Lock::Notify => self.exec(
                "SELECT pg_advisory_xact_lock($1::int4, 0)",
                &[&super::LOCK_NOTIFY],
            )?,
            Lock::UploadLa(la) => self.exec(
                "SELECT pg_advisory_xact_lock($1::int4, hashtext($2))",
                &[&super::LOCK_UPLOAD_LA, &la],
            )?,
        };
        Ok(())
    }

    fn postgres(&mut self) -> Option<&mut Conn> {
        Some(self)
    }
}
