//! The host's key-value stores as Spin 3.6.3 has them, through the probe component: the default
//! store a SQLite file in the state dir (kept across restarts), `type = "spin"` paths relative to
//! the runtime config, a real redis-server shared by two hosts, `wasi:keyvalue` atomics with each
//! backend's semantics under concurrency, and the runtime configs and labels Spin refuses.

use std::path::{Path, PathBuf};

use tenant_bridge_testkit::host::RunningHost;
use tenant_bridge_testkit::launchers::redis::RedisServer;

mod probe;
use probe::{config, get, write_manifest};

fn temp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("host-stores-")
        .tempdir()
        .unwrap()
}

fn write_rc(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("runtime-config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn try_start(
    manifest: &Path,
    rc: Option<&Path>,
    state: Option<&Path>,
) -> anyhow::Result<RunningHost> {
    let mut cfg = config(manifest.to_path_buf(), &[]);
    cfg.runtime_config = rc.map(Path::to_path_buf);
    cfg.state_dir = state.map(Path::to_path_buf);
    RunningHost::start(cfg).await
}

async fn start(manifest: &Path, rc: Option<&Path>, state: Option<&Path>) -> RunningHost {
    try_start(manifest, rc, state).await.unwrap()
}

fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e:#}"))
}

/// GETs every path at once (each its own connection and instance); bodies in path order.
async fn concurrently(host: &RunningHost, paths: Vec<String>) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, path) in paths.into_iter().enumerate() {
        let (client, url) = (client.clone(), format!("{}{path}", host.base_url()));
        tasks.spawn(async move {
            let resp = client.get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{url}");
            (i, resp.text().await.unwrap())
        });
    }
    let mut out = tasks.join_all().await;
    out.sort();
    out.into_iter().map(|(_, body)| body).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_store_is_a_sqlite_file_in_the_state_dir_kept_across_restarts() {
    let state = temp();
    let manifest = write_manifest(&[], &["default"]);
    let host = start(&manifest, None, Some(state.path())).await;
    assert_eq!(
        get(&host, "/kv?key=a&set=v1").await,
        r#"value=Some("v1") keys=["a"]"#
    );
    drop(host);

    // Spin's file and table, as any other SQLite client reads them.
    let db = state.path().join("sqlite_key_value.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<(String, String, Vec<u8>)> = conn
        .prepare("SELECT store, key, value FROM spin_key_value")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected = ("default".to_string(), "a".to_string(), b"v1".to_vec());
    assert_eq!(rows, [expected]);

    let host = start(&manifest, None, Some(state.path())).await;
    assert_eq!(
        get(&host, "/kv?key=a").await,
        r#"value=Some("v1") keys=["a"]"#
    );
    assert_eq!(
        host.kv().describe("default").unwrap(),
        format!("SQLite {}", db.display())
    );

    // No state dir (`--state-dir ""`): an in-memory database, empty on every start.
    let host = start(&manifest, None, None).await;
    assert_eq!(get(&host, "/kv?key=a").await, "value=None keys=[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_store_paths_resolve_against_the_runtime_config_dir() {
    let (dir, state) = (temp(), temp());
    let rc = write_rc(
        dir.path(),
        "[key_value_store.default]\ntype = \"spin\"\npath = \"data/kv.db\"\n\n\
         [key_value_store.scratch]\ntype = \"spin\"\n",
    );
    let manifest = write_manifest(&[], &["default", "scratch"]);
    let host = start(&manifest, Some(&rc), Some(state.path())).await;
    // The parent directory is made at start, the file on first use.
    assert!(dir.path().join("data").is_dir());
    get(&host, "/kv?key=a&set=kept").await;
    get(&host, "/kv?label=scratch&key=b&set=lost").await;
    drop(host);
    assert!(dir.path().join("data/kv.db").is_file());
    assert!(!state.path().join("sqlite_key_value.db").exists());

    let host = start(&manifest, Some(&rc), Some(state.path())).await;
    assert_eq!(
        get(&host, "/kv?key=a").await,
        r#"value=Some("kept") keys=["a"]"#
    );
    assert_eq!(
        get(&host, "/kv?label=scratch&key=b").await,
        "value=None keys=[]",
        "a `spin` store without a path is in memory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_one_redis() {
    let server = redis();
    let dir = temp();
    let rc = write_rc(
        dir.path(),
        &format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n\n\
             [key_value_store.other]\ntype = \"redis\"\nurl = \"{url}\"\n",
            url = server.url()
        ),
    );
    let manifest = write_manifest(&[], &["default", "other"]);
    let one = start(&manifest, Some(&rc), None).await;
    let two = start(&manifest, Some(&rc), None).await;
    assert_eq!(
        get(&one, "/kv?key=a&set=from-one").await,
        r#"value=Some("from-one") keys=["a"]"#
    );
    assert_eq!(
        get(&two, "/kv?key=a").await,
        r#"value=Some("from-one") keys=["a"]"#
    );
    two.kv().set("default", "b", "from-test");
    assert_eq!(
        one.kv().get("default", "b").as_deref(),
        Some(&b"from-test"[..])
    );
    // Spin's Redis store does not put the label into the key: labels on one Redis share keys
    // (KEYS answers in no particular order).
    let other = get(&one, "/kv?label=other&key=b").await;
    assert!(
        [r#"keys=["a", "b"]"#, r#"keys=["b", "a"]"#]
            .iter()
            .any(|keys| other == format!(r#"value=Some("from-test") {keys}"#)),
        "{other}"
    );
    assert_eq!(one.kv().ops().reads, 4, "{:?}", one.kv().ops());
}

/// Both of Spin's local stores, each as a host would run with it.
enum Backend {
    Sqlite(tempfile::TempDir),
    Redis(RedisServer, tempfile::TempDir),
}

impl Backend {
    async fn host(&self) -> RunningHost {
        let manifest = write_manifest(&[], &["default"]);
        match self {
            Backend::Sqlite(state) => start(&manifest, None, Some(state.path())).await,
            Backend::Redis(server, dir) => {
                let rc = write_rc(
                    dir.path(),
                    &format!(
                        "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
                        server.url()
                    ),
                );
                start(&manifest, Some(&rc), None).await
            }
        }
    }

    fn is_redis(&self) -> bool {
        matches!(self, Backend::Redis(..))
    }
}

const N: usize = 8;

/// `increment` from 24 instances at once: every value 1..=24 handed out exactly once.
async fn increment_is_atomic(backend: &Backend) {
    let host = backend.host().await;
    // Open the store first: instances opening a fresh SQLite file at once race to create it,
    // in Spin too (see `SqliteStore::connection`); that is not what this test is about.
    host.kv().set("default", "opened", "yes");
    let paths = (0..24)
        .map(|_| "/atomics?op=increment&key=counter".to_string())
        .collect();
    let mut got: Vec<i64> = concurrently(&host, paths)
        .await
        .iter()
        .map(|b| {
            b.strip_prefix("Ok(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{b}"))
                .parse()
                .unwrap()
        })
        .collect();
    got.sort();
    assert_eq!(got, (1..=24).collect::<Vec<i64>>());
    // SQLite keeps the counter as 8 little-endian bytes, Redis as decimal text.
    let stored = host.kv().get("default", "counter").unwrap();
    match backend.is_redis() {
        true => assert_eq!(stored, b"24"),
        false => assert_eq!(stored, 24i64.to_le_bytes()),
    }
    host.kv().set("default", "text", "abc");
    let resp = reqwest::get(format!("{}/atomics?key=text", host.base_url()))
        .await
        .unwrap();
    match backend.is_redis() {
        true => {
            let body = resp.text().await.unwrap();
            assert!(
                body.starts_with("Err(Error::Other(") && body.contains("not an integer"),
                "{body}"
            );
        }
        // Spin's SQLite store panics on a value that is not 8 bytes: the request fails.
        false => assert_eq!(resp.status(), 500),
    }
}

/// N instances read the same snapshot (a barrier after `current`), then all swap.
async fn swap_all(host: &RunningHost, key: &str, expect: &str) -> Vec<String> {
    let paths = (0..N)
        .map(|i| {
            format!(
                "/atomics?op=cas&key={key}&expect={expect}&swap=w{i}&barrier=arrived-{key}&n={N}"
            )
        })
        .collect();
    concurrently(host, paths).await
}

fn stored(host: &RunningHost, key: &str) -> String {
    String::from_utf8(host.kv().get("default", key).expect("a value")).unwrap()
}

async fn compare_and_swap(backend: &Backend) {
    let host = backend.host().await;

    // From an existing value: exactly one swap is applied on both stores.
    host.kv().set("default", "e", "v0");
    let results = swap_all(&host, "e", "v0").await;
    let winner = stored(&host, "e");
    assert!(winner.starts_with('w'), "{winner}");
    let won = results.iter().filter(|r| r.ends_with("swap=won")).count();
    let lost_to_winner = format!(r#"seen=Some("v0") swap=lost now=Some("{winner}")"#);
    let lost = results.iter().filter(|r| **r == lost_to_winner).count();
    match backend.is_redis() {
        // Spin 3.6.3's Redis swap ends with `UNWATCH key`, which Redis refuses: every swap,
        // the applied one included, reports cas-failed.
        true => assert_eq!((won, lost), (0, N), "{results:#?}"),
        false => assert_eq!((won, lost), (1, N - 1), "{results:#?}"),
    }

    // From an absent key: SQLite upserts (every swap "wins", the last write stays); Redis's
    // WATCH lets exactly one EXEC through (reported as failed, as above).
    let results = swap_all(&host, "fresh", "~").await;
    let last = stored(&host, "fresh");
    assert!(last.starts_with('w'), "{last}");
    match backend.is_redis() {
        true => {
            let lost_to_first = format!(r#"seen=None swap=lost now=Some("{last}")"#);
            assert!(results.iter().all(|r| *r == lost_to_first), "{results:#?}");
        }
        false => assert!(
            results.iter().all(|r| r == "seen=None swap=won"),
            "{results:#?}"
        ),
    }

    // One instance, the key changed between `current` and `swap`.
    host.kv().set("default", "m", "old");
    assert_eq!(
        get(&host, "/atomics?op=cas&key=m&swap=mine&meanwhile=theirs").await,
        r#"seen=Some("old") swap=lost now=Some("theirs")"#
    );
    assert_eq!(stored(&host, "m"), "theirs");
    let absent = get(&host, "/atomics?op=cas&key=a&swap=mine&meanwhile=theirs").await;
    match backend.is_redis() {
        true => {
            assert_eq!(absent, r#"seen=None swap=lost now=Some("theirs")"#);
            assert_eq!(stored(&host, "a"), "theirs");
        }
        false => {
            assert_eq!(absent, "seen=None swap=won");
            assert_eq!(stored(&host, "a"), "mine");
        }
    }
    // Uncontended.
    let alone = get(&host, "/atomics?op=cas&key=u&swap=mine").await;
    assert_eq!(stored(&host, "u"), "mine");
    match backend.is_redis() {
        true => assert_eq!(alone, r#"seen=None swap=lost now=Some("mine")"#),
        false => assert_eq!(alone, "seen=None swap=won"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_atomics() {
    let backend = Backend::Sqlite(temp());
    increment_is_atomic(&backend).await;
    compare_and_swap(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_atomics() {
    let backend = Backend::Redis(redis(), temp());
    increment_is_atomic(&backend).await;
    compare_and_swap(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_config_spin_refuses_does_not_start_the_host() {
    let dir = temp();
    let manifest = write_manifest(&[], &["default"]);
    std::fs::write(
        dir.path().join("ca.pem"),
        tenant_bridge_testkit::trust::pki::TestPki::new().ca_pem(),
    )
    .unwrap();
    // The sandbox's runtime config before issue 10: hosts with ports.
    let old_sandbox = "[key_value_store.default]\ntype = \"spin\"\n\n\
         [[client_tls]]\ncomponent_ids = [\"hostprobe\"]\n\
         hosts = [\"tenant-a-vault.vault.azure.net:40409\", \"127.0.0.1:40411\"]\n\
         ca_roots_file = \"ca.pem\"\nca_use_webpki_roots = false\n";
    let refusals = [
        (
            old_sandbox.to_string(),
            "failed to parse [[client_tls]] table: invalid TLS 'host' \"tenant-a-vault.vault.azure.net:40409\"; ports not currently supported",
        ),
        (
            "[token_cache]\ntype = \"spin\"\n".to_string(),
            "unused runtime config key(s): token_cache",
        ),
        (
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"localhost:6379\"\n".to_string(),
            "could not configure key-value store with label 'default': could not make key-value store from runtime config: Invalid Redis URL",
        ),
        (
            "[key_value_store.default]\ntype = \"memcached\"\n".to_string(),
            "could not configure key-value store with label 'default': the store type 'memcached' was not registered with the config resolver",
        ),
    ];
    for (text, reason) in refusals {
        let rc = write_rc(dir.path(), &text);
        let err = try_start(&manifest, Some(&rc), None)
            .await
            .err()
            .unwrap_or_else(|| panic!("started with:\n{text}"));
        let err = format!("{err:#}");
        assert!(err.starts_with(reason), "{err}\nfor:\n{text}");
    }
    // The same entries without ports start.
    let fixed = old_sandbox.replace(":40409", "").replace(":40411", "");
    let rc = write_rc(dir.path(), &fixed);
    start(&manifest, Some(&rc), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_label_nothing_defines_is_refused() {
    let manifest = write_manifest(&[], &["default", "cache"]);
    let err = try_start(&manifest, None, None)
        .await
        .err()
        .expect("must fail");
    assert_eq!(
        format!("{err:#}"),
        "unknown key_value_stores label \"cache\" for component \"hostprobe\""
    );
    let dir = temp();
    let rc = write_rc(dir.path(), "[key_value_store.cache]\ntype = \"spin\"\n");
    let host = start(&manifest, Some(&rc), None).await;
    assert_eq!(
        get(&host, "/kv?label=cache&key=k&set=v").await,
        r#"value=Some("v") keys=["k"]"#
    );
    assert_eq!(host.kv().labels(), ["cache", "default"]);
}
