//! HTTPS for the producer's listener: a rustls server configuration (ring provider) from a
//! PEM certificate chain and private key, read once at start.

use std::{path::Path, sync::Arc};

use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key cannot be used; names the file, never shows key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate file cannot be read or holds no PEM certificate.
    #[error("cannot read the TLS certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key file cannot be read or holds no PEM private key.
    #[error("cannot read the TLS private key {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("unusable TLS certificate and key: {0}")]
    Config(rustls::Error),
}

impl From<rustls::Error> for Error {
    fn from(error: rustls::Error) -> Self {
        Self::Config(error)
    }
}

/// A TLS acceptor serving `cert` (a PEM chain, leaf first) with `key` (PEM, PKCS#8, PKCS#1
/// or SEC1), offering HTTP/1.1 by ALPN.
///
/// # Errors
/// [`Error`] naming the file that is missing, unreadable or holds no usable PEM.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, Error> {
    let certificate_error = |reason: String| Error::Certificate {
        path: cert.display().to_string(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| certificate_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| certificate_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(certificate_error("no PEM certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| Error::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
