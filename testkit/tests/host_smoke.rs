//! The Spin-like host against a small spin-sdk 5.2 guest (tests/fixtures/hostprobe, built here
//! for wasm32-wasip2 on first use): variables, key-value, allowed_outbound_hosts, the
//! "Error parsing allowed outbound hosts" deny-all, TLS trust, name mapping, request timeouts,
//! streaming with back-pressure, and broken transfers when the guest fails mid-body.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tenant_bridge_testkit::host::{HostConfig, RunningHost};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn probe_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        if let Ok(p) = std::env::var("HOSTPROBE_WASM") {
            return PathBuf::from(p);
        }
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostprobe");
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostprobe");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(fixture.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("running cargo to build the probe guest");
        assert!(status.success(), "building the probe guest failed");
        target.join("wasm32-wasip2/release/hostprobe.wasm")
    })
    .clone()
}

fn write_manifest(allowed: &[&str], kv: &[&str]) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "host-smoke-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let list = |xs: &[&str]| {
        xs.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        r#"spin_manifest_version = 2

[application]
name = "hostprobe"
version = "0.1.0"

[variables]
tenant = {{ default = "t1" }}
up_port = {{ default = "1" }}
tls_port = {{ default = "1" }}
extra = {{ default = "http://extra.test" }}
token = {{ required = true, secret = true }}

[[trigger.http]]
route = "/..."
component = "hostprobe"

[component.hostprobe]
source = "hostprobe.wasm"
allowed_outbound_hosts = [{allowed}]
key_value_stores = [{kv}]

[component.hostprobe.variables]
greeting = "hello {{{{ tenant }}}} / {{{{token}}}}"
target_url = "http://upstream.test:{{{{ up_port }}}}/from-variable"
"#,
        allowed = list(allowed),
        kv = list(kv),
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn config(manifest: PathBuf, vars: &[(&str, String)]) -> HostConfig {
    let mut variables: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    variables
        .entry("token".into())
        .or_insert_with(|| "s3cret".into());
    HostConfig {
        wasm: probe_wasm(),
        manifest,
        variables,
        ca_pem: None,
        hosts: HashMap::from([
            ("upstream.test".to_string(), LOCAL),
            ("vault.test".to_string(), LOCAL),
        ]),
        echo_logs: false,
    }
}

async fn get(host: &RunningHost, path_and_query: &str) -> String {
    let resp = reqwest::get(format!("{}{}", host.base_url(), path_and_query))
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{path_and_query}\nhost log:\n{}",
        host.logs()
    );
    resp.text().await.unwrap()
}

/// A scriptable upstream: `/slow` never answers, anything else answers 200 describing the
/// request. Records request heads.
#[derive(Clone, Default)]
struct Upstream {
    heads: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(self, mut s: S) {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte).await {
                Ok(1) => buf.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        self.heads.lock().unwrap().push(head.clone());
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        match path.as_str() {
            "/slow" => std::future::pending::<()>().await,
            _ => {
                let body = format!(
                    "upstream ok path={path} probe={} host={}",
                    header("x-probe"),
                    header("host")
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        }
    }

    async fn start_plain(&self) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let me = self.clone();
        let h = tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                tokio::spawn(me.clone().serve(s));
            }
        });
        (addr, h)
    }

    async fn start_tls(
        &self,
        config: Arc<rustls::ServerConfig>,
    ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let me = self.clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let h = tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                let acceptor = acceptor.clone();
                let me = me.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(s).await {
                        me.serve(tls).await;
                    }
                });
            }
        });
        (addr, h)
    }
}

/// A throwaway CA and a server config for `names`, signed by it.
fn test_ca(names: &[&str]) -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    (ca_cert.pem(), Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_kv_and_logs() {
    let manifest = write_manifest(&[], &["default"]);
    let host = RunningHost::start(config(manifest, &[("tenant", "t9".into())]))
        .await
        .unwrap();

    assert_eq!(
        get(&host, "/var?name=greeting").await,
        r#"Ok("hello t9 / s3cret")"#
    );
    let undefined = get(&host, "/var?name=tenant").await;
    assert!(
        undefined.starts_with("Err(Error::Undefined("),
        "{undefined}"
    );
    let invalid = get(&host, "/var?name=Bad").await;
    assert!(invalid.starts_with("Err(Error::InvalidName("), "{invalid}");

    assert_eq!(
        get(&host, "/kv?key=a&set=v1").await,
        r#"value=Some("v1") keys=["a"]"#
    );
    let kv = host.kv();
    assert_eq!(kv.get("default", "a").as_deref(), Some(&b"v1"[..]));
    kv.set("default", "b", "from-test");
    assert_eq!(
        get(&host, "/kv?key=b").await,
        r#"value=Some("from-test") keys=["a", "b"]"#
    );
    kv.delete("default", "a");
    assert_eq!(kv.keys("default"), vec!["b".to_string()]);
    assert_eq!(
        get(&host, "/kv?label=other").await,
        "open error: Error::AccessDenied"
    );

    let logs = host.logs();
    assert!(logs.contains("probe: /var /var?name=greeting\n"), "{logs}");
    assert!(logs.contains("probe stdout line\n"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_fails_like_spin_up() {
    // required variable without value
    let manifest = write_manifest(&[], &["default"]);
    let mut cfg = config(manifest.clone(), &[]);
    cfg.variables.remove("token");
    let err = RunningHost::start(cfg).await.err().expect("must fail");
    assert!(format!("{err:#}").contains("token"), "{err:#}");

    // undeclared variable
    let err = RunningHost::start(config(manifest, &[("tenant_id", "x".into())]))
        .await
        .err()
        .expect("must fail");
    assert!(format!("{err:#}").contains("tenant_id"), "{err:#}");

    // a literal allowed_outbound_hosts entry with a path
    let manifest = write_manifest(&["https://127.0.0.1:10000/devstoreaccount1"], &[]);
    let err = RunningHost::start(config(manifest, &[]))
        .await
        .err()
        .expect("must fail");
    assert!(format!("{err:#}").contains("malformed"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_allow_deny_and_records() {
    let upstream = Upstream::default();
    let (up, _up_task) = upstream.start_plain().await;
    let manifest = write_manifest(
        &[
            "http://upstream.test:{{ up_port }}",
            "http://*.invalid:*",
            "http://127.0.0.1:1",
            "{{ extra }}",
        ],
        &[],
    );
    let host = RunningHost::start(config(manifest, &[("up_port", up.port().to_string())]))
        .await
        .unwrap();

    // allowed, via the name mapping; url from the component variable template
    let ok = get(&host, "/out").await;
    assert_eq!(
        ok,
        format!(
            "status=200 body=upstream ok path=/from-variable probe=1 host=upstream.test:{}",
            up.port()
        )
    );
    // not in the list
    let denied = get(
        &host,
        &format!("/out?url=http://other.test:{}/x", up.port()),
    )
    .await;
    assert_eq!(denied, "error=ErrorCode::HttpRequestDenied");
    // right host, wrong port / scheme
    let denied = get(&host, "/out?url=http://upstream.test:2/x").await;
    assert_eq!(denied, "error=ErrorCode::HttpRequestDenied");
    let denied = get(
        &host,
        &format!("/out?url=https://upstream.test:{}/x", up.port()),
    )
    .await;
    assert_eq!(denied, "error=ErrorCode::HttpRequestDenied");
    // allowed but nothing there / no such name
    assert_eq!(
        get(&host, "/out?url=http://127.0.0.1:1/x").await,
        "error=ErrorCode::ConnectionRefused"
    );
    let dns = get(&host, "/out?url=http://nothing.invalid:80/").await;
    assert!(dns.starts_with("error=ErrorCode::DnsError("), "{dns}");

    let recs = host.outbound();
    assert_eq!(recs.len(), 6, "{recs:#?}");
    assert_eq!(recs[0].method, "GET");
    assert_eq!(
        recs[0].url,
        format!("http://upstream.test:{}/from-variable", up.port())
    );
    assert_eq!(recs[0].header("x-probe"), Some("1"));
    assert!(!recs[0].denied);
    assert!(recs[1].denied && recs[2].denied && recs[3].denied);
    assert!(!recs[4].denied && !recs[5].denied);
    assert_eq!(upstream.heads.lock().unwrap().len(), 1);
    let logs = host.logs();
    assert!(
        logs.contains("disallowed destination 'http://other.test:"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templated_entry_with_path_denies_everything() {
    let upstream = Upstream::default();
    let (up, _up_task) = upstream.start_plain().await;
    let manifest = write_manifest(&["http://upstream.test:{{ up_port }}", "{{ extra }}"], &[]);
    let host = RunningHost::start(config(
        manifest,
        &[
            ("up_port", up.port().to_string()),
            ("extra", "https://127.0.0.1:10000/devstoreaccount1".into()),
        ],
    ))
    .await
    .expect("Spin starts anyway");
    assert_eq!(
        get(&host, "/out").await,
        "error=ErrorCode::HttpRequestDenied"
    );
    assert_eq!(
        get(&host, "/out").await,
        "error=ErrorCode::HttpRequestDenied"
    );
    assert!(upstream.heads.lock().unwrap().is_empty());
    let recs = host.outbound();
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r.denied));
    let logs = host.logs();
    assert_eq!(
        logs.matches("Error parsing allowed outbound hosts").count(),
        2,
        "once per instance: {logs}"
    );

    // an entry resolving to an empty string does the same
    let manifest = write_manifest(&["http://upstream.test:{{ up_port }}", "{{ extra }}"], &[]);
    let host = RunningHost::start(config(
        manifest,
        &[("up_port", up.port().to_string()), ("extra", String::new())],
    ))
    .await
    .unwrap();
    assert_eq!(
        get(&host, "/out").await,
        "error=ErrorCode::HttpRequestDenied"
    );
    assert!(host.logs().contains("Error parsing allowed outbound hosts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_trusts_only_the_given_ca() {
    let (ca_pem, server_config) = test_ca(&["vault.test"]);
    let upstream = Upstream::default();
    let (tls, _task) = upstream.start_tls(server_config).await;
    let manifest = write_manifest(
        &["https://vault.test:{{ tls_port }}", "https://127.0.0.1:*"],
        &[],
    );
    let vars = [("tls_port", tls.port().to_string())];

    let mut cfg = config(manifest.clone(), &vars);
    cfg.ca_pem = Some(ca_pem);
    let host = RunningHost::start(cfg).await.unwrap();
    let url = format!("https://vault.test:{}/secrets/x", tls.port());
    assert_eq!(
        get(&host, &format!("/out?url={url}")).await,
        format!(
            "status=200 body=upstream ok path=/secrets/x probe=1 host=vault.test:{}",
            tls.port()
        )
    );
    // SNI / name check: the certificate is not valid for 127.0.0.1
    let by_ip = get(
        &host,
        &format!("/out?url=https://127.0.0.1:{}/", tls.port()),
    )
    .await;
    assert_eq!(by_ip, "error=ErrorCode::TlsProtocolError");

    // another CA: not trusted
    let (other_ca, _) = test_ca(&["vault.test"]);
    let mut cfg = config(manifest.clone(), &vars);
    cfg.ca_pem = Some(other_ca);
    let host = RunningHost::start(cfg).await.unwrap();
    assert_eq!(
        get(&host, &format!("/out?url={url}")).await,
        "error=ErrorCode::TlsProtocolError"
    );
    assert!(host.logs().contains("TLS handshake with vault.test"));

    // no CA at all
    let host = RunningHost::start(config(manifest, &vars)).await.unwrap();
    assert_eq!(
        get(&host, &format!("/out?url={url}")).await,
        "error=ErrorCode::TlsProtocolError"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_options_timeouts() {
    let upstream = Upstream::default();
    let (up, _up_task) = upstream.start_plain().await;
    let manifest = write_manifest(&["http://127.0.0.1:*"], &[]);
    let host = RunningHost::start(config(manifest, &[])).await.unwrap();
    let a = format!("127.0.0.1:{}", up.port());

    let t0 = std::time::Instant::now();
    let first = get(
        &host,
        &format!("/out-timeout?authority={a}&which=first&ms=300"),
    )
    .await;
    assert_eq!(first, "error=ErrorCode::ConnectionReadTimeout");
    assert!(t0.elapsed() < Duration::from_secs(5));

    // between-bytes: headers and 5 bytes of body, then silence
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stall_addr = l.local_addr().unwrap();
    let _stall_task = tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
                    )
                    .await;
                std::future::pending::<()>().await;
            });
        }
    });
    let between = get(
        &host,
        &format!(
            "/out-timeout?authority=127.0.0.1:{}&which=between&ms=300",
            stall_addr.port()
        ),
    )
    .await;
    assert_eq!(
        between,
        "status=200 got=5 err=Some(ErrorCode::ConnectionReadTimeout)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_streams_with_backpressure() {
    let manifest = write_manifest(&[], &["default"]);
    let host = RunningHost::start(config(manifest, &[])).await.unwrap();
    let mib = 64usize;
    let mut resp = reqwest::get(format!("{}/stream?mib={mib}", host.base_url()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = Vec::new();
    while got.len() < 1024 * 1024 {
        got.extend_from_slice(&resp.chunk().await.unwrap().expect("more body"));
    }
    // The client stops reading: the guest must be held back, not buffered into the host.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(host.kv().get("default", "stream_done"), None);
    let mut total = got.len();
    let mut check = got;
    while let Some(c) = resp.chunk().await.unwrap() {
        total += c.len();
        if check.len() < 3 * 1024 * 1024 {
            check.extend_from_slice(&c);
        }
    }
    assert_eq!(total, mib * 1024 * 1024);
    for (i, b) in check.iter().enumerate() {
        let (chunk, j) = (i / (1024 * 1024), i % (1024 * 1024));
        assert_eq!(*b as usize, (chunk * 7 + j) % 251, "byte {i}");
    }
    // the guest finishes after the body
    for _ in 0..50 {
        if host.kv().get("default", "stream_done").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        host.kv().get("default", "stream_done").as_deref(),
        Some(&b"yes"[..])
    );
}

async fn read_all(host: &RunningHost, path: &str) -> Result<usize, reqwest::Error> {
    let mut resp = reqwest::get(format!("{}{path}", host.base_url())).await?;
    let mut n = 0;
    while let Some(c) = resp.chunk().await? {
        n += c.len();
    }
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_mid_body_break_the_transfer() {
    let manifest = write_manifest(&[], &["default"]);
    let host = RunningHost::start(config(manifest, &[])).await.unwrap();
    for path in [
        "/trap-mid?mib=8",
        "/trap-mid?mib=8&len=1",
        "/abort-mid?mib=8",
        "/abort-mid?mib=8&len=1",
    ] {
        let r = read_all(&host, path).await;
        assert!(
            r.is_err(),
            "{path}: the client must see a broken transfer, got {r:?}"
        );
    }
    assert_eq!(
        read_all(&host, "/stream?mib=2").await.unwrap(),
        2 * 1024 * 1024
    );
    let logs = host.logs();
    assert!(logs.contains("probe trap mid-stream"), "{logs}");
}
