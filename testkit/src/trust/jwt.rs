//! RS256 signing and verification of fake Entra tokens (RSA 2048, PKCS#1 v1.5, SHA-256),
//! base64url without padding, like Entra's JWS compact serialisation.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::sha2::Sha256;
use rsa::traits::PublicKeyParts;
use rsa::{PrivateKey, PublicKey};
use serde_json::{json, Value};

/// An RSA 2048 signing key with its key id (`kid` in the JWT header).
///
/// Every `Signer::new` makes a fresh key (about 40 ms at the workspace's dependency opt-level),
/// so two signers never share a key even with the same `kid`: a test can forge a token under a
/// trusted `kid` with another signer to prove signature checks.
pub struct Signer {
    kid: String,
    key: PrivateKey,
    verifier: Verifier,
    /// Every token signed, so tests can look for any of them where none may appear (logs).
    issued: std::sync::Mutex<Vec<String>>,
}

/// The public half of a [`Signer`].
#[derive(Clone)]
pub struct Verifier {
    kid: String,
    key: PublicKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier").field("kid", &self.kid).finish()
    }
}

impl Signer {
    pub fn new(kid: &str) -> Signer {
        let key = PrivateKey::new(&mut getrandom::SysRng, 2048).expect("RSA key generation");
        let verifier = Verifier {
            kid: kid.to_string(),
            key: key.to_public_key(),
        };
        Signer {
            kid: kid.to_string(),
            key,
            verifier,
            issued: std::sync::Mutex::default(),
        }
    }

    /// Every token this signer has signed so far.
    pub fn issued(&self) -> Vec<String> {
        self.issued.lock().unwrap().clone()
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` with header `{"alg":"RS256","typ":"JWT","kid":kid}`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        self.sign_with_header(&header, claims)
    }

    /// Signs with an arbitrary header (tests of malformed/unsupported headers).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).expect("header json")),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims json"))
        );
        let sig = self
            .key
            .pkcs1v15_sign::<Sha256>(signing_input.as_bytes())
            .expect("RS256 sign");
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig));
        self.issued.lock().unwrap().push(token.clone());
        token
    }

    pub fn verifier(&self) -> Verifier {
        self.verifier.clone()
    }

    /// The private key as PKCS#8 DER, to certify it (the fake ACR's `x5c` certificate).
    pub fn pkcs8_der(&self) -> Vec<u8> {
        use rsa::pkcs8::EncodePrivateKey;
        self.key
            .to_pkcs8_der()
            .expect("PKCS#8 encoding")
            .as_bytes()
            .to_vec()
    }
}

impl Verifier {
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key as a JWK (`kty`, `use`, `kid`, `n`, `e`), as published in Entra's JWKS.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(strip_zeros(&self.key.n().to_be_bytes())),
            "e": URL_SAFE_NO_PAD.encode(strip_zeros(&self.key.e().to_be_bytes())),
        })
    }

    fn verify_signature(&self, signing_input: &[u8], sig: &[u8]) -> bool {
        self.key
            .pkcs1v15_verify::<Sha256>(signing_input, sig)
            .is_ok()
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// Why a token was refused by [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url (unpadded) segments of JSON objects.
    Malformed(String),
    /// `alg` is not RS256 (or missing).
    UnsupportedAlg(String),
    /// No `kid`, or no verifier with that `kid`.
    UnknownKid(String),
    /// The signature does not verify with the key of that `kid`.
    BadSignature,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::Malformed(why) => write!(f, "malformed JWT: {why}"),
            JwtError::UnsupportedAlg(alg) => write!(f, "unsupported JWT alg {alg:?}"),
            JwtError::UnknownKid(kid) => write!(f, "unknown JWT kid {kid:?}"),
            JwtError::BadSignature => write!(f, "JWT signature does not verify"),
        }
    }
}

impl std::error::Error for JwtError {}

fn decode_segment(seg: &str, what: &str) -> Result<Value, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(seg)
        .map_err(|e| JwtError::Malformed(format!("{what}: {e}")))?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| JwtError::Malformed(format!("{what}: {e}")))?;
    if !v.is_object() {
        return Err(JwtError::Malformed(format!("{what} is not a JSON object")));
    }
    Ok(v)
}

/// The decoded JOSE header of a token (no verification).
pub fn decode_header(token: &str) -> Result<Value, JwtError> {
    let first = token
        .split('.')
        .next()
        .ok_or_else(|| JwtError::Malformed("empty".into()))?;
    decode_segment(first, "header")
}

/// Verifies the signature with the verifier whose kid matches; returns the claims.
/// Does NOT check time, issuer or audience: each fake does that as its service would.
pub fn verify(token: &str, keys: &[Verifier]) -> Result<Value, JwtError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(JwtError::Malformed(format!(
            "{} segments instead of 3",
            parts.len()
        )));
    }
    let header = decode_segment(parts[0], "header")?;
    let claims = decode_segment(parts[1], "claims")?;
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|e| JwtError::Malformed(format!("signature: {e}")))?;
    match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => {}
        other => {
            return Err(JwtError::UnsupportedAlg(
                other.unwrap_or("<none>").to_string(),
            ))
        }
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or_else(|| JwtError::UnknownKid("<none>".into()))?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| JwtError::UnknownKid(kid.to_string()))?;
    let signing_input_len = parts[0].len() + 1 + parts[1].len();
    if key.verify_signature(&token.as_bytes()[..signing_input_len], &sig) {
        Ok(claims)
    } else {
        Err(JwtError::BadSignature)
    }
}

/// Claims only, without any verification (for test assertions).
pub fn decode_unverified(token: &str) -> Option<Value> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return None;
    }
    decode_segment(parts[1], "claims").ok()
}

/// Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}
