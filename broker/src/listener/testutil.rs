//! Test helpers shared by the listener tests: an echo server on `127.0.0.1:0` and a throwaway
//! PKI generated with rcgen.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ListenerStats, PeerInfo, Transport, bind_all};
use crate::config::{ListenerConfig, ListenerKind, TlsConfig};

/// A listener named `test` on `127.0.0.1:0` with a 5 s connect timeout.
pub(super) fn listener_config(kind: ListenerKind, max_connections: usize) -> ListenerConfig {
    ListenerConfig {
        name: "test".to_owned(),
        kind,
        bind: "127.0.0.1:0".parse().unwrap(),
        max_connections,
        connect_timeout: Duration::from_secs(5),
        tls: None,
    }
}

/// A running listener whose handler records each peer and echoes bytes until EOF.
pub(super) struct TestServer {
    pub(super) addr: SocketAddr,
    pub(super) peers: Arc<Mutex<Vec<PeerInfo>>>,
    pub(super) stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
    serve: JoinHandle<()>,
}

impl TestServer {
    /// Cancels the listener and checks that its accept loop returns promptly.
    pub(super) async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.serve)
            .await
            .expect("accept loop did not stop")
            .unwrap();
    }
}

pub(super) async fn start(kind: ListenerKind, max_connections: usize) -> TestServer {
    start_with(listener_config(kind, max_connections)).await
}

pub(super) async fn start_tls(tls: TlsConfig) -> TestServer {
    let mut cfg = listener_config(ListenerKind::Tls, 0);
    cfg.tls = Some(tls);
    start_with(cfg).await
}

pub(super) async fn start_with(cfg: ListenerConfig) -> TestServer {
    let listener = bind_all(&[cfg]).await.unwrap().pop().unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let recorded = peers.clone();
    let handler = move |transport: Transport, peer: PeerInfo| {
        recorded.lock().unwrap().push(peer);
        async move {
            let (mut rd, mut wr) = tokio::io::split(transport);
            let _ = tokio::io::copy(&mut rd, &mut wr).await;
            let _ = wr.shutdown().await;
        }
    };
    let (addr, stats) = (listener.local_addr(), listener.stats());
    let shutdown = CancellationToken::new();
    let serve = tokio::spawn(listener.serve(handler, shutdown.clone(), TaskTracker::new()));
    TestServer {
        addr,
        peers,
        stats,
        shutdown,
        serve,
    }
}

/// Sends a line and expects it echoed back.
pub(super) async fn assert_echo<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    stream.write_all(b"ping\n").await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .expect("no echo")
        .unwrap();
    assert_eq!(&buf, b"ping\n");
}

/// True when the stream is closed or fails instead of echoing.
pub(super) async fn echo_fails<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> bool {
    if stream.write_all(b"ping\n").await.is_err() || stream.flush().await.is_err() {
        return true;
    }
    let mut buf = [0u8; 5];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("connection left hanging");
    matches!(read, Ok(0) | Err(_))
}

/// Polls `cond` every 10 ms for up to 5 s.
pub(super) async fn wait_until(cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A CA with a `localhost` server certificate, written as PEM files into a temporary directory
/// (removed on drop).
pub(super) struct TestPki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestPki {
    pub(super) fn new() -> Self {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "midge-listener-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Midge Test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();

        Self {
            dir,
            ca: ca.der().clone(),
            issuer,
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Server TLS settings, always with the CA as client CA bundle.
    pub(super) fn server_tls(&self, require_client_cert: bool) -> TlsConfig {
        TlsConfig {
            cert: self.dir.join("server.pem"),
            key: self.dir.join("server.key"),
            client_ca: Some(self.dir.join("ca.pem")),
            require_client_cert,
        }
    }

    /// A client certificate with subject `O=Acme, CN=<cn>` (in DER order) issued by the CA.
    pub(super) fn client_cert(
        &self,
        cn: &str,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // A fresh name: the default one already holds a CN, which would come first.
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (cert.der().clone(), key)
    }

    /// Connects to `addr` as a TLS client trusting the CA, with an optional client certificate.
    pub(super) async fn connect(
        &self,
        addr: SocketAddr,
        client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
            None => builder.with_no_client_auth(),
        };
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
