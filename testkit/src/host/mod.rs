//! A small Spin-3.6.3-like HTTP trigger host on wasmtime, for tests.
//!
//! One fresh component instance per request (as Spin), `fermyon:spin/variables@2.0.0`,
//! `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue@0.2.0-draft2` store + atomics over the
//! stores a Spin runtime config defines (SQLite as Spin's `spin` type, a real Redis for `redis`;
//! the config goes through [`crate::spin_rules`], so a file Spin refuses does not start this
//! host either), WASI p2 and `wasi:http@0.2.x`, outbound HTTP checked against
//! `allowed_outbound_hosts` exactly as Spin parses it, TLS trusting only the test CA (or what
//! `[[client_tls]]` says), and a name -> IP map instead of DNS. See README.md (`host`) for the
//! contract.

mod kv;
mod logs;
mod outbound;
mod spin_api;

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub use kv::{KvHandle, KvOps};

use logs::LogSink;
use outbound::{Outbound, OutboundHooks};
use spin_api::{SpinState, SpinView};

use crate::spin_rules::manifest::{self, Route};
use crate::spin_rules::variables::Resolver;
use crate::spin_rules::{LoadedClientTls, RuntimeConfig};

/// How to run the component.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The component (`.wasm`). Default: the workspace's
    /// `target/wasm32-wasip2/release/tenant_bridge.wasm`.
    pub wasm: PathBuf,
    /// The project's `spin.toml`. Default: the workspace's `spin.toml`.
    pub manifest: PathBuf,
    /// App variable values, like `SPIN_VARIABLE_<NAME>` (keys `name`, `NAME` or
    /// `SPIN_VARIABLE_NAME`). A name not declared in `[variables]` is an error.
    pub variables: HashMap<String, String>,
    /// The root trusted for outbound TLS (None: no HTTPS request can succeed). It stands in for
    /// the public roots Spin trusts by default: a host listed in `[[client_tls]]` trusts that
    /// entry's `ca_roots_file` instead (plus this one with `ca_use_webpki_roots = true`).
    pub ca_pem: Option<String>,
    /// Like /etc/hosts: host name -> IP (the port comes from the URL). Other names use DNS,
    /// except `*.invalid`, `*.test` and `*.example`, which fail as DNS errors without a lookup.
    /// Whatever the name, only loopback addresses are ever connected to: anything else is
    /// refused (`connection-refused`, with a `[host]` log line).
    pub hosts: HashMap<String, IpAddr>,
    /// Also copy guest output and host log lines to the real stderr.
    pub echo_logs: bool,
    /// `spin up --runtime-config-file`: read and checked as Spin 3.6.3 does (a file Spin refuses
    /// fails `start` with Spin's reason); its `[key_value_store.*]` tables decide each label's
    /// store, its `[[client_tls]]` entries the outbound trust. Two hosts whose configs name one
    /// Redis share its data, like replicas.
    pub runtime_config: Option<PathBuf>,
    /// Spin's state directory (`.spin/` beside the app by default): the `default` store is
    /// `sqlite_key_value.db` in it unless the runtime config defines `default`. None: unset, as
    /// with `--state-dir ""` (the default store is then an in-memory SQLite database).
    pub state_dir: Option<PathBuf>,
}

impl Default for HostConfig {
    fn default() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        HostConfig {
            wasm: root.join("target/wasm32-wasip2/release/tenant_bridge.wasm"),
            manifest: root.join("spin.toml"),
            variables: HashMap::new(),
            ca_pem: None,
            hosts: HashMap::new(),
            echo_logs: false,
            runtime_config: None,
            state_dir: None,
        }
    }
}

/// One outbound HTTP request the guest attempted, allowed or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundRecord {
    pub method: String,
    /// Absolute URL as the guest addressed it (`https://host[:port]/path?query`).
    pub url: String,
    /// Header names lowercased, in order, as sent: the guest's headers plus `host`
    /// (`host[:port]`, the port only when not the scheme's default, as Spin sends it).
    pub headers: Vec<(String, String)>,
    /// Refused by `allowed_outbound_hosts` (the guest got `HttpRequestDenied`).
    pub denied: bool,
}

impl OutboundRecord {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running host; dropping it stops the server (and aborts unfinished requests).
pub struct RunningHost {
    addr: SocketAddr,
    logs: LogSink,
    records: Arc<Mutex<Vec<OutboundRecord>>>,
    kv: KvHandle,
    outbound: Arc<Outbound>,
    running: Arc<AtomicUsize>,
    server: JoinHandle<()>,
}

/// What the runtime config gives the host, loaded as `spin up` loads it.
struct Runtime {
    stores: Arc<kv::Stores>,
    client_tls: Vec<LoadedClientTls>,
    pooling: bool,
    /// Spin's default log directory, `<state dir>/logs` (none without a state dir).
    log_dir: Option<PathBuf>,
}

/// Reads the runtime config (if any) and makes the stores: Spin's refusals become errors here.
fn load_runtime(
    cfg: &HostConfig,
    component_id: &str,
    labels: &[String],
) -> anyhow::Result<Runtime> {
    let (config, client_tls) = match &cfg.runtime_config {
        Some(path) => RuntimeConfig::load(path).map_err(anyhow::Error::msg)?,
        None => (RuntimeConfig::default(), Vec::new()),
    };
    let config_dir = cfg
        .runtime_config
        .as_deref()
        .map(|p| p.parent().unwrap_or(Path::new(".")));
    let state_dir = config.state_dir(cfg.state_dir.as_deref());
    let stores = kv::Stores::new(config.resolve_stores(config_dir, state_dir.as_deref()))?;
    config
        .check_component_stores(component_id, labels)
        .map_err(anyhow::Error::msg)?;
    let client_tls = client_tls
        .into_iter()
        .filter(|t| t.entry.component_ids.iter().any(|c| c == component_id))
        .collect();
    let log_dir = state_dir.map(|d| d.join("logs"));
    if let Some(dir) = &log_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Failed to create log dir {}", dir.display()))?;
    }
    Ok(Runtime {
        log_dir,
        stores: Arc::new(stores),
        client_tls,
        // Spin pools by default; an `[outbound_http]` table turns it off unless it says so.
        pooling: config.outbound_http.is_none_or(|h| h.connection_pooling),
    })
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RunningHost {
    /// Loads the manifest, the runtime config and the component and starts serving on
    /// `127.0.0.1:0`. Fails like `spin up` would: bad manifest, required variable without value,
    /// malformed literal `allowed_outbound_hosts` entry, a runtime config Spin refuses, a
    /// `key_value_stores` label nothing defines; also for an undeclared variable in
    /// `cfg.variables`.
    pub async fn start(cfg: HostConfig) -> anyhow::Result<RunningHost> {
        let app = manifest::load(&cfg.manifest, &cfg.variables)?;
        let resolver = Arc::new(app.resolver);
        let runtime = load_runtime(&cfg, &app.component_id, &app.key_value_stores)?;
        let logs = LogSink::new(cfg.echo_logs);
        let records = Arc::new(Mutex::new(Vec::new()));
        let kv = KvHandle::new(runtime.stores.clone());
        let running = Arc::new(AtomicUsize::new(0));

        let wasm = cfg.wasm.clone();
        let component = tokio::task::spawn_blocking(move || load_component(&wasm))
            .await
            .context("compiling the component panicked")??;
        let engine = engine();
        let mut linker: Linker<InstanceState> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        outbound::shadow_http_error_code(&mut linker, |s: &mut InstanceState| &mut s.table)?;
        spin_api::add_to_linker(&mut linker, |s: &mut InstanceState| SpinView {
            state: &mut s.spin,
            table: &mut s.table,
        })?;
        // Spin provides more (redis, sqlite, llm, ...); a component importing those fails here
        // (`define_unknown_imports_as_traps` would shadow semver-matched WASI imports).
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?).map_err(|e| {
            anyhow::Error::from(e)
                .context("the component does not export wasi:http/incoming-handler")
        })?;

        let outbound = Arc::new(Outbound {
            component_id: app.component_id.clone(),
            resolver: resolver.clone(),
            tls: outbound::TlsConfigs::new(cfg.ca_pem.as_deref(), &runtime.client_tls)?,
            hosts: cfg.hosts.clone(),
            records: records.clone(),
            logs: logs.clone(),
            pool: outbound::Pool::default(),
            pooling: runtime.pooling,
        });
        let server = Arc::new(Server {
            pre,
            route: app.route.clone(),
            component_id: app.component_id.clone(),
            variables: resolver.clone(),
            log_dir: runtime.log_dir.clone(),
            follow: logs::follow_target(cfg.echo_logs)?,
            kv_labels: Arc::new(app.key_value_stores.clone()),
            stores: runtime.stores.clone(),
            outbound: outbound.clone(),
            logs: logs.clone(),
            running: running.clone(),
        });

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(crate::net::accept::serve_each(listener, move |sock| {
            let server = server.clone();
            async move {
                let svc = hyper::service::service_fn(move |req| server.clone().handle(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            }
        }));

        Ok(RunningHost {
            addr,
            logs,
            records,
            kv,
            outbound,
            running,
            server: task,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Outbound connections opened so far (pooled connections are reused, as in Spin).
    pub fn connections_opened(&self) -> u64 {
        self.outbound.pool.opened()
    }

    /// Every outbound request attempted so far, in order.
    pub fn outbound(&self) -> Vec<OutboundRecord> {
        self.records.lock().unwrap().clone()
    }

    /// Guest stdout/stderr (whole lines) and host log lines (`[host] ...`) so far.
    pub fn logs(&self) -> String {
        self.logs.contents()
    }

    /// Instances that have started and not ended. An instance can still be running (writing
    /// its log line, say) after its caller has the whole response.
    pub fn instances_running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Waits until no instance is running, or `timeout` has passed; whether none is. Async
    /// callers on a multi-thread runtime wrap it in `tokio::task::block_in_place`.
    pub fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        self.log_view().wait_idle(timeout)
    }

    /// The key-value stores the guest sees (whatever their backend), and its operation counts.
    pub fn kv(&self) -> KvHandle {
        self.kv.clone()
    }

    /// The log and the instance count as a handle that outlives the host, so that whoever
    /// started it can still read everything it wrote after it was dropped.
    pub fn log_view(&self) -> HostLogs {
        HostLogs {
            logs: self.logs.clone(),
            running: self.running.clone(),
        }
    }
}

/// A host's log and running instances, readable after the host is dropped
/// ([`RunningHost::log_view`]).
#[derive(Clone)]
pub struct HostLogs {
    logs: LogSink,
    running: Arc<AtomicUsize>,
}

impl HostLogs {
    /// As [`RunningHost::logs`].
    pub fn contents(&self) -> String {
        self.logs.contents()
    }

    /// As [`RunningHost::wait_idle`].
    pub fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.running.load(Ordering::SeqCst) > 0 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        true
    }
}

/// The `T` of each request's `Store<T>`.
struct InstanceState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    table: ResourceTable,
    spin: SpinState,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ResBody = UnsyncBoxBody<Bytes, BoxError>;

struct Server {
    pre: ProxyPre<InstanceState>,
    route: Route,
    component_id: String,
    variables: Arc<Resolver>,
    /// Where each instance's stdio also goes, as under `spin up` (see `logs::SpinStdio`).
    log_dir: Option<PathBuf>,
    follow: Option<Arc<std::fs::File>>,
    kv_labels: Arc<Vec<String>>,
    stores: Arc<kv::Stores>,
    outbound: Arc<Outbound>,
    logs: LogSink,
    /// Instances started and not yet ended (their task finished or was aborted).
    running: Arc<AtomicUsize>,
}

/// Counts an instance as running for as long as its task lives.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(count: &Arc<AtomicUsize>) -> Running {
        count.fetch_add(1, Ordering::SeqCst);
        Running(count.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn text_response(status: u16, text: &str) -> hyper::Response<ResBody> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(
            Full::new(Bytes::from(text.to_string()))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("valid response")
}

/// Aborts the guest task if the request is abandoned before the response is handed over.
struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

impl Server {
    async fn handle(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<ResBody>, Infallible> {
        if !self.route.matches(req.uri().path()) {
            return Ok(text_response(404, "Not Found"));
        }
        // Spin opens both streams' log files for every instance (`prepare_instance`).
        let spin_files = |stream| {
            let dir = self.log_dir.as_deref()?;
            logs::SpinStdio::open(dir, &self.component_id, stream, self.follow.clone()).ok()
        };
        let wasi = WasiCtxBuilder::new()
            .stdout(self.logs.guest_stream(spin_files("stdout")))
            .stderr(self.logs.guest_stream(spin_files("stderr")))
            .build();
        let mut store = Store::new(
            self.pre.engine(),
            InstanceState {
                wasi,
                http: WasiHttpCtx::new(),
                hooks: OutboundHooks {
                    shared: self.outbound.clone(),
                    allowed: None,
                },
                table: ResourceTable::new(),
                spin: SpinState {
                    variables: self.variables.clone(),
                    stores: self.stores.clone(),
                    kv_labels: self.kv_labels.clone(),
                },
            },
        );
        // Spin's deadline when none is configured: a delta of 2^63 ticks, "practically forever".
        store.set_epoch_deadline(u64::MAX / 2);
        let (resp_tx, resp_rx) = oneshot::channel();
        let setup = (|| -> wasmtime::Result<_> {
            let incoming = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, req)?;
            let outparam = store.data_mut().http().new_response_outparam(resp_tx)?;
            Ok((incoming, outparam))
        })();
        let (incoming, outparam) = match setup {
            Ok(x) => x,
            Err(e) => {
                self.logs.host(&format!("bad incoming request: {e:#}"));
                return Ok(text_response(400, "Bad Request"));
            }
        };

        let (done_tx, done_rx) = oneshot::channel::<Result<(), String>>();
        let pre = self.pre.clone();
        let logs = self.logs.clone();
        let id = self.component_id.clone();
        let running = Running::start(&self.running);
        let task = tokio::spawn(async move {
            let _running = running;
            let result = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
            }
            .await;
            let outcome = result.map_err(|e| format!("{e:?}"));
            if let Err(e) = &outcome {
                logs.host(&format!("component {id:?} failed: {e}"));
            }
            // Report before the store (and with it an unfinished body) goes away, so the body
            // sees the failure when it ends.
            let _ = done_tx.send(outcome);
            drop(store);
        });
        let mut guard = AbortOnDrop(Some(task));

        match resp_rx.await {
            Ok(Ok(resp)) => {
                let task = guard.0.take();
                let expected = resp
                    .headers()
                    .get(hyper::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                Ok(resp.map(|body| {
                    GuestBody {
                        inner: body,
                        outcome: done_rx,
                        task,
                        ended: false,
                        expected,
                        sent: 0,
                    }
                    .boxed_unsync()
                }))
            }
            Ok(Err(code)) => {
                self.logs
                    .host(&format!("component set an error response: {code:?}"));
                Ok(text_response(500, "Internal Server Error"))
            }
            Err(_) => {
                let why = match done_rx.await {
                    Ok(Err(e)) => e,
                    _ => "component did not call response-outparam.set".to_string(),
                };
                self.logs.host(&format!("no response: {why}"));
                Ok(text_response(500, "Internal Server Error"))
            }
        }
    }
}

/// The guest's response body, streamed as written. If the guest trapped or aborted the body,
/// it ends with an error, so hyper drops the connection and the client sees a broken transfer.
struct GuestBody {
    inner: HyperOutgoingBody,
    outcome: oneshot::Receiver<Result<(), String>>,
    task: Option<JoinHandle<()>>,
    ended: bool,
    /// The response's Content-Length: once that much is sent, hyper stops polling and drops the
    /// body, which is a complete response, not a client gone away.
    expected: Option<u64>,
    sent: u64,
}

impl Drop for GuestBody {
    fn drop(&mut self) {
        // Client gone mid-body: stop the guest. A finished body leaves the guest to finish.
        if !self.ended {
            if let Some(t) = self.task.take() {
                t.abort();
            }
        }
    }
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                    if self.expected == Some(self.sent) {
                        self.ended = true;
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.ended = true;
                Poll::Ready(Some(Err(
                    format!("guest aborted the response body: {e}").into()
                )))
            }
            Poll::Ready(None) => {
                self.ended = true;
                match self.outcome.try_recv() {
                    Ok(Err(e)) => Poll::Ready(Some(Err(format!(
                        "guest failed while streaming: {e}"
                    )
                    .into()))),
                    Err(oneshot::error::TryRecvError::Closed) => {
                        Poll::Ready(Some(Err("guest task vanished".into())))
                    }
                    // finished normally (the guest may still be running after finish)
                    Ok(Ok(())) | Err(oneshot::error::TryRecvError::Empty) => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The engine as Spin 3.6.3's `spin-core` configures it (`Config::default`, `EngineBuilder`):
/// epoch interruption with a ticker thread every 10 ms (the guest's code carries the checks; the
/// deadline is "practically forever", as Spin's `StoreBuilder::build` sets it), and the pooling
/// instance allocator with Spin's defaults for 1,000 instances, which Spin uses wherever 42 bits
/// of address space can be reserved (every x86_64 Linux). Pooling is what makes instantiating a
/// fresh instance per request cheap; without it the host's fixed cost per request is not Spin's.
/// `SPIN_WASMTIME_POOLING=0` turns it off, as it does in Spin.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut c = wasmtime::Config::new();
        c.epoch_interruption(true);
        if std::env::var("SPIN_WASMTIME_POOLING").as_deref() != Ok("0") {
            const MB: usize = 1 << 20;
            const GB: u64 = 1 << 30;
            let max_instances = 1_000;
            let mut pooling = wasmtime::PoolingAllocationConfig::default();
            pooling
                .total_component_instances(max_instances)
                .total_memories(max_instances)
                .total_tables(2 * max_instances)
                .total_stacks(max_instances)
                .total_core_instances(4 * max_instances)
                .table_elements(100_000)
                .max_component_instance_size(10 * MB)
                .max_core_instance_size(10 * MB)
                .max_core_instances_per_component(200)
                .max_tables_per_component(64)
                .max_memories_per_component(32)
                .max_tables_per_module(2)
                .max_memories_per_module(2)
                .max_memory_size(4 * GB as usize)
                .linear_memory_keep_resident(2 * MB)
                .table_keep_resident(MB / 2);
            c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
        }
        if std::env::var_os("TB_PERFMAP").is_some() {
            c.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&c).expect("wasmtime engine");
        let weak = engine.weak();
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(10));
            let Some(engine) = weak.upgrade() else { break };
            engine.increment_epoch();
        });
        engine
    })
}

/// Compiles `path` once per process (and once per content on disk, in the temp dir).
fn load_component(path: &Path) -> anyhow::Result<Component> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Component>>> = OnceLock::new();
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "reading component {} (build it with `cargo build --release --target wasm32-wasip2`)",
            path.display()
        )
    })?;
    let engine = engine();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    engine.precompile_compatibility_hash().hash(&mut h);
    let key = h.finish();

    // Holding the lock while compiling keeps parallel tests from compiling the same thing.
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    if let Some(c) = cache.get(&key) {
        return Ok(c.clone());
    }
    let dir = std::env::temp_dir().join("tenant-bridge-testkit-cwasm");
    let file = dir.join(format!("{key:016x}.cwasm"));
    // SAFETY: the file is one this function wrote with this engine configuration (its name is
    // the hash of the input and of the engine's compatibility hash); wasmtime still checks its
    // header. A failure falls back to compiling.
    let cached = unsafe { Component::deserialize_file(engine, &file) }.ok();
    let component = match cached {
        Some(c) => c,
        None => {
            let compiled = engine.precompile_component(&bytes).map_err(|e| {
                anyhow::Error::from(e).context(format!("compiling {}", path.display()))
            })?;
            let _ = std::fs::create_dir_all(&dir);
            let tmp = dir.join(format!("{key:016x}.{}.tmp", std::process::id()));
            if std::fs::write(&tmp, &compiled).is_ok() {
                let _ = std::fs::rename(&tmp, &file);
            }
            // SAFETY: `compiled` was just produced by `precompile_component` on this engine.
            unsafe { Component::deserialize(engine, &compiled) }?
        }
    };
    cache.insert(key, component.clone());
    Ok(component)
}
