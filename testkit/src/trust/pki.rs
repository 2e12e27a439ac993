//! Test CA and server certificates (rcgen), plus ready-made rustls server configs.
//!
//! Every `TestPki::new()` makes a fresh CA (ECDSA P-256). Leaf certificates carry the requested
//! DNS names and/or IP addresses as SANs, `serverAuth` EKU, and are valid from 2020 to 2099.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test certificate authority: its key and self-signed certificate.
pub struct TestPki {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
}

/// A leaf certificate (PEM) and its private key (PKCS#8 PEM).
#[derive(Clone, Debug)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A fresh CA per call.
    pub fn new() -> TestPki {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "tenant-bridge test CA");
        dn.push(DnType::OrganizationName, "tenant-bridge-testkit");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 12, 31);
        let key = KeyPair::generate().expect("generate CA key");
        let cert = params.self_signed(&key).expect("self-sign CA");
        TestPki {
            ca_pem: cert.pem(),
            ca_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// PEM of the CA certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// DER of the CA certificate.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// A leaf certificate for `names` (DNS names and/or IP literals such as "127.0.0.1").
    pub fn server_cert(&self, names: &[&str]) -> CertPair {
        let (cert, key) = self.issue(names);
        CertPair {
            cert_pem: pem_encode("CERTIFICATE", cert.as_ref()),
            key_pem: key.serialize_pem(),
        }
    }

    /// A rustls server config (ring provider, TLS 1.2 + 1.3, ALPN http/1.1) presenting a fresh
    /// leaf for `names` followed by the CA certificate.
    pub fn rustls_server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let (cert, key) = self.issue(names);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert, self.ca_der.clone()], key)
            .expect("server cert");
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    /// Writes `ca.pem` into `dir` and returns its path.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).expect("create dir for ca.pem");
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write ca.pem");
        path
    }

    fn issue(&self, names: &[&str]) -> (CertificateDer<'static>, KeyPair) {
        assert!(
            !names.is_empty(),
            "a server certificate needs at least one name"
        );
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).to_string().try_into().expect("valid DNS name")),
            })
            .collect();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0]);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 12, 31);
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        (cert.der().clone(), key)
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
