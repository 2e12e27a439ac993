//! The Spin-like host against a small spin-sdk 5.2 guest (tests/fixtures/hostprobe, built here
//! for wasm32-wasip2 on first use): variables, key-value, allowed_outbound_hosts, the
//! "Error parsing allowed outbound hosts" deny-all, TLS trust, name mapping, request timeouts,
//! streaming with back-pressure, and broken transfers when the guest fails mid-body.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenant_bridge_testkit::host::{HostConfig, RunningHost};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

mod probe;
use probe::{config, get, write_manifest};

/// A scriptable upstream: `/slow` never answers, anything else answers 200 describing the
/// request. Records request heads.
#[derive(Clone, Default)]
struct Upstream {
    heads: Arc<Mutex<Vec<String>>>,
    connections: Arc<std::sync::atomic::AtomicU64>,
}

impl Upstream {
    /// Serves requests on one connection until the client closes it (keep-alive, like the
    /// real services), or `/close` asks for `connection: close`.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(self, mut s: S) {
        self.connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        loop {
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
            if path == "/slow" {
                std::future::pending::<()>().await
            }
            // Read a POST's body before answering: closing with unread bytes makes the kernel
            // reset the connection, and a client still sending can see the reset before the
            // answer (a flaky HttpProtocolError under load). Ends at its length, or at the
            // last chunk (this probe's chunked bodies hold no "0\r\n\r\n" of their own).
            if path == "/post" {
                let length = header("content-length").parse::<usize>().ok();
                let mut body = Vec::new();
                while length.map_or(!body.ends_with(b"0\r\n\r\n"), |n| body.len() < n) {
                    match s.read(&mut byte).await {
                        Ok(1) => body.push(byte[0]),
                        _ => return,
                    }
                }
            }
            let close = path == "/close" || path == "/post";
            let body = format!(
                "upstream ok path={path} probe={} host={}",
                header("x-probe"),
                header("host")
            );
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{}\r\n{body}",
                body.len(),
                if close { "connection: close\r\n" } else { "" }
            );
            if s.write_all(resp.as_bytes()).await.is_err() {
                return;
            }
            if close {
                let _ = s.shutdown().await;
                return;
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

/// `spin up` writes each instance's stdout and stderr to `<state dir>/logs/<component>_<stream>.txt`
/// (spin `crates/trigger/src/cli/stdio.rs`): the host does the same work, per instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_stdio_goes_to_spins_log_files_per_instance() {
    let state = tempfile::tempdir().unwrap();
    let manifest = write_manifest(&[], &["default"]);
    let host = RunningHost::start(HostConfig {
        state_dir: Some(state.path().to_path_buf()),
        ..config(manifest, &[("tenant", "t9".into())])
    })
    .await
    .unwrap();
    for _ in 0..2 {
        get(&host, "/var?name=greeting").await;
    }
    assert!(host.wait_idle(Duration::from_secs(30)));
    let logs = state.path().join("logs");
    let read = |stream: &str| {
        std::fs::read_to_string(logs.join(format!("hostprobe_{stream}.txt"))).unwrap_or_default()
    };
    assert_eq!(
        read("stderr")
            .matches("probe: /var /var?name=greeting\n")
            .count(),
        2,
        "{}",
        read("stderr")
    );
    assert_eq!(read("stdout").matches("probe stdout line\n").count(), 2);
    // The collected log the tests read is unchanged.
    assert!(host.logs().contains("probe stdout line\n"));
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
    // Pooled like Spin's outbound HTTP: later requests (new instances) reuse the connection,
    // and a connection the server closed is not reused.
    assert_eq!(host.connections_opened(), 1);
    for _ in 0..3 {
        assert!(get(&host, "/out").await.starts_with("status=200"));
    }
    let connections = || {
        upstream
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(
        (host.connections_opened(), connections()),
        (1, 1),
        "keep-alive reused"
    );
    let url = format!("/out?url=http://upstream.test:{}/close", up.port());
    assert!(get(&host, &url).await.starts_with("status=200"));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(get(&host, "/out").await.starts_with("status=200"));
    assert_eq!(
        (host.connections_opened(), connections()),
        (2, 2),
        "closed one replaced"
    );
    let logs = host.logs();
    assert!(
        logs.contains("disallowed destination 'http://other.test:"),
        "{logs}"
    );
}

/// Body framing as Spin 3.6.3 does it: a body streamed without a `content-length` goes out
/// chunked (as Spin sent the Entra POST before the component set a length); with one, it goes
/// out with exactly that length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_bodies_are_framed_like_spin() {
    let upstream = Upstream::default();
    let (up, _task) = upstream.start_plain().await;
    let manifest = write_manifest(&["http://upstream.test:{{ up_port }}"], &[]);
    let host = RunningHost::start(config(manifest, &[("up_port", up.port().to_string())]))
        .await
        .unwrap();
    let authority = format!("upstream.test:{}", up.port());
    let header = |head: &str, name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    assert_eq!(
        get(&host, &format!("/post?authority={authority}")).await,
        "status=200"
    );
    let head = upstream.heads.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (
            header(&head, "transfer-encoding").as_deref(),
            header(&head, "content-length")
        ),
        (Some("chunked"), None),
        "{head}"
    );
    assert_eq!(
        get(&host, &format!("/post?authority={authority}&len=1")).await,
        "status=200"
    );
    let head = upstream.heads.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (
            header(&head, "transfer-encoding"),
            header(&head, "content-length").as_deref()
        ),
        (None, Some("37")),
        "{head}"
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

/// With `[[client_tls]]` in the runtime config, a listed host (any port) trusts that entry's
/// `ca_roots_file`, as in Spin; hosts it does not list, and entries for other components, fall
/// back to the default trust (`ca_pem`, standing in for Spin's public roots).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tls_trusts_ca_roots_file_for_its_hosts() {
    let (ca_pem, server_config) = test_ca(&["vault.test", "upstream.test"]);
    let upstream = Upstream::default();
    let (tls, _task) = upstream.start_tls(server_config).await;
    let manifest = write_manifest(&["https://*.test:*"], &[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
    let rc = dir.path().join("runtime-config.toml");
    std::fs::write(
        &rc,
        "[[client_tls]]\ncomponent_ids = [\"hostprobe\"]\nhosts = [\"vault.test\"]\nca_roots_file = \"ca.pem\"\n\n\
         [[client_tls]]\ncomponent_ids = [\"another-component\"]\nhosts = [\"upstream.test\"]\nca_roots_file = \"ca.pem\"\n",
    )
    .unwrap();
    let mut cfg = config(manifest.clone(), &[]);
    cfg.runtime_config = Some(rc.clone());
    let host = RunningHost::start(cfg).await.unwrap();
    let vault = format!("/out?url=https://vault.test:{}/x", tls.port());
    assert_eq!(
        get(&host, &vault).await,
        format!(
            "status=200 body=upstream ok path=/x probe=1 host=vault.test:{}",
            tls.port()
        )
    );
    let other = format!("/out?url=https://upstream.test:{}/x", tls.port());
    assert_eq!(
        get(&host, &other).await,
        "error=ErrorCode::TlsProtocolError"
    );

    // The default trust still applies to hosts the entries do not list.
    let mut cfg = config(manifest.clone(), &[]);
    cfg.runtime_config = Some(rc);
    cfg.ca_pem = Some(ca_pem);
    let host = RunningHost::start(cfg.clone()).await.unwrap();
    assert!(get(&host, &other).await.starts_with("status=200"));

    // The entry replaces the default for its hosts: a CA file that does not sign the server's
    // certificate makes the listed host fail even though `ca_pem` would trust it.
    let (unrelated_ca, _) = test_ca(&["vault.test"]);
    std::fs::write(dir.path().join("ca.pem"), unrelated_ca).unwrap();
    let host = RunningHost::start(cfg.clone()).await.unwrap();
    assert_eq!(
        get(&host, &vault).await,
        "error=ErrorCode::TlsProtocolError"
    );
    assert!(get(&host, &other).await.starts_with("status=200"));

    // A missing ca_roots_file stops the start, with Spin's reason.
    std::fs::remove_file(dir.path().join("ca.pem")).unwrap();
    let err = RunningHost::start(cfg).await.err().expect("must fail");
    let err = format!("{err:#}");
    assert!(
        err.starts_with("failed to parse [[client_tls]] table: failed to parse TLS config: failed to load certificate(s) from"),
        "{err}"
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
    // The trap is logged when the instance ends, which can be after the caller saw the break.
    assert!(tokio::task::block_in_place(
        || host.wait_idle(std::time::Duration::from_secs(5))
    ));
    let logs = host.logs();
    assert!(logs.contains("probe trap mid-stream"), "{logs}");
}
