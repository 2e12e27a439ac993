//! A `type = "spin"` key-value store as Spin 3.6.3's `key-value-spin` keeps it: one SQLite
//! connection per configured label (opened on first use), one table for every store, the same
//! statements, each write its own committed transaction (autocommit), `increment` and the
//! compare-and-swap from an absent key in an explicit transaction.
//!
//! Differences from Spin: a value `increment` cannot read (not 8 bytes) makes Spin panic in the
//! request's task; here the instance traps (the caller gets a 500 either way). Result-size
//! limits (`MAX_HOST_BUFFERED_BYTES`) are not enforced.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::{named_params, Connection};

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
                           store TEXT NOT NULL,
                           key   TEXT NOT NULL,
                           value BLOB NOT NULL,

                           PRIMARY KEY (store, key)
                        )";
const SELECT_VALUE: &str = "SELECT value FROM spin_key_value WHERE store=$1 AND key=$2";
const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT(store, key) DO UPDATE SET value=$3";
const DELETE: &str = "DELETE FROM spin_key_value WHERE store=$1 AND key=$2";
const SELECT_KEYS: &str = "SELECT key FROM spin_key_value WHERE store=$1";
const COMPARE_AND_UPDATE: &str = "UPDATE spin_key_value SET value=:new_value WHERE store=:name and key=:key and value=:old_value";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    InMemory,
    File(PathBuf),
}

pub(crate) struct SqliteStore {
    location: Location,
    connection: OnceLock<Arc<Mutex<Connection>>>,
}

/// Spin reports store failures as `Error::Other("{err:?}")`.
fn other(e: impl std::fmt::Debug) -> String {
    format!("{e:?}")
}

/// Spin runs each statement in `block_in_place`; on a current-thread runtime (where that would
/// panic) the statement simply runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl SqliteStore {
    pub(crate) fn in_memory(&self) -> bool {
        matches!(self.location, Location::InMemory)
    }

    pub(crate) fn new(location: Location) -> SqliteStore {
        SqliteStore {
            location,
            connection: OnceLock::new(),
        }
    }

    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    /// The connection, opened (and the table created) on first use, as Spin's store manager.
    /// As there, instances that open a fresh store at once can each open a connection and run
    /// `CREATE TABLE`; one is kept. Meanwhile the kept connection can meet the other's lock
    /// inside a transaction and fail with "database is locked" (`increment`, a swap from
    /// absent), as in Spin.
    fn connection(&self) -> Result<&Arc<Mutex<Connection>>, String> {
        if let Some(c) = self.connection.get() {
            return Ok(c);
        }
        let connection = match &self.location {
            Location::InMemory => Connection::open_in_memory(),
            Location::File(path) => Connection::open(path),
        }
        .map_err(other)?;
        connection.execute(CREATE_TABLE, []).map_err(other)?;
        Ok(self
            .connection
            .get_or_init(|| Arc::new(Mutex::new(connection))))
    }

    /// What `open` does: make sure the connection exists.
    pub(crate) fn open(&self) -> Result<(), String> {
        blocking(|| self.connection().map(drop))
    }

    pub(crate) fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        blocking(|| {
            let conn = self.connection()?.lock().unwrap();
            select_value(&conn, store, key)
        })
    }

    pub(crate) fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), String> {
        blocking(|| {
            self.connection()?
                .lock()
                .unwrap()
                .prepare_cached(UPSERT)
                .map_err(other)?
                .execute(rusqlite::params![store, key, value])
                .map_err(other)
                .map(drop)
        })
    }

    pub(crate) fn delete(&self, store: &str, key: &str) -> Result<(), String> {
        blocking(|| {
            self.connection()?
                .lock()
                .unwrap()
                .prepare_cached(DELETE)
                .map_err(other)?
                .execute([store, key])
                .map_err(other)
                .map(drop)
        })
    }

    pub(crate) fn keys(&self, store: &str) -> Result<Vec<String>, String> {
        blocking(|| {
            let conn = self.connection()?.lock().unwrap();
            let mut stmt = conn.prepare_cached(SELECT_KEYS).map_err(other)?;
            let keys = stmt
                .query_map([store], |row| row.get::<_, String>(0))
                .map_err(other)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(other);
            keys
        })
    }

    /// Read, add, upsert in one transaction. The value is kept as 8 little-endian bytes (not
    /// text, unlike Redis). Outer `Err`: Spin panics here (a stored value of another length).
    pub(crate) fn increment(
        &self,
        store: &str,
        key: &str,
        delta: i64,
    ) -> anyhow::Result<Result<i64, String>> {
        blocking(|| {
            let connection = match self.connection() {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            let mut conn = connection.lock().unwrap();
            let tx = match conn.transaction() {
                Ok(tx) => tx,
                Err(e) => return Ok(Err(other(e))),
            };
            let current = match select_value(&tx, store, key) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            let numeric = match current {
                Some(v) => i64::from_le_bytes(v.try_into().map_err(|_| {
                    anyhow::anyhow!("key-value-spin panicked in increment: incorrect length")
                })?),
                None => 0,
            };
            // Spin's release build: overflow wraps.
            let new_value = numeric.wrapping_add(delta);
            let written = tx
                .prepare_cached(UPSERT)
                .and_then(|mut s| s.execute(rusqlite::params![store, key, new_value.to_le_bytes()]))
                .and_then(|_| tx.commit());
            Ok(written.map(|_| new_value).map_err(other))
        })
    }

    /// `Cas::current`: what the swap will compare with.
    pub(crate) fn cas_current(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.get(store, key)
    }

    /// `swap`: `UPDATE … WHERE value = old` when `current` saw a value; when it saw none (or was
    /// never called) an upsert in a transaction, which always changes one row: every swap from an
    /// absent key wins. `Ok(false)`: no row changed.
    pub(crate) fn swap(
        &self,
        store: &str,
        key: &str,
        seen: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, String> {
        blocking(|| {
            let mut conn = self.connection()?.lock().unwrap();
            let rows = match seen {
                Some(old) => conn
                    .prepare_cached(COMPARE_AND_UPDATE)
                    .map_err(other)?
                    .execute(named_params! {
                        ":name": store,
                        ":key": key,
                        ":old_value": old,
                        ":new_value": value,
                    })
                    .map_err(other)?,
                None => {
                    let tx = conn.transaction().map_err(other)?;
                    let rows = tx
                        .prepare_cached(UPSERT)
                        .map_err(other)?
                        .execute(rusqlite::params![store, key, value])
                        .map_err(other)?;
                    tx.commit().map_err(other)?;
                    rows
                }
            };
            Ok(rows == 1)
        })
    }
}

fn select_value(conn: &Connection, store: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
    conn.prepare_cached(SELECT_VALUE)
        .map_err(other)?
        .query_map([store, key], |row| row.get::<_, Vec<u8>>(0))
        .map_err(other)?
        .next()
        .transpose()
        .map_err(other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_behave_as_spins_store() {
        let s = SqliteStore::new(Location::InMemory);
        assert_eq!(s.get("default", "k").unwrap(), None);
        s.set("default", "k", b"v").unwrap();
        s.set("other", "k", b"w").unwrap();
        assert_eq!(s.get("default", "k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(s.keys("other").unwrap(), ["k"]);
        assert_eq!(s.increment("default", "n", 5).unwrap().unwrap(), 5);
        assert_eq!(s.increment("default", "n", -7).unwrap().unwrap(), -2);
        assert_eq!(
            s.get("default", "n").unwrap().unwrap(),
            (-2i64).to_le_bytes()
        );
        assert!(
            s.increment("default", "k", 1).is_err(),
            "1-byte value panics in Spin"
        );
        assert!(s.swap("default", "k", Some(b"v"), b"v2").unwrap());
        assert!(!s.swap("default", "k", Some(b"v"), b"v3").unwrap());
        assert!(s.swap("default", "new", None, b"a").unwrap());
        assert!(
            s.swap("default", "new", None, b"b").unwrap(),
            "upsert from absent"
        );
        assert_eq!(s.get("default", "new").unwrap().as_deref(), Some(&b"b"[..]));
        s.delete("default", "new").unwrap();
        assert_eq!(s.get("default", "new").unwrap(), None);
    }
}
