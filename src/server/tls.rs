//! HTTPS on the main listener: rustls with ALPN h2 and http/1.1. The acceptor sits in an
//! `ArcSwap` so SIGHUP can load a rotated certificate without a restart; connections
//! already open keep the one they were accepted with. Certificates and keys are read as
//! PEM with `rustls-pki-types`; the crypto provider is aws-lc-rs.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::{Problem, TlsFiles};

/// The current TLS acceptor, replaceable at run time.
#[derive(Clone)]
pub struct TlsAcceptorCell {
    inner: Arc<ArcSwap<TlsAcceptor>>,
}

impl TlsAcceptorCell {
    /// Loads the certificate and key.
    pub fn load(files: &TlsFiles) -> Result<Self, String> {
        Ok(TlsAcceptorCell {
            inner: Arc::new(ArcSwap::from_pointee(
                acceptor(files).map_err(|p| p.to_string())?,
            )),
        })
    }

    /// The acceptor for a new connection.
    pub fn current(&self) -> TlsAcceptor {
        TlsAcceptor::clone(&self.inner.load())
    }

    /// Re-reads the files; on failure the running certificate stays.
    pub fn reload(&self, files: &TlsFiles) -> Result<(), String> {
        self.inner
            .store(Arc::new(acceptor(files).map_err(|p| p.to_string())?));
        Ok(())
    }
}

/// What `serve` would refuse about these files (the shared config loader runs this, so
/// `check-config` and reload refuse the same), naming `server.tls_cert` or `server.tls_key`.
pub fn check(files: &TlsFiles) -> Result<(), Problem> {
    acceptor(files).map(|_| ())
}

fn problem(path: &str, problem: String) -> Problem {
    Problem {
        path: path.to_string(),
        problem,
    }
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, Problem> {
    let cert_pem = std::fs::read(&files.cert).map_err(|err| {
        problem(
            "server.tls_cert",
            format!("cannot read {}: {err}", files.cert.display()),
        )
    })?;
    let key_pem = std::fs::read(&files.key).map_err(|err| {
        problem(
            "server.tls_key",
            format!("cannot read {}: {err}", files.key.display()),
        )
    })?;
    // PEM through rustls-pki-types' `PemObject` (rustls-pemfile is unmaintained,
    // RUSTSEC-2025-0134). Sections of other kinds are skipped, as before.
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            problem(
                "server.tls_cert",
                format!(
                    "{} is not a PEM certificate chain: {err}",
                    files.cert.display()
                ),
            )
        })?;
    if certs.is_empty() {
        return Err(problem(
            "server.tls_cert",
            format!("{} holds no certificate", files.cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| {
        problem(
            "server.tls_key",
            match err {
                pem::Error::NoItemsFound => {
                    format!("{} holds no private key", files.key.display())
                }
                err => format!("{} is not a PEM private key: {err}", files.key.display()),
            },
        )
    })?;
    // aws-lc-rs: the same crypto library jsonwebtoken signs tokens with.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| problem("server.tls_cert", format!("tls: {err}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| {
            problem(
                "server.tls_key",
                format!("the key does not fit the certificate: {err}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &tempfile::TempDir, cert: &[u8], key: &[u8]) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::write(&files.cert, cert).expect("write cert");
        std::fs::write(&files.key, key).expect("write key");
        files
    }

    fn generated() -> (String, String) {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }

    fn refusal(files: &TlsFiles) -> String {
        match TlsAcceptorCell::load(files) {
            Ok(_) => panic!("loaded"),
            Err(err) => err,
        }
    }

    #[test]
    fn a_generated_pair_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = generated();
        assert!(TlsAcceptorCell::load(&files(&dir, cert.as_bytes(), key.as_bytes())).is_ok());
    }

    #[test]
    fn missing_empty_and_garbled_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = generated();

        let mut missing = files(&dir, cert.as_bytes(), key.as_bytes());
        missing.cert = dir.path().join("absent.pem");
        let err = refusal(&missing);
        assert!(err.starts_with("server.tls_cert: cannot read "), "{err}");
        assert!(err.contains("absent.pem"), "{err}");

        let err = refusal(&files(&dir, b"not pem at all\n", key.as_bytes()));
        assert!(err.starts_with("server.tls_cert: "), "{err}");
        assert!(err.contains("cert.pem holds no certificate"), "{err}");

        let truncated = &cert[..cert.len() / 2];
        let err = refusal(&files(&dir, truncated.as_bytes(), key.as_bytes()));
        assert!(
            err.contains("cert.pem is not a PEM certificate chain"),
            "{err}"
        );

        // The certificate where the key should be: no private key in it.
        let err = refusal(&files(&dir, cert.as_bytes(), cert.as_bytes()));
        assert!(err.starts_with("server.tls_key: "), "{err}");
        assert!(err.contains("key.pem holds no private key"), "{err}");

        let truncated = &key[..key.len() / 2];
        let err = refusal(&files(&dir, cert.as_bytes(), truncated.as_bytes()));
        assert!(err.contains("key.pem is not a PEM private key"), "{err}");

        let (_, other_key) = generated();
        let err = refusal(&files(&dir, cert.as_bytes(), other_key.as_bytes()));
        assert!(
            err.contains("the key does not fit the certificate"),
            "{err}"
        );
    }
}
