//! A small blocking connection pool: at most `max` connections open, idle ones kept for reuse,
//! each with its own prepared-statement cache. A connection that broke (closed by the server, or
//! left in an unknown transaction state) is discarded instead of returned; one that sat idle is
//! checked before it is handed out, so a connection PostgreSQL ended while it was idle (a restart,
//! a failover, a terminated session) is replaced instead of failing a request.

use crate::{StoreError, StoreResult};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Most prepared statements one connection keeps (the store uses a few dozen).
const STATEMENT_CACHE: usize = 256;
/// A connection idle at least this long is checked (one round trip) before it is reused. Busy
/// connections are reused sooner and never pay for it; a server restart or failover keeps a
/// connection idle for longer than this, so one it broke is caught here.
const CHECK_AFTER_IDLE: Duration = Duration::from_millis(250);
/// How long that check may take before the connection is given up.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One connection with its prepared statements.
pub struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    fn new(client: Client) -> Self {
        Conn {
            client,
            statements: HashMap::new(),
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

    pub fn execute(&mut self, sql: &str, params: Params<'_>) -> StoreResult<u64> {
        let s = self.statement(sql)?;
        Ok(self.client.execute(&s, params)?)
    }

    pub fn query(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let s = self.statement(sql)?;
        Ok(self.client.query(&s, params)?)
    }

    pub fn query_opt(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
        let s = self.statement(sql)?;
        Ok(self.client.query_opt(&s, params)?)
    }

    pub fn query_one(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Row> {
        let s = self.statement(sql)?;
        Ok(self.client.query_one(&s, params)?)
    }

    /// Runs statements without parameters (simple query protocol).
    pub fn batch(&mut self, sql: &str) -> StoreResult<()> {
        Ok(self.client.batch_execute(sql)?)
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
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
                    broken: false,
                });
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        conn: Some(conn),
                        pool: self,
                        broken: false,
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

    fn put(&self, conn: Conn, broken: bool) {
        if broken || conn.is_closed() {
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
    broken: bool,
}

impl Pooled<'_> {
    /// Marks the connection as unusable (it is closed instead of returned).
    pub fn discard(&mut self) {
        self.broken = true;
    }
}

impl Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("pooled connection present until dropped")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("pooled connection present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put(conn, self.broken);
        }
    }
}
