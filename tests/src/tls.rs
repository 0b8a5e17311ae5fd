//! [`TestCerts`]: a throwaway CA, a server certificate for `127.0.0.1`/`localhost` and a client
//! certificate, written as PEM files for the broker's config and kept in memory for clients.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::tempdir::TempDir;

/// Certificates for one test, in a directory that is removed with them.
#[derive(Debug)]
pub struct TestCerts {
    /// The CA certificate (PEM) that signed the others.
    pub ca_cert: PathBuf,
    /// The server certificate (PEM), valid for `127.0.0.1` and `localhost`.
    pub server_cert: PathBuf,
    /// The server's private key (PKCS#8 PEM).
    pub server_key: PathBuf,
    /// A client certificate (PEM) with the client-auth usage, common name `midge-test-client`.
    pub client_cert: PathBuf,
    /// The client's private key (PKCS#8 PEM).
    pub client_key: PathBuf,
    ca_der: CertificateDer<'static>,
    client_der: CertificateDer<'static>,
    client_key_der: Vec<u8>,
    _dir: TempDir,
}

impl TestCerts {
    /// Generates the CA and both certificates.
    ///
    /// # Panics
    ///
    /// If generation fails (it does not, for these fixed parameters).
    pub fn generate() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "midge test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        server_params
            .distinguished_name
            .push(DnType::CommonName, "midge test server");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server_params
            .signed_by(&server_key, &issuer)
            .expect("server certificate");

        let client_key = KeyPair::generate().expect("client key");
        let mut client_params =
            CertificateParams::new(Vec::<String>::new()).expect("client params");
        client_params
            .distinguished_name
            .push(DnType::CommonName, "midge-test-client");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params
            .signed_by(&client_key, &issuer)
            .expect("client certificate");

        let dir = TempDir::new();
        TestCerts {
            ca_cert: dir.write("ca.pem", ca.pem()),
            server_cert: dir.write("server.pem", server.pem()),
            server_key: dir.write("server.key", server_key.serialize_pem()),
            client_cert: dir.write("client.pem", client.pem()),
            client_key: dir.write("client.key", client_key.serialize_pem()),
            ca_der: ca.der().clone(),
            client_der: client.der().clone(),
            client_key_der: client_key.serialize_der(),
            _dir: dir,
        }
    }

    /// A rustls client config (ring provider) that trusts only the test CA and, if
    /// `with_client_cert`, presents the client certificate.
    ///
    /// # Panics
    ///
    /// If rustls rejects the generated material.
    pub fn client_config(&self, with_client_cert: bool) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .expect("the test CA is a valid trust anchor");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots);
        let config = if with_client_cert {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.client_key_der.clone()));
            builder
                .with_client_auth_cert(vec![self.client_der.clone()], key)
                .expect("a valid client certificate and key")
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(config)
    }
}
