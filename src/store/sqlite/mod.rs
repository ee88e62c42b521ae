//! The embedded SQLite store: the default when `MONGO_URL` is unset.
//!
//! * **Durable when acknowledged.** The file is in WAL mode with
//!   `synchronous=FULL`: a write's future resolves only after the
//!   transaction holding it has committed and the WAL is synced.
//! * **Group commit.** One writer thread owns the write connection. It takes
//!   every write job waiting in its queue (up to [`MAX_BATCH`]), runs them in
//!   ONE transaction, commits once (one fsync), then answers each job. If a
//!   job fails, the batch is undone and run again with each job in its own
//!   savepoint, so the failure rolls back only its own job.
//!   Because there is one writer, every write method (the login-token cap,
//!   unique PAT names, session touch) is one serialized transaction.
//! * **Checkpoints** are not SQLite's automatic ones (those run inside the
//!   commit that crosses 1,000 WAL pages, so that batch's callers wait for
//!   them): a checkpoint thread copies the WAL into the file every
//!   [`CHECKPOINT_EVERY`] commits, and the writer finishes one between
//!   batches every second time, so the WAL is then written from its start
//!   again instead of growing. Savepoint journals stay in memory
//!   (`temp_store=MEMORY`).
//! * **Reads** run over a few read connections, each read in one
//!   transaction (a consistent snapshot). A *point* read (a row or two found
//!   through an index: the token a request presents, a user by key) runs at
//!   once on the calling thread when a read connection is free: it takes
//!   microseconds and never waits for the writer (WAL readers do not), so
//!   handing it to the blocking pool would cost more (two thread switches)
//!   than the read. Every other read, and a point read that finds no free
//!   connection, runs on the blocking pool. A `:memory:` store has one
//!   connection, shared by both.
//! * **Presented tokens** are answered from memory while no write has
//!   happened since they were read ([`auth_cache`]): exact for this
//!   process's writes, within 1 s for another process's.
//! * **Schema** in versioned migrations ([`rusqlite_migration`], the version in
//!   `PRAGMA user_version`); a file from a newer schema is refused.
//!
//! The code is split like the traits: [`users`], [`tokens`], [`saymon`],
//! [`roles`], [`login_attempts`].

mod audit;
mod auth_cache;
mod login_attempts;
mod roles;
mod saymon;
mod tokens;
mod twofactor;
mod users;

#[cfg(test)]
mod tests;

use super::{AuditEvent, Store, StoreError, StoreResult, UniqueField};
use crate::core::model::{ResumeToken, Timestamp, UserKey};
use async_trait::async_trait;
use rusqlite::backup::StepResult;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use rusqlite_migration::{Migrations, M};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

/// `DATABASE_PATH` when unset.
pub const DEFAULT_PATH: &str = "data/tokend.db";
/// The path of a throwaway store that lives in memory.
pub const MEMORY: &str = ":memory:";
/// Most write jobs committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// Commits between two checkpoint requests: with batches of a few dozen
/// pages, about SQLite's default of 1,000 WAL pages.
const CHECKPOINT_EVERY: u64 = 16;

/// Read connections of a file store: enough for the runtime's threads doing
/// point reads and the blocking pool's scans at once.
const READERS: usize = 8;
/// How long a connection waits for a lock held by another process (a backup).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one migration per version. Append only: never edit a
/// migration that has shipped.
const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("schema_v1.sql")),
    M::up(include_str!("schema_v2.sql")),
    M::up(include_str!("schema_v3.sql")),
    M::up(include_str!("schema_v4.sql")),
    M::up(include_str!("schema_v5.sql")),
    M::up(include_str!("schema_v6.sql")),
    M::up(include_str!("schema_v7.sql")),
];

/// The schema version this build writes.
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

type Conn = Arc<Mutex<Connection>>;

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    /// The writer's queue; `None` only while dropping.
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    writer: Option<JoinHandle<()>>,
    /// Copies the WAL into the database file (file stores only).
    checkpointer: Option<JoinHandle<()>>,
    readers: Arc<Vec<Conn>>,
    read_slots: Arc<Semaphore>,
    counters: Arc<Counters>,
    /// `find_by_token`'s answers, exact for this process's writes.
    auth_cache: Arc<auth_cache::AuthCache>,
    /// Files to remove when the store is dropped (a temporary store).
    remove_on_drop: Option<PathBuf>,
}

/// What the writer has done since the store was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// Transactions committed.
    pub commits: u64,
    /// Write jobs answered.
    pub writes: u64,
}

struct Counters {
    commits: AtomicU64,
    writes: AtomicU64,
    /// Bumped after every batch, before its jobs are answered.
    auth_cache: Arc<auth_cache::AuthCache>,
}

impl SqliteStore {
    /// Opens (creating it and its folder when missing) the store at `path`,
    /// migrating it to the current schema; `:memory:` opens a throwaway store.
    /// Refuses a file written by a newer schema version.
    pub fn open(path: &str) -> StoreResult<Self> {
        if path == MEMORY {
            let conn = Connection::open_in_memory().map_err(|e| open_error(path, e))?;
            return Self::start(path, conn, Vec::new(), None);
        }
        let file = Path::new(path);
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let writer = Connection::open(file).map_err(|e| open_error(path, e))?;
        let wal: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| open_error(path, e))?;
        if !wal.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "{path}: cannot switch to WAL mode (journal mode is {wal})"
            )));
        }
        // Checkpoints run on their own thread ([`checkpoint_loop`]), not
        // inside the commit that crosses SQLite's threshold.
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| open_error(path, e))?;
        Self::start(path, writer, vec![file.to_path_buf(); READERS], None)
    }

    /// A store in a new file under the system's temporary folder, removed
    /// when the store is dropped: the real configuration, for tests.
    pub fn open_temporary() -> StoreResult<Self> {
        let path = std::env::temp_dir().join(format!(
            "tokend-{}-{}.db",
            std::process::id(),
            crate::core::ids::new_user_id()
        ));
        let mut store = Self::open(&path.to_string_lossy())?;
        store.remove_on_drop = Some(path);
        Ok(store)
    }

    fn start(
        path: &str,
        mut writer: Connection,
        reader_files: Vec<PathBuf>,
        remove_on_drop: Option<PathBuf>,
    ) -> StoreResult<Self> {
        configure(&writer).map_err(|e| open_error(path, e))?;
        migrate(&mut writer, path)?;
        let writer = Arc::new(Mutex::new(writer));
        let readers: Vec<Conn> = if reader_files.is_empty() {
            vec![writer.clone()]
        } else {
            reader_files
                .iter()
                .map(|f| open_reader(f).map_err(|e| open_error(path, e)))
                .collect::<StoreResult<Vec<Conn>>>()?
        };
        let auth_cache = Arc::new(auth_cache::AuthCache::new(auth_cache::TTL));
        let counters = Arc::new(Counters {
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            auth_cache: auth_cache.clone(),
        });
        let (checkpoints, checkpointer) = match reader_files.first() {
            Some(file) => {
                let conn = Connection::open(file).map_err(|e| open_error(path, e))?;
                configure(&conn).map_err(|e| open_error(path, e))?;
                let (wake, wakes) = mpsc::sync_channel::<()>(1);
                let thread = std::thread::Builder::new()
                    .name("tokend-sqlite-checkpoint".into())
                    .spawn(move || checkpoint_loop(&conn, &wakes))
                    .map_err(|e| {
                        StoreError::Unavailable(format!("cannot start the checkpointer: {e}"))
                    })?;
                (Some(wake), Some(thread))
            }
            None => (None, None),
        };
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let writer = {
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("tokend-sqlite-writer".into())
                .spawn(move || write_loop(&writer, &queue, &counters, checkpoints))
                .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?
        };
        Ok(Self {
            jobs: Some(jobs),
            writer: Some(writer),
            checkpointer,
            read_slots: Arc::new(Semaphore::new(readers.len())),
            readers: Arc::new(readers),
            counters,
            auth_cache,
            remove_on_drop,
        })
    }

    /// Commits and write jobs so far.
    pub fn write_stats(&self) -> WriteStats {
        WriteStats {
            commits: self.counters.commits.load(Ordering::Acquire),
            writes: self.counters.writes.load(Ordering::Acquire),
        }
    }

    /// Queues a write job; its answer comes after the commit that holds it.
    fn submit<T, F>(&self, f: F) -> StoreResult<oneshot::Receiver<StoreResult<T>>>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(WriteJob {
            f,
            out: None,
            reply,
        });
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(writer_gone)?;
        Ok(answer)
    }

    /// Runs `f` in the writer's next transaction; resolves once it is durable.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(f)?.await.map_err(|_| writer_gone())?
    }

    /// Runs `f`, a point read (index lookups only, no scan), in one read
    /// transaction: on the calling thread when a read connection is free,
    /// else as [`Self::read`] does.
    async fn read_point<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        match self.read_here(f) {
            Ok(out) => out,
            Err(f) => self.read(f).await,
        }
    }

    /// Runs `f` on this thread if a read connection is free; gives `f`
    /// back otherwise.
    fn read_here<T, F>(&self, f: F) -> Result<StoreResult<T>, F>
    where
        F: FnOnce(&Connection) -> StoreResult<T>,
    {
        let free = self.readers.iter().find_map(|c| match c.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        });
        match free {
            Some(conn) => Ok(in_read_transaction(&conn, f)),
            None => Err(f),
        }
    }

    /// Runs `f` in one read transaction on a read connection, off the runtime.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let permit = self
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| writer_gone())?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // A permit per connection: one is free, unless the writer holds
            // the only connection of a `:memory:` store.
            let conn = readers
                .iter()
                .find_map(|c| match c.try_lock() {
                    Ok(guard) => Some(guard),
                    Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                    Err(TryLockError::WouldBlock) => None,
                })
                .unwrap_or_else(|| lock(&readers[0]));
            in_read_transaction(&conn, f)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("a store read failed: {e}")))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue stops the writer once it has answered every job.
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        // The writer's end closed the checkpointer's channel.
        if let Some(checkpointer) = self.checkpointer.take() {
            let _ = checkpointer.join();
        }
        if let Some(path) = self.remove_on_drop.take() {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read_point(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    /// One write job: the token, its cap and the event commit together (one
    /// wait for the commit, half the jobs per mint). The event is one
    /// statement, undone alone if it fails: its failure keeps the token.
    async fn push_login_token_audited(
        &self,
        key: &UserKey,
        token: &ResumeToken,
        max: usize,
        event: &AuditEvent,
    ) -> StoreResult<(Option<String>, StoreResult<()>)> {
        let (key, token, event) = (key.clone(), token.clone(), event.clone());
        self.write(move |c| {
            let Some(user_id) = tokens::push(c, &key, &token, max)? else {
                return Ok((None, Ok(())));
            };
            // One statement: if it fails, SQLite undoes it alone.
            let recorded = audit::insert_event(c, &event);
            Ok((Some(user_id), recorded))
        })
        .await
    }
}

/// Writes a consistent copy of the store at `source` to `dest` with SQLite's
/// online backup (safe while tokend runs on `source`). The copy is written
/// beside `dest` and renamed over it once complete and synced.
pub fn backup(source: &str, dest: &Path) -> StoreResult<()> {
    if source == MEMORY {
        return Err(StoreError::Internal(
            "DATABASE_PATH is :memory:: there is no file to back up".into(),
        ));
    }
    if !Path::new(source).exists() {
        return Err(StoreError::Unavailable(format!("{source} does not exist")));
    }
    let from = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| open_error(source, e))?;
    from.busy_timeout(BUSY_TIMEOUT)?;
    let found = user_version(&from)?;
    if found > schema_version() {
        return Err(newer_schema(source, found));
    }
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    {
        let mut to =
            Connection::open(&partial).map_err(|e| open_error(&partial.to_string_lossy(), e))?;
        to.pragma_update(None, "synchronous", "FULL")?;
        let copy = rusqlite::backup::Backup::new(&from, &mut to)?;
        // All pages in one step: one read transaction, so one consistent
        // snapshot; in WAL mode it does not hold up tokend's writer.
        loop {
            match copy.step(-1)? {
                StepResult::Done => break,
                StepResult::More => continue,
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(&partial, dest))
        .map_err(|e| StoreError::Unavailable(format!("writing {}: {e}", dest.display())))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Statement journals, and the savepoints of a batch rerun job by job,
    // keep the pages they change; on disk (the default) every job of a
    // batch wrote them to a temporary file. In memory they are a copy.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    users::register_functions(conn)?;
    Ok(())
}

fn open_reader(file: &Path) -> rusqlite::Result<Conn> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(Arc::new(Mutex::new(conn)))
}

fn user_version(conn: &Connection) -> StoreResult<usize> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(usize::try_from(v).unwrap_or(usize::MAX))
}

fn newer_schema(path: &str, found: usize) -> StoreError {
    StoreError::Internal(format!(
        "{path} was written by a newer tokend (store schema version {found}; this build \
         knows versions up to {}): refusing to open it. Run that newer tokend, or restore \
         a backup made by this version",
        schema_version()
    ))
}

fn migrate(conn: &mut Connection, path: &str) -> StoreResult<()> {
    let found = user_version(conn)?;
    if found > schema_version() {
        return Err(newer_schema(path, found));
    }
    Migrations::from_slice(MIGRATIONS)
        .to_latest(conn)
        .map_err(|e| StoreError::Internal(format!("{path}: migrating the schema: {e}")))
}

fn open_error(path: &str, e: rusqlite::Error) -> StoreError {
    match StoreError::from(e) {
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("{path}: {m}")),
        StoreError::Internal(m) => StoreError::Internal(format!("{path}: {m}")),
        other => other,
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the SQLite store is closed".into())
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // Every job runs in a savepoint and every batch ends in COMMIT or
    // ROLLBACK, so a panic cannot leave a half-written transaction behind.
    conn.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one statement without parameters from the statement cache: the
/// transaction statements run several times per request, and parsing them
/// each time costs as much as a point read.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs `f` in one read transaction (one snapshot for all its statements).
/// `BEGIN` and `COMMIT` are cached statements: parsing them anew would cost
/// a point read as much as the read itself.
fn in_read_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    if !conn.is_autocommit() {
        // Left open by a read that panicked: end it first.
        conn.execute_batch("ROLLBACK")?;
    }
    conn.prepare_cached("BEGIN")?.execute([])?;
    let out = f(conn);
    let end = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]));
    if end.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let out = out?;
    end?;
    Ok(out)
}

/// A queued write: runs inside a batch's transaction, answered after it.
trait Job: Send {
    /// Runs the job (again, if it ran before in a batch that was undone);
    /// `isolated` runs it in a savepoint of its own. Whether it succeeded.
    fn run(&mut self, conn: &Connection, isolated: bool) -> bool;
    /// Sends the job's outcome, or `commit`'s error if the batch was lost.
    fn answer(self: Box<Self>, commit: StoreResult<()>);
}

struct WriteJob<T, F> {
    f: F,
    out: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for WriteJob<T, F>
where
    T: Send + 'static,
    F: FnMut(&Connection) -> StoreResult<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection, isolated: bool) -> bool {
        let out = if isolated {
            in_savepoint(conn, &mut self.f)
        } else {
            guarded(conn, &mut self.f)
        };
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn answer(self: Box<Self>, commit: StoreResult<()>) {
        let out = match commit {
            Ok(()) => self
                .out
                .unwrap_or_else(|| Err(StoreError::Internal("a write never ran".into()))),
            Err(e) => Err(e),
        };
        // The caller may have given up waiting; the write stands regardless.
        let _ = self.reply.send(out);
    }
}

/// Runs `f` in a savepoint, rolled back if `f` fails or panics.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    run_cached(conn, "SAVEPOINT job")?;
    let out = guarded(conn, f);
    // A failed statement may have ended the whole transaction already;
    // `run_batch` notices that.
    if !conn.is_autocommit() {
        if out.is_err() {
            conn.execute_batch("ROLLBACK TO job")?;
        }
        run_cached(conn, "RELEASE job")?;
    }
    out
}

/// Runs `f`, a panic in it being its error.
fn guarded<T>(conn: &Connection, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError::Internal("a store write panicked".into())))
}

/// Runs a passive checkpoint whenever the writer asks (it never blocks the
/// writer or readers), until the writer ends. SQLite's own checkpoint at the
/// threshold would run inside a commit, and every job of that batch would
/// wait for it. A failed checkpoint leaves the pages in the WAL, where reads
/// find them; the next request retries.
fn checkpoint_loop(conn: &Connection, wakes: &mpsc::Receiver<()>) {
    while wakes.recv().is_ok() {
        checkpoint(conn);
    }
}

/// One passive checkpoint: copies what it can of the WAL without waiting.
fn checkpoint(conn: &Connection) {
    if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(%error, "SQLite checkpoint failed");
    }
}

fn write_loop(
    conn: &Mutex<Connection>,
    queue: &mpsc::Receiver<Box<dyn Job>>,
    counters: &Counters,
    checkpoints: Option<mpsc::SyncSender<()>>,
) {
    let (mut asked_at, mut finished_at) = (0, 0);
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let conn = lock(conn);
        run_batch(&conn, batch, counters);
        let commits = counters.commits.load(Ordering::Acquire);
        let Some(wake) = &checkpoints else {
            continue;
        };
        if commits - asked_at >= CHECKPOINT_EVERY {
            asked_at = commits;
            // Full: a checkpoint is still pending, which covers this one.
            let _ = wake.try_send(());
        }
        if commits - finished_at >= CHECKPOINT_EVERY * 2 {
            // Between batches, with no write in flight, a checkpoint can
            // reach the WAL's end (the checkpointer copied most of it), and
            // the next transaction then writes the WAL from its start again:
            // without this, under steady writes, it would only grow.
            finished_at = commits;
            checkpoint(&conn);
        }
    }
}

/// Runs a batch of jobs in one transaction, commits once, answers each.
///
/// The jobs first run bare: a savepoint per job would copy every page the
/// job first changes into its journal, a sixth of the writer's work on a
/// mint. If one fails, the transaction is rolled back and the batch runs
/// again with each job in its own savepoint ([`run_isolated`]), so that
/// failure undoes only its own job. A single failed statement undoes
/// itself either way (SQLite's statement journal).
fn run_batch(conn: &Connection, mut batch: Vec<Box<dyn Job>>, counters: &Counters) {
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        answer(counters, batch, Err(e.into()));
        return;
    }
    let all_ran = batch
        .iter_mut()
        .all(|job| job.run(conn, false) && !conn.is_autocommit());
    if all_ran {
        commit(conn, batch, counters);
    } else {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        run_isolated(conn, batch, counters);
    }
}

/// Runs a batch of jobs in one transaction, each in its own savepoint.
fn run_isolated(conn: &Connection, batch: Vec<Box<dyn Job>>, counters: &Counters) {
    let mut queue = batch.into_iter();
    let mut done: Vec<Box<dyn Job>> = Vec::new();
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        answer(counters, queue.collect(), Err(e.into()));
        return;
    }
    while let Some(mut job) = queue.next() {
        job.run(conn, true);
        done.push(job);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a full
            // disk): nothing this batch wrote so far stands.
            answer(
                counters,
                std::mem::take(&mut done),
                Err(StoreError::Unavailable(
                    "the write was rolled back by SQLite".into(),
                )),
            );
            if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
                answer(counters, queue.collect(), Err(e.into()));
                return;
            }
        }
    }
    commit(conn, done, counters);
}

/// Commits the open transaction, then answers its jobs.
fn commit(conn: &Connection, jobs: Vec<Box<dyn Job>>, counters: &Counters) {
    let commit = run_cached(conn, "COMMIT").map_err(StoreError::from);
    if commit.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    if commit.is_ok() {
        counters.commits.fetch_add(1, Ordering::AcqRel);
    }
    answer(counters, jobs, commit);
}

/// Answers each job with its outcome, or `outcome`'s error if its batch
/// was lost.
fn answer(counters: &Counters, jobs: Vec<Box<dyn Job>>, outcome: StoreResult<()>) {
    // Whatever the outcome, answers read before it may be stale now.
    counters.auth_cache.bump();
    counters
        .writes
        .fetch_add(jobs.len() as u64, Ordering::AcqRel);
    for job in jobs {
        job.answer(outcome.clone());
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let rusqlite::Error::SqliteFailure(failure, message) = &e else {
            return StoreError::Internal(e.to_string());
        };
        match failure.code {
            ErrorCode::ConstraintViolation => {
                let message = message.as_deref().unwrap_or_default();
                if !message.starts_with("UNIQUE constraint failed")
                    && !message.starts_with("PRIMARY KEY constraint failed")
                {
                    StoreError::Internal(e.to_string())
                } else if message.contains("users.username_lower") {
                    StoreError::Duplicate(UniqueField::Username)
                } else if message.contains("user_emails.address_lower") {
                    StoreError::Duplicate(UniqueField::Email)
                } else {
                    StoreError::Duplicate(UniqueField::Other)
                }
            }
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::OutOfMemory => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

/// A time as stored: milliseconds since the epoch.
fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

/// A stored time read back (column `idx` of a row).
fn time(idx: usize, v: i64) -> rusqlite::Result<Timestamp> {
    chrono::DateTime::from_timestamp_millis(v)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

/// A list of strings as stored (a JSON array).
fn to_json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// A stored JSON array of strings (column `idx`).
fn from_json(idx: usize, text: &str) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}
