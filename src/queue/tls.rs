//! Redis over TLS: which roots a `rediss://` connection trusts and which
//! client certificate it shows (mutual TLS), read once at start-up so that a
//! bad file stops the service with its name rather than failing each
//! connection later.
//!
//! A `rediss://` connection trusts the platform's roots (the system's
//! certificate store, as `openssl` and `curl` do) and, besides them, the
//! authorities of `CODE_RUNNER_REDIS_CA_FILE`: a managed Redis's private CA,
//! or a self-signed server's own certificate.

use std::path::Path;

use base64::Engine;
use bullmq::options::TlsCerts;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The files naming a Redis connection's TLS material.
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsFiles<'a> {
    /// Authorities trusted besides the platform's roots (PEM).
    pub ca_file: Option<&'a Path>,
    /// The client certificate chain (PEM), for mutual TLS.
    pub client_cert: Option<&'a Path>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<&'a Path>,
}

/// The certificates a connection to `url` uses: `None` for a plain
/// `redis://` connection, else the roots (platform + CA file) and the client
/// certificate. Errors name the setting at fault.
pub fn load(url: &str, files: TlsFiles<'_>) -> Result<Option<TlsCerts>, String> {
    let tls = url::Url::parse(url)
        .map(|u| u.scheme() == "rediss")
        .unwrap_or(false);
    if !tls {
        let set: Vec<&str> = [
            ("CODE_RUNNER_REDIS_CA_FILE", files.ca_file),
            ("CODE_RUNNER_REDIS_CLIENT_CERT", files.client_cert),
            ("CODE_RUNNER_REDIS_CLIENT_KEY", files.client_key),
        ]
        .iter()
        .filter(|(_, f)| f.is_some())
        .map(|(name, _)| *name)
        .collect();
        if !set.is_empty() {
            return Err(format!(
                "{} set, but CODE_RUNNER_REDIS_URL is not a rediss:// (TLS) URL",
                set.join(" and ")
            ));
        }
        return Ok(None);
    }
    let mut roots = platform_roots();
    if let Some(path) = files.ca_file {
        let pem = read(path, "CODE_RUNNER_REDIS_CA_FILE")?;
        let count = certificates(&pem, path, "CODE_RUNNER_REDIS_CA_FILE")?;
        if count == 0 {
            return Err(format!(
                "CODE_RUNNER_REDIS_CA_FILE ({}) holds no PEM certificate",
                path.display()
            ));
        }
        roots.push(b'\n');
        roots.extend_from_slice(&pem);
    }
    let (client_cert, client_key) = match (files.client_cert, files.client_key) {
        (None, None) => (None, None),
        (Some(_), None) => {
            return Err("CODE_RUNNER_REDIS_CLIENT_CERT is set without \
                        CODE_RUNNER_REDIS_CLIENT_KEY (mutual TLS needs both)"
                .to_string());
        }
        (None, Some(_)) => {
            return Err("CODE_RUNNER_REDIS_CLIENT_KEY is set without \
                        CODE_RUNNER_REDIS_CLIENT_CERT (mutual TLS needs both)"
                .to_string());
        }
        (Some(cert_path), Some(key_path)) => {
            let cert = read(cert_path, "CODE_RUNNER_REDIS_CLIENT_CERT")?;
            if certificates(&cert, cert_path, "CODE_RUNNER_REDIS_CLIENT_CERT")? == 0 {
                return Err(format!(
                    "CODE_RUNNER_REDIS_CLIENT_CERT ({}) holds no PEM certificate",
                    cert_path.display()
                ));
            }
            let key = read(key_path, "CODE_RUNNER_REDIS_CLIENT_KEY")?;
            PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
                format!(
                    "CODE_RUNNER_REDIS_CLIENT_KEY ({}) holds no PEM private key: {e}",
                    key_path.display()
                )
            })?;
            (Some(cert), Some(key))
        }
    };
    Ok(Some(TlsCerts {
        // With no root at all (a machine without a certificate store and no
        // CA file) the Redis client falls back to its built-in webpki roots.
        root_cert: (!roots.is_empty()).then_some(roots),
        client_cert,
        client_key,
    }))
}

/// The same certificates for a connection the service opens itself with
/// the `redis` crate (the cancellation subscriber).
pub fn redis_certificates(certs: &TlsCerts) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: match (&certs.client_cert, &certs.client_key) {
            (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
                client_cert: client_cert.clone(),
                client_key: client_key.clone(),
            }),
            _ => None,
        },
        root_cert: certs.root_cert.clone(),
    }
}

fn read(path: &Path, setting: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{setting} ({}): {e}", path.display()))
}

/// How many PEM certificates `pem` holds; an error for a malformed one.
fn certificates(pem: &[u8], path: &Path, setting: &str) -> Result<usize, String> {
    CertificateDer::pem_slice_iter(pem)
        .try_fold(0, |n, cert| cert.map(|_| n + 1))
        .map_err(|e| format!("{setting} ({}): {e}", path.display()))
}

/// The platform's trusted roots as one PEM bundle (empty when the machine
/// has none). Certificates the store holds but cannot parse are skipped, as
/// `openssl` does.
fn platform_roots() -> Vec<u8> {
    let found = rustls_native_certs::load_native_certs();
    let mut pem = Vec::new();
    for cert in found.certs {
        let body = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_url_refuses_tls_files() {
        let files = TlsFiles {
            ca_file: Some(Path::new("/nonexistent/ca.pem")),
            ..Default::default()
        };
        let err = load("redis://127.0.0.1:6379", files).unwrap_err();
        assert!(err.contains("CODE_RUNNER_REDIS_CA_FILE"), "{err}");
        assert!(
            load("redis://127.0.0.1:6379", TlsFiles::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn half_a_client_certificate_is_refused() {
        let files = TlsFiles {
            client_cert: Some(Path::new("/nonexistent/cert.pem")),
            ..Default::default()
        };
        let err = load("rediss://127.0.0.1:6380", files).unwrap_err();
        assert!(err.contains("CODE_RUNNER_REDIS_CLIENT_KEY"), "{err}");
    }

    #[test]
    fn missing_or_empty_ca_file_is_named() {
        let files = TlsFiles {
            ca_file: Some(Path::new("/nonexistent/ca.pem")),
            ..Default::default()
        };
        let err = load("rediss://127.0.0.1:6380", files).unwrap_err();
        assert!(
            err.contains("CODE_RUNNER_REDIS_CA_FILE (/nonexistent/ca.pem)"),
            "{err}"
        );
        let empty = std::env::temp_dir().join(format!("empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let files = TlsFiles {
            ca_file: Some(&empty),
            ..Default::default()
        };
        let err = load("rediss://127.0.0.1:6380", files).unwrap_err();
        std::fs::remove_file(&empty).ok();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }
}
