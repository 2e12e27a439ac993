//! A minimal OCI image — a config blob, one uncompressed tar layer holding one file, and the
//! manifest — pushed through the registry API as any client pushes: `POST /v2/<name>/blobs/uploads/`,
//! `PUT <location>&digest=…` for each blob, then `PUT /v2/<name>/manifests/<tag>`.

use rsa::sha2::{Digest, Sha256};
use serde_json::json;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A one-file POSIX (ustar) archive.
pub fn tar(name: &str, content: &[u8]) -> Vec<u8> {
    assert!(name.len() < 100, "short names only");
    let mut header = [0u8; 512];
    let mut put = |at: usize, bytes: &[u8]| header[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", content.len()).as_bytes());
    put(136, b"00000000000\0");
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// The parts of an image, with their digests.
#[derive(Clone, Debug)]
pub struct Image {
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl Image {
    /// An image whose only layer holds `file` with `content`.
    pub fn new(file: &str, content: &[u8]) -> Image {
        let layer = tar(file, content);
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"org.opencontainers.image.title": file}},
            "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
        }))
        .expect("config json");
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest(&config), "size": config.len()},
            "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": digest(&layer), "size": layer.len()}],
        }))
        .expect("manifest json");
        Image {
            config,
            layer,
            manifest,
        }
    }

    pub fn manifest_digest(&self) -> String {
        digest(&self.manifest)
    }

    pub fn layer_digest(&self) -> String {
        digest(&self.layer)
    }

    /// Pushes to `origin` (`https://host:port`) as `repository:tag` with a bearer token that
    /// allows `push` there; panics with the registry's answer on any refusal.
    pub async fn push(
        &self,
        client: &reqwest::Client,
        origin: &str,
        repository: &str,
        tag: &str,
        token: &str,
    ) {
        for blob in [&self.config, &self.layer] {
            let res = client
                .post(format!("{origin}/v2/{repository}/blobs/uploads/"))
                .bearer_auth(token)
                .header("content-length", "0")
                .send()
                .await
                .expect("start blob upload");
            let status = res.status().as_u16();
            let location = res
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = res.text().await.unwrap_or_default();
            let Some(location) = location.filter(|_| status == 202) else {
                panic!("blob upload to {repository}: {status} {body}");
            };
            let url = if location.starts_with('/') {
                format!("{origin}{location}")
            } else {
                location
            };
            let sep = if url.contains('?') { '&' } else { '?' };
            let res = client
                .put(format!("{url}{sep}digest={}", digest(blob)))
                .bearer_auth(token)
                .header("content-type", "application/octet-stream")
                .body(blob.clone())
                .send()
                .await
                .expect("finish blob upload");
            let status = res.status().as_u16();
            let body = res.text().await.unwrap_or_default();
            assert_eq!(status, 201, "blob upload to {repository}: {body}");
        }
        let res = client
            .put(format!("{origin}/v2/{repository}/manifests/{tag}"))
            .bearer_auth(token)
            .header("content-type", MANIFEST_MEDIA_TYPE)
            .body(self.manifest.clone())
            .send()
            .await
            .expect("put manifest");
        let status = res.status().as_u16();
        let echoed = res
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = res.text().await.unwrap_or_default();
        assert_eq!(status, 201, "manifest of {repository}:{tag}: {body}");
        assert_eq!(echoed, Some(self.manifest_digest()), "manifest digest");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_carry_a_valid_checksum() {
        let t = tar("hello.txt", b"hello\n");
        assert_eq!(t.len(), 512 + 512 + 1024);
        let stored = u32::from_str_radix(
            std::str::from_utf8(&t[148..154])
                .unwrap()
                .trim_end_matches('\0'),
            8,
        )
        .unwrap();
        let mut header = t[..512].to_vec();
        header[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, header.iter().map(|&b| u32::from(b)).sum::<u32>());
        assert_eq!(&t[124..136], b"00000000006\0");
    }

    #[test]
    fn digests_are_sha256() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
