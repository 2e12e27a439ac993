//! The app's key-value stores, one per label, as the runtime config resolves them
//! ([`crate::spin_rules::RuntimeConfig::resolve_stores`]): SQLite like Spin's `spin` type, a
//! real Redis like its `redis` type. The guest reaches them through `spin_api`; the test through
//! [`KvHandle`], which also counts the guest's operations.

mod redis_store;
mod sqlite_store;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use crate::spin_rules::ResolvedStore;
use redis_store::RedisStore;
use sqlite_store::{Location, SqliteStore};

pub(crate) use redis_store::SwapFailure;

/// Guest key-value operations since the host started (or the last reset): what a request costs
/// the store. Reads: get, exists, list keys, `Cas::current` (also the re-read Spin does after a
/// failed swap); writes: set, delete, increment, swap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvOps {
    pub reads: u64,
    pub writes: u64,
}

/// One label's backend.
pub(crate) enum Backend {
    Sqlite(SqliteStore),
    Redis(RedisStore),
    /// `azure_cosmos` / `aws_dynamo`: Spin starts with them; this host cannot reach them, so
    /// opening one fails.
    Unreachable(&'static str),
}

impl Backend {
    fn describe(&self) -> &'static str {
        match self {
            Backend::Sqlite(s) if s.in_memory() => "SQLite in memory (type \"spin\", no path)",
            Backend::Sqlite(_) => "SQLite file (type \"spin\", Spin's default store)",
            Backend::Redis(_) => "Redis (type \"redis\", a real redis-server)",
            Backend::Unreachable(kind) => kind,
        }
    }
}

/// Every label of the app, and the operation counters.
pub(crate) struct Stores {
    labels: BTreeMap<String, Arc<Backend>>,
    ops: Mutex<KvOps>,
}

impl Stores {
    /// Makes each label's store as Spin does at start: a SQLite file's parent directory is
    /// created now, connections are opened on first use.
    pub(crate) fn new(resolved: BTreeMap<String, ResolvedStore>) -> anyhow::Result<Stores> {
        let mut labels = BTreeMap::new();
        for (label, store) in resolved {
            let backend = match store {
                ResolvedStore::SqliteFile(path) => {
                    if let Some(parent) = path.parent().filter(|p| !p.exists()) {
                        std::fs::create_dir_all(parent)
                            .with_context(|| {
                                format!(
                                    "failed to create key value store's parent directory: '{}",
                                    parent.display()
                                )
                            })
                            .context("could not make key-value store from runtime config")
                            .with_context(|| {
                                format!("could not configure key-value store with label '{label}'")
                            })?;
                    }
                    Backend::Sqlite(SqliteStore::new(Location::File(path)))
                }
                ResolvedStore::SqliteInMemory => {
                    Backend::Sqlite(SqliteStore::new(Location::InMemory))
                }
                ResolvedStore::Redis { url } => Backend::Redis(RedisStore::new(url)),
                ResolvedStore::AzureCosmos { .. } => Backend::Unreachable("azure_cosmos"),
                ResolvedStore::AwsDynamo { .. } => Backend::Unreachable("aws_dynamo"),
            };
            labels.insert(label, Arc::new(backend));
        }
        Ok(Stores {
            labels,
            ops: Mutex::new(KvOps::default()),
        })
    }

    pub(crate) fn backend(&self, label: &str) -> Option<Arc<Backend>> {
        self.labels.get(label).cloned()
    }

    pub(crate) fn count(&self, reads: u64, writes: u64) {
        let mut ops = self.ops.lock().unwrap();
        ops.reads += reads;
        ops.writes += writes;
    }
}

impl Backend {
    /// What Spin does when a guest opens the label: connect (SQLite: open the file and create
    /// the table; Redis: connect and `PING`).
    pub(crate) async fn open(&self) -> Result<(), String> {
        match self {
            Backend::Sqlite(s) => s.open(),
            Backend::Redis(r) => r.open().await,
            Backend::Unreachable(kind) => Err(format!(
                "the testkit host cannot reach a key-value store of type '{kind}'"
            )),
        }
    }

    pub(crate) async fn get(&self, label: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Backend::Sqlite(s) => s.get(label, key),
            Backend::Redis(r) => r.get(key).await,
            Backend::Unreachable(_) => unreachable_store(),
        }
    }

    pub(crate) async fn set(&self, label: &str, key: &str, value: &[u8]) -> Result<(), String> {
        match self {
            Backend::Sqlite(s) => s.set(label, key, value),
            Backend::Redis(r) => r.set(key, value).await,
            Backend::Unreachable(_) => unreachable_store(),
        }
    }

    pub(crate) async fn delete(&self, label: &str, key: &str) -> Result<(), String> {
        match self {
            Backend::Sqlite(s) => s.delete(label, key),
            Backend::Redis(r) => r.delete(key).await,
            Backend::Unreachable(_) => unreachable_store(),
        }
    }

    /// SQLite: a `get` (Spin's `exists`); Redis: `EXISTS`.
    pub(crate) async fn exists(&self, label: &str, key: &str) -> Result<bool, String> {
        match self {
            Backend::Sqlite(s) => s.get(label, key).map(|v| v.is_some()),
            Backend::Redis(r) => r.exists(key).await,
            Backend::Unreachable(_) => unreachable_store(),
        }
    }

    pub(crate) async fn keys(&self, label: &str) -> Result<Vec<String>, String> {
        match self {
            Backend::Sqlite(s) => s.keys(label),
            Backend::Redis(r) => r.keys().await,
            Backend::Unreachable(_) => unreachable_store(),
        }
    }

    /// Outer `Err`: where Spin's store panics (the instance traps here).
    pub(crate) async fn increment(
        &self,
        label: &str,
        key: &str,
        delta: i64,
    ) -> anyhow::Result<Result<i64, String>> {
        match self {
            Backend::Sqlite(s) => s.increment(label, key, delta),
            Backend::Redis(r) => Ok(r.increment(key, delta).await),
            Backend::Unreachable(_) => Ok(unreachable_store()),
        }
    }

    /// `Cas::new`: nothing is read yet (SQLite); a connection of its own (Redis).
    pub(crate) async fn new_cas(self: &Arc<Self>, label: &str, key: &str) -> Result<Cas, String> {
        let conn = match &**self {
            Backend::Sqlite(_) => CasConn::Sqlite { seen: None },
            Backend::Redis(r) => CasConn::Redis(r.new_cas_connection().await?),
            Backend::Unreachable(_) => return unreachable_store(),
        };
        Ok(Cas {
            backend: self.clone(),
            label: label.to_string(),
            key: key.to_string(),
            conn,
        })
    }
}

fn unreachable_store<T>() -> Result<T, String> {
    Err("the testkit host cannot reach this key-value store".into())
}

enum CasConn {
    /// What `current` read last; `swap` compares with it (None: upsert).
    Sqlite {
        seen: Option<Vec<u8>>,
    },
    Redis(::redis::aio::ConnectionManager),
}

/// A compare-and-swap in progress (`wasi:keyvalue/atomics.cas`).
pub(crate) struct Cas {
    backend: Arc<Backend>,
    label: String,
    key: String,
    conn: CasConn,
}

impl Cas {
    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Reads the value the swap will compare with (Redis: and `WATCH`es the key).
    pub(crate) async fn current(&mut self) -> Result<Option<Vec<u8>>, String> {
        match (&*self.backend, &mut self.conn) {
            (Backend::Sqlite(s), CasConn::Sqlite { seen }) => {
                let value = s.cas_current(&self.label, &self.key)?;
                seen.clone_from(&value);
                Ok(value)
            }
            (_, CasConn::Redis(conn)) => redis_store::cas_current(conn, &self.key).await,
            _ => unreachable_store(),
        }
    }

    pub(crate) async fn swap(&self, value: Vec<u8>) -> Result<(), SwapFailure> {
        match (&*self.backend, &self.conn) {
            (Backend::Sqlite(s), CasConn::Sqlite { seen }) => {
                match s.swap(&self.label, &self.key, seen.as_deref(), &value) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(SwapFailure::CasFailed),
                    Err(e) => Err(SwapFailure::Other(e)),
                }
            }
            (_, CasConn::Redis(conn)) => redis_store::cas_swap(conn, &self.key, value).await,
            _ => Err(SwapFailure::Other("unreachable store".into())),
        }
    }
}

/// The test's handle on the host's key-value stores, whatever their backend: inspect and change
/// a label's data (as another client of the same SQLite file or Redis would) and read the
/// guest's operation counts. Failures panic: this is test code.
#[derive(Clone)]
pub struct KvHandle {
    stores: Arc<Stores>,
}

impl std::fmt::Debug for KvHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvHandle")
            .field("labels", &self.stores.labels.keys().collect::<Vec<_>>())
            .field("ops", &self.ops())
            .finish()
    }
}

/// What one test-side operation does on a backend.
enum Op<'a> {
    Get(&'a str),
    Set(&'a str, &'a [u8]),
    Delete(&'a str),
    Keys,
}

enum OpResult {
    Value(Option<Vec<u8>>),
    Keys(Vec<String>),
    Done,
}

impl KvHandle {
    pub(crate) fn new(stores: Arc<Stores>) -> KvHandle {
        KvHandle { stores }
    }

    /// The guest's operations so far (every label).
    pub fn ops(&self) -> KvOps {
        *self.stores.ops.lock().unwrap()
    }

    /// Starts counting guest operations from zero.
    pub fn reset_ops(&self) {
        *self.stores.ops.lock().unwrap() = KvOps::default();
    }

    /// The labels the host defines (`default` always).
    pub fn labels(&self) -> Vec<String> {
        self.stores.labels.keys().cloned().collect()
    }

    /// Which backend serves `label`, as Spin's runtime config names it: what a benchmark or a
    /// report says it ran on.
    pub fn backend(&self, label: &str) -> Option<&'static str> {
        self.stores.labels.get(label).map(|b| b.describe())
    }

    /// The value of `key` in the store labelled `label` (e.g. "default").
    pub fn get(&self, label: &str, key: &str) -> Option<Vec<u8>> {
        match self.run(label, Op::Get(key)) {
            OpResult::Value(v) => v,
            _ => unreachable!(),
        }
    }

    pub fn set(&self, label: &str, key: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        self.run(label, Op::Set(key, &value));
    }

    /// Deletes `key` (no error if absent).
    pub fn delete(&self, label: &str, key: &str) {
        self.run(label, Op::Delete(key));
    }

    /// The keys of `label`, sorted (on Redis: every key of the database, as Spin lists them).
    pub fn keys(&self, label: &str) -> Vec<String> {
        match self.run(label, Op::Keys) {
            OpResult::Keys(mut k) => {
                k.sort();
                k
            }
            _ => unreachable!(),
        }
    }

    fn run(&self, label: &str, op: Op<'_>) -> OpResult {
        let backend = self
            .stores
            .backend(label)
            .unwrap_or_else(|| panic!("the host defines no key-value store {label:?}"));
        let result = match &*backend {
            Backend::Sqlite(s) => match op {
                Op::Get(k) => s.get(label, k).map(OpResult::Value),
                Op::Set(k, v) => s.set(label, k, v).map(|_| OpResult::Done),
                Op::Delete(k) => s.delete(label, k).map(|_| OpResult::Done),
                Op::Keys => s.keys(label).map(OpResult::Keys),
            },
            Backend::Redis(r) => {
                use ::redis::Commands as _;
                r.blocking_connection().and_then(|mut c| {
                    match op {
                        Op::Get(k) => c.get::<_, Option<Vec<u8>>>(k).map(OpResult::Value),
                        Op::Set(k, v) => c.set::<_, _, ()>(k, v).map(|_| OpResult::Done),
                        Op::Delete(k) => c.del::<_, ()>(k).map(|_| OpResult::Done),
                        Op::Keys => c.keys::<_, Vec<String>>("*").map(OpResult::Keys),
                    }
                    .map_err(|e| format!("{e:?}"))
                })
            }
            Backend::Unreachable(kind) => Err(format!("store type {kind} is not reachable")),
        };
        result.unwrap_or_else(|e| panic!("key-value store {label:?}: {e}"))
    }

    /// Where a label's data lives, for messages: a SQLite file, memory, or a Redis URL.
    pub fn describe(&self, label: &str) -> Option<String> {
        Some(match &*self.stores.backend(label)? {
            Backend::Sqlite(s) => match s.location() {
                Location::InMemory => "SQLite in memory".into(),
                Location::File(p) => format!("SQLite {}", p.display()),
            },
            Backend::Redis(r) => format!("Redis {}", redact(r.url())),
            Backend::Unreachable(kind) => kind.to_string(),
        })
    }
}

/// A Redis URL without its password.
fn redact(url: &str) -> String {
    match ::redis::parse_redis_url(url) {
        Some(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
