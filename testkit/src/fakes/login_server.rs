//! A registry login server as ACR presents one: `https://<name>.azurecr.io` serving the token
//! service (the strict fake, `acr.rs`) and the registry API (the real distribution registry,
//! `registry.rs`) on one origin (`front.rs`), with the test CA's certificate for the name. Go
//! clients reach the name through `proxy` (`connect_proxy.rs`); the component's host and reqwest
//! map it to 127.0.0.1 themselves. Everything stops when dropped.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::fakes::acr::{AcrConfig, FakeAcr};
use crate::fakes::oci::Image;
use crate::launchers::registry::{Registry, RegistryConfig};
use crate::net::connect_proxy::ConnectProxy;
use crate::net::front::{Front, Route};
use crate::trust::pki::TestPki;

/// Who seeds images (the subject of the push tokens the fake mints for the tests).
pub const SEEDER: &str = "registry-owner";

pub struct LoginServer {
    pub acr: FakeAcr,
    pub registry: Registry,
    front: Front,
    proxy: ConnectProxy,
    host: String,
    client: reqwest::Client,
}

impl LoginServer {
    /// Starts the fake token service, the registry trusting its tokens, the front for
    /// `cfg.login_server` and the CONNECT proxy.
    pub async fn start(pki: &TestPki, cfg: AcrConfig) -> LoginServer {
        let host = cfg.login_server.clone();
        let acr = FakeAcr::start(cfg).await;
        // The front's port is part of the realm the registry announces: bind it first.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the login server front");
        let port = listener.local_addr().expect("front address").port();
        let registry = Registry::start(&RegistryConfig {
            realm: format!("https://{host}:{port}/oauth2/token"),
            service: host.clone(),
            issuer: acr.issuer().to_string(),
            root_cert_pem: acr.access_cert_pem(),
        })
        .await;
        let front = Front::start(
            listener,
            pki.rustls_server_config(&[host.as_str()]),
            vec![
                Route {
                    prefix: "/oauth2/",
                    upstream: acr.addr(),
                },
                Route {
                    prefix: "/v2/",
                    upstream: registry.addr(),
                },
            ],
        );
        let proxy =
            ConnectProxy::start(HashMap::from([(format!("{host}:{port}"), front.addr())])).await;
        let client =
            crate::fakes::http::client_trusting(&pki.ca_pem(), &[(host.as_str(), front.addr())]);
        LoginServer {
            acr,
            registry,
            front,
            proxy,
            host,
            client,
        }
    }

    /// The login server's name, e.g. "hubregistry.azurecr.io".
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `name:port`: how callers and clients name this login server.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.front.port())
    }

    /// `https://name:port`
    pub fn origin(&self) -> String {
        format!("https://{}", self.authority())
    }

    pub fn port(&self) -> u16 {
        self.front.port()
    }

    /// Where the name must resolve to.
    pub fn addr(&self) -> SocketAddr {
        self.front.addr()
    }

    /// The CONNECT proxy for Go clients (`HTTPS_PROXY`).
    pub fn proxy(&self) -> &ConnectProxy {
        &self.proxy
    }

    /// A reqwest client trusting the test CA that resolves the name to the front.
    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// Pushes `image` as `repository:tag` with a push token the fake mints for [`SEEDER`].
    pub async fn seed(&self, repository: &str, tag: &str, image: &Image) {
        let token = self
            .acr
            .mint_access_token(SEEDER, &[(repository, "pull,push")]);
        image
            .push(&self.client, &self.origin(), repository, tag, &token)
            .await;
    }
}
