//! TLS for the `tls` and `wss` listeners: loading certificates and keys from PEM files into a
//! rustls [`ServerConfig`] (always with the `ring` provider, never the process default), the
//! server side of the handshake, and the subject of a verified client certificate.

use std::path::Path;
use std::sync::Arc;
use std::{fmt::Write as _, io};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use x509_parser::der_parser::asn1_rs::ToDer;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use super::ListenerError;
use crate::config::TlsConfig;

/// Builds the rustls server configuration for listener `name` from `tls`.
///
/// # Errors
///
/// [`ListenerError::Tls`] naming the file at fault when a PEM file cannot be read, holds no
/// certificate or key, or the key does not match the certificate; [`ListenerError::Config`] when
/// a client certificate is required but no CA bundle is configured.
pub(super) fn server_config(
    name: &str,
    tls: &TlsConfig,
) -> Result<Arc<ServerConfig>, ListenerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_err = |path: &Path, reason: String| ListenerError::Tls {
        name: name.to_owned(),
        path: path.to_owned(),
        reason,
    };

    let certs = load_certs(&tls.cert).map_err(|reason| tls_err(&tls.cert, reason))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| tls_err(&tls.key, format!("cannot read private key: {e}")))?;

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&tls.cert, e.to_string()))?;
    let builder = match &tls.client_ca {
        None if tls.require_client_cert => {
            return Err(ListenerError::Config {
                name: name.to_owned(),
                reason: "require-client-cert is set but no client-ca is configured".to_owned(),
            });
        }
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for ca in load_certs(ca_path).map_err(|reason| tls_err(ca_path, reason))? {
                roots
                    .add(ca)
                    .map_err(|e| tls_err(ca_path, format!("bad CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if tls.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| tls_err(ca_path, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_err(&tls.key, format!("certificate and key rejected: {e}")))?;
    Ok(Arc::new(config))
}

/// Reads every certificate in the PEM file at `path`; an empty file is an error.
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read certificates: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate found in PEM file".to_owned());
    }
    Ok(certs)
}

/// Runs the server side of the TLS handshake on `stream`.
///
/// Returns the stream and, when the client presented a certificate (which rustls has verified
/// against the CA bundle by then), its subject DN in RFC 4514 form.
pub(super) async fn accept(
    config: &Arc<ServerConfig>,
    stream: TcpStream,
) -> io::Result<(TlsStream<TcpStream>, Option<String>)> {
    let stream = TlsAcceptor::from(config.clone()).accept(stream).await?;
    let subject = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| subject_dn(leaf));
    Ok((stream, subject))
}

/// The subject of a DER certificate in RFC 4514 string form, e.g. `CN=client1,O=Acme`
/// (most specific RDN first, as OpenSSL's `-nameopt RFC2253` and mosquitto print it).
fn subject_dn(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert.as_ref()).ok()?;
    Some(rfc4514(cert.subject()))
}

/// Formats `name` per RFC 4514: RDNs in reverse order joined by `,`, multi-valued RDNs joined by
/// `+`, known attribute types by their short name, non-string values as `#` + hex of their DER encoding.
fn rfc4514(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut out = String::new();
    for (i, rdn) in name
        .iter()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match x509_parser::objects::oid2abbrev(attr.attr_type(), registry) {
                Ok(short) => out.push_str(short),
                Err(_) => out.push_str(&attr.attr_type().to_id_string()),
            }
            out.push('=');
            match attr.as_str() {
                Ok(value) => escape_value(value, &mut out),
                Err(_) => {
                    out.push('#');
                    for b in attr.attr_value().to_der_vec().unwrap_or_default() {
                        let _ = write!(out, "{b:02x}");
                    }
                }
            }
        }
    }
    out
}

/// Appends `value` to `out` with the escaping RFC 4514 §2.4 requires.
fn escape_value(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::testutil::{self, TestPki};

    #[test]
    fn escapes_special_characters() {
        let mut out = String::new();
        escape_value(" #a,b+c\"d\\e ", &mut out);
        assert_eq!(out, "\\ #a\\,b\\+c\\\"d\\\\e\\ ");
        let mut out = String::new();
        escape_value("#x", &mut out);
        assert_eq!(out, "\\#x");
    }

    #[test]
    fn subject_is_rfc4514() {
        let pki = TestPki::new();
        let (cert, _) = pki.client_cert("client1");
        assert_eq!(subject_dn(&cert).as_deref(), Some("CN=client1,O=Acme"));
    }

    #[test]
    fn bad_files_are_reported_with_their_path() {
        let pki = TestPki::new();
        let dir = pki.dir();
        let mut cfg = pki.server_tls(false);
        cfg.cert = dir.join("missing.pem");
        let err = server_config("l1", &cfg).unwrap_err();
        assert!(
            matches!(&err, ListenerError::Tls { path, .. } if *path == cfg.cert),
            "{err}"
        );

        let mut cfg = pki.server_tls(false);
        cfg.key = cfg.client_ca.clone().unwrap();
        let err = server_config("l1", &cfg).unwrap_err();
        assert!(
            matches!(&err, ListenerError::Tls { path, .. } if *path == cfg.key),
            "{err}"
        );

        let mut cfg = pki.server_tls(true);
        cfg.client_ca = None;
        assert!(matches!(
            server_config("l1", &cfg),
            Err(ListenerError::Config { .. })
        ));
    }

    #[tokio::test]
    async fn server_only_tls_carries_bytes() {
        let pki = TestPki::new();
        let server = testutil::start_tls(pki.server_tls(false)).await;
        let mut stream = pki.connect(server.addr, None).await.unwrap();
        testutil::assert_echo(&mut stream).await;
        let peer = server.peers.lock().unwrap()[0].clone();
        assert_eq!(peer.tls_subject, None);
        server.stop().await;
    }

    #[tokio::test]
    async fn required_client_cert_is_enforced_and_reported() {
        let pki = TestPki::new();
        let server = testutil::start_tls(pki.server_tls(true)).await;

        // TLS 1.3: the client finishes its side first, so the refusal may surface on first read.
        let refused = match pki.connect(server.addr, None).await {
            Err(_) => true,
            Ok(mut stream) => testutil::echo_fails(&mut stream).await,
        };
        assert!(refused, "a client without a certificate got through");
        assert!(server.peers.lock().unwrap().is_empty());

        let client = pki.client_cert("client1");
        let mut stream = pki.connect(server.addr, Some(client)).await.unwrap();
        testutil::assert_echo(&mut stream).await;
        let peer = server.peers.lock().unwrap()[0].clone();
        assert_eq!(peer.tls_subject.as_deref(), Some("CN=client1,O=Acme"));
        server.stop().await;
    }

    #[tokio::test]
    async fn optional_client_cert_allows_anonymous_clients() {
        let pki = TestPki::new();
        let server = testutil::start_tls(pki.server_tls(false)).await;
        let mut stream = pki.connect(server.addr, None).await.unwrap();
        testutil::assert_echo(&mut stream).await;
        let client = pki.client_cert("client2");
        let mut stream = pki.connect(server.addr, Some(client)).await.unwrap();
        testutil::assert_echo(&mut stream).await;
        let subjects: Vec<_> = server
            .peers
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.tls_subject.clone())
            .collect();
        assert_eq!(subjects, vec![None, Some("CN=client2,O=Acme".to_owned())]);
        server.stop().await;
    }

    #[tokio::test]
    async fn connect_deadline_cuts_off_a_stalled_handshake() {
        let pki = TestPki::new();
        let mut cfg = testutil::listener_config(crate::config::ListenerKind::Tls, 0);
        cfg.tls = Some(pki.server_tls(false));
        cfg.connect_timeout = std::time::Duration::from_millis(200);
        let server = testutil::start_with(cfg).await;

        // Open TCP but never send a ClientHello.
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let started = tokio::time::Instant::now();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
        )
        .await
        .expect("stalled handshake was not cut off");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(150));
        testutil::wait_until(|| server.stats.current() == 0).await;
        assert!(server.peers.lock().unwrap().is_empty());
        server.stop().await;
    }
}
