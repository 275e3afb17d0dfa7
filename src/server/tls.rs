//! HTTPS on the main listener: rustls with ALPN h2 and http/1.1. The acceptor sits in an
//! `ArcSwap` so SIGHUP can load a rotated certificate without a restart; connections
//! already open keep the one they were accepted with.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// The current TLS acceptor, replaceable at run time.
#[derive(Clone)]
pub struct TlsAcceptorCell {
    inner: Arc<ArcSwap<TlsAcceptor>>,
}

impl TlsAcceptorCell {
    /// Loads the certificate and key.
    pub fn load(files: &TlsFiles) -> Result<Self, String> {
        Ok(TlsAcceptorCell {
            inner: Arc::new(ArcSwap::from_pointee(acceptor(files)?)),
        })
    }

    /// The acceptor for a new connection.
    pub fn current(&self) -> TlsAcceptor {
        TlsAcceptor::clone(&self.inner.load())
    }

    /// Re-reads the files; on failure the running certificate stays.
    pub fn reload(&self, files: &TlsFiles) -> Result<(), String> {
        self.inner.store(Arc::new(acceptor(files)?));
        Ok(())
    }
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let cert_pem = std::fs::read(&files.cert).map_err(|err| {
        format!(
            "server.tls_cert: cannot read {}: {err}",
            files.cert.display()
        )
    })?;
    let key_pem = std::fs::read(&files.key)
        .map_err(|err| format!("server.tls_key: cannot read {}: {err}", files.key.display()))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            format!(
                "server.tls_cert: {} is not a PEM certificate chain: {err}",
                files.cert.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "server.tls_cert: {} holds no certificate",
            files.cert.display()
        ));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|err| {
            format!(
                "server.tls_key: {} is not a PEM private key: {err}",
                files.key.display()
            )
        })?
        .ok_or_else(|| {
            format!(
                "server.tls_key: {} holds no private key",
                files.key.display()
            )
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("tls: {err}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| format!("server.tls_key: the key does not fit the certificate: {err}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
