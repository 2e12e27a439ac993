//! A `type = "redis"` key-value store as Spin 3.6.3's `key-value-redis` uses it, with the same
//! redis-rs release and calls: one connection manager per configured label (connected on first
//! use, `PING` after every open), `GET`/`SET`/`DEL`/`EXISTS`/`KEYS *`/`INCRBY`, and per
//! compare-and-swap a connection of its own: `current` sends `WATCH key` + `GET`, `swap` a
//! `MULTI`/`SET`/`EXEC` pipeline followed by `UNWATCH key`.
//!
//! Two consequences that come from Spin's code, not from this host:
//! - Labels are not part of the keys: every label on one Redis shares its keyspace, and
//!   `get-keys` lists every key of the database.
//! - Redis refuses `UNWATCH` with an argument ("wrong number of arguments"), so every `swap`
//!   reports `cas-failed` to the guest, after the `EXEC` did or did not apply the new value
//!   (an `EXEC` aborted by the watch answers nil, which redis-rs reads as success). Exactly one
//!   of several swaps from the same snapshot is applied; none is reported as won.
//!
//! Differences from Spin: `rediss://` (TLS) is not compiled in; result-size limits are not
//! enforced.

use ::redis::aio::ConnectionManager;
use ::redis::{AsyncCommands, Client, RedisError};
use tokio::sync::OnceCell;

pub(crate) struct RedisStore {
    url: String,
    connection: OnceCell<ConnectionManager>,
}

/// Spin reports store failures as `Error::Other("{err:?}")`.
fn other(e: impl std::fmt::Debug) -> String {
    format!("{e:?}")
}

/// Why a swap failed, as Spin's `SwapError` (whose `CasFailed` text nobody reads).
pub(crate) enum SwapFailure {
    CasFailed,
    Other(String),
}

impl RedisStore {
    /// `url` was checked by `spin_rules` (a URL redis-rs accepts).
    pub(crate) fn new(url: String) -> RedisStore {
        RedisStore {
            url,
            connection: OnceCell::new(),
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        self.connection
            .get_or_try_init(|| async {
                Client::open(self.url.as_str())?
                    .get_connection_manager()
                    .await
            })
            .await
            .cloned()
            .map_err(other)
    }

    /// What `open` does: connect (once), then `PING`, whose failure Spin ignores (the manager
    /// reconnects in the background).
    pub(crate) async fn open(&self) -> Result<(), String> {
        let mut conn = self.connection().await?;
        let _ = conn.ping::<()>().await;
        Ok(())
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.connection()
            .await?
            .get::<_, Option<Vec<u8>>>(key)
            .await
            .map_err(other)
    }

    pub(crate) async fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.connection()
            .await?
            .set::<_, _, ()>(key, value)
            .await
            .map_err(other)
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), String> {
        self.connection()
            .await?
            .del::<_, ()>(key)
            .await
            .map_err(other)
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool, String> {
        self.connection()
            .await?
            .exists::<_, bool>(key)
            .await
            .map_err(other)
    }

    pub(crate) async fn keys(&self) -> Result<Vec<String>, String> {
        self.connection()
            .await?
            .keys::<_, Vec<String>>("*")
            .await
            .map_err(other)
    }

    /// `INCRBY`: atomic in Redis; the value is decimal text.
    pub(crate) async fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
        self.connection()
            .await?
            .incr::<_, _, i64>(key, delta)
            .await
            .map_err(other)
    }

    /// A compare-and-swap gets its own connection (a `WATCH` belongs to one connection).
    pub(crate) async fn new_cas_connection(&self) -> Result<ConnectionManager, String> {
        Client::open(self.url.as_str())
            .map_err(other)?
            .get_connection_manager()
            .await
            .map_err(other)
    }

    /// Synchronous access for the test's inspection handle.
    pub(crate) fn blocking_connection(&self) -> Result<::redis::Connection, String> {
        Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .map_err(other)
    }
}

/// `Cas::current`: `WATCH key`, then `GET key`.
pub(crate) async fn cas_current(
    conn: &ConnectionManager,
    key: &str,
) -> Result<Option<Vec<u8>>, String> {
    ::redis::cmd("WATCH")
        .arg(key)
        .exec_async(&mut conn.clone())
        .await
        .map_err(other)?;
    conn.clone()
        .get::<_, Option<Vec<u8>>>(key)
        .await
        .map_err(other)
}

/// `swap`: `MULTI`, `SET`, `EXEC`, then `UNWATCH key` (see the module docs for what that means).
pub(crate) async fn cas_swap(
    conn: &ConnectionManager,
    key: &str,
    value: Vec<u8>,
) -> Result<(), SwapFailure> {
    let res: Result<(), RedisError> = ::redis::pipe()
        .atomic()
        .set(key, value)
        .query_async(&mut conn.clone())
        .await;
    ::redis::cmd("UNWATCH")
        .arg(key)
        .exec_async(&mut conn.clone())
        .await
        .map_err(|_| SwapFailure::CasFailed)?;
    res.map_err(|_| SwapFailure::CasFailed)
}
