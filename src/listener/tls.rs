//! TLS for the listener: the certificate chain and key from PEM files, and
//! the protocols offered by ALPN — `h2` first, so browsers multiplex their
//! event streams and commands on one connection, then `http/1.1` (WebSocket
//! clients: the runtime, and browsers without RFC 8441, which is not
//! enabled here). The handshake runs in the connection's task, under the
//! header timeout.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// An acceptor for the certificate chain in `cert` and the key in `key`.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("cannot read the TLS certificate chain {cert:?}"))?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in {cert:?}");
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("cannot read the TLS private key {key:?}"))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not make a usable pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
