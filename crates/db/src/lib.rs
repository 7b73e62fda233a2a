//! quai's state database, `quai.db` (see docs/architecture.md).
//!
//! One SQLite file in WAL mode shared by every quai process: concurrent CLI
//! invocations coordinate through its transactions. The schema evolves
//! through [`MIGRATIONS`], one ordered list that every part of the engine
//! appends to (never edits): a database records the number of migrations
//! applied in `PRAGMA user_version`, and opening it applies the missing ones,
//! each in its own immediate transaction so that two processes opening a new
//! database at once cannot both apply the same step.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use rusqlite;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

mod migrations;
pub use migrations::{Migration, MIGRATIONS};

/// How long a statement waits for another process's write lock before
/// failing with "database is locked". Long: a big `load` commits in one
/// transaction while other commands queue behind it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}, newer than this quai knows ({known}): upgrade quai")]
    TooNew {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("apply migration {version} ({name}) to {path}: {source}")]
    Migrate {
        path: PathBuf,
        version: u32,
        name: &'static str,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// An open connection to `quai.db` with the schema up to date.
pub struct Db {
    conn: Connection,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and applies the
    /// migrations it lacks.
    pub fn open(path: &Path) -> Result<Db> {
        let open_err = |source| DbError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL lets readers run while a writer commits; NORMAL sync is
        // durable against a killed process (only a power cut can lose the
        // last transactions, never corrupt the file).
        set_wal(&conn).map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // Every quai command is a short-lived process: a checkpoint when
        // its connection closes would fsync the database and the WAL on
        // every command (10-20 ms on a disk). The WAL is checkpointed by
        // SQLite's automatic checkpoints instead (every 1000 pages), and
        // read back on open after a crash.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(open_err)?;
        let mut db = Db {
            conn,
            path: path.to_path_buf(),
        };
        db.migrate(MIGRATIONS)?;
        Ok(db)
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for reads and single statements.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Starts a write transaction that takes the write lock at once, so that
    /// a read-then-write sequence cannot be invalidated by another process.
    pub fn write(&mut self) -> Result<rusqlite::Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Copies the WAL into the database file and empties it when it has
    /// grown past `max_bytes`; returns whether it did. quai has no daemon:
    /// the process that opens the database after all others closed it
    /// reads the WAL back and verifies it page by page (~2-3 µs a page;
    /// up to ~3 ms at SQLite's 1000-page automatic checkpoint), and a
    /// rebuilt WAL index forgets what was checkpointed already, so only
    /// emptying the WAL bounds that. Long-lived processes call this when nobody waits
    /// for them. It waits at most `patience` for other connections' read
    /// and write transactions, and gives up (Ok(false)) after that; it is
    /// as crash-safe as any SQLite checkpoint.
    pub fn checkpoint_if_wal_over(&self, max_bytes: u64, patience: Duration) -> Result<bool> {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        match std::fs::metadata(&wal) {
            Ok(m) if m.len() > max_bytes => {}
            _ => return Ok(false),
        }
        self.conn.busy_timeout(patience)?;
        let busy = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(busy? == 0)
    }

    /// Number of migrations applied to this database.
    pub fn schema_version(&self) -> Result<u32> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    fn migrate(&mut self, migrations: &[Migration]) -> Result<()> {
        let known = migrations.len() as u32;
        if self.schema_version()? == known {
            return Ok(());
        }
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Read again under the write lock: another process may have
            // migrated while we waited for it.
            let applied: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if applied > known {
                return Err(DbError::TooNew {
                    path: self.path.clone(),
                    found: applied,
                    known,
                });
            }
            let Some(step) = migrations.get(applied as usize) else {
                return Ok(());
            };
            let fail = |source| DbError::Migrate {
                path: self.path.clone(),
                version: applied + 1,
                name: step.name,
                source,
            };
            tx.execute_batch(step.sql).map_err(fail)?;
            tx.pragma_update(None, "user_version", applied + 1)
                .map_err(fail)?;
            tx.commit().map_err(fail)?;
        }
    }
}

/// Switches the database to WAL. SQLite answers "database is locked" at
/// once, without waiting in the busy handler, when several connections
/// switch a new database at the same moment (concurrent first commands on a
/// fresh state root): retry until the busy timeout has passed.
fn set_wal(conn: &Connection) -> rusqlite::Result<()> {
    let start = std::time::Instant::now();
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_empties_a_long_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quai.db");
        let wal = dir.path().join("quai.db-wal");
        let patience = Duration::from_millis(100);
        let db = Db::open(&path).unwrap();
        for i in 0..300 {
            db.conn()
                .execute(
                    "INSERT INTO layers (chain_id, diff_id, parent, size) VALUES (?1, ?1, NULL, 1)",
                    [format!("{i:0>2000}")],
                )
                .unwrap();
        }
        let grown = std::fs::metadata(&wal).unwrap().len();
        assert!(grown > 1 << 20, "WAL is {grown} bytes");
        assert!(!db.checkpoint_if_wal_over(grown, patience).unwrap());
        // Another process in a read transaction: the checkpoint gives up.
        let reader = Db::open(&path).unwrap();
        let mut tx_conn = reader.conn;
        let tx = tx_conn.transaction().unwrap();
        let _: i64 = tx
            .query_row("SELECT count(*) FROM layers", [], |r| r.get(0))
            .unwrap();
        assert!(!db.checkpoint_if_wal_over(1 << 20, patience).unwrap());
        drop(tx);
        drop(tx_conn);
        assert!(db.checkpoint_if_wal_over(1 << 20, patience).unwrap());
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        drop(db);
        // Nothing was lost.
        let db = Db::open(&path).unwrap();
        let n: i64 = db
            .conn()
            .query_row("SELECT count(*) FROM layers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 300);
    }

    #[test]
    fn open_applies_every_migration_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quai.db");
        let db = Db::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as u32);
        drop(db);
        // A second open finds nothing to do and keeps the data.
        let db = Db::open(&path).unwrap();
        db.conn()
            .execute(
                "INSERT INTO layers (chain_id, diff_id, parent, size) VALUES ('c', 'd', NULL, 1)",
                [],
            )
            .unwrap();
        drop(db);
        let db = Db::open(&path).unwrap();
        let n: i64 = db
            .conn()
            .query_row("SELECT count(*) FROM layers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let mode: String = db
            .conn()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_database_from_a_newer_quai_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quai.db");
        drop(Db::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", MIGRATIONS.len() as u32 + 5)
            .unwrap();
        drop(conn);
        let err = Db::open(&path).err().expect("newer schema refused");
        assert!(matches!(err, DbError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("upgrade quai"), "{err}");
    }

    #[test]
    fn a_failing_migration_leaves_the_database_at_the_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quai.db");
        let conn = Connection::open(&path).unwrap();
        let mut db = Db {
            conn,
            path: path.clone(),
        };
        let steps = [
            Migration {
                name: "good",
                sql: "CREATE TABLE a (x INTEGER);",
            },
            Migration {
                name: "bad",
                sql: "CREATE TABLE b (y INTEGER); INSERT INTO nowhere VALUES (1);",
            },
        ];
        let err = db.migrate(&steps).unwrap_err();
        assert!(err.to_string().contains("migration 2 (bad)"), "{err}");
        assert_eq!(db.schema_version().unwrap(), 1);
        // The half of the failed step that ran was rolled back.
        let b: i64 = db
            .conn()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(b, 0);
    }

    #[test]
    fn concurrent_opens_of_a_new_database_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quai.db");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Db::open(&path).map(|db| db.schema_version().unwrap()))
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap(), MIGRATIONS.len() as u32);
        }
    }
}
