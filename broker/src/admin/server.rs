//! The admin gRPC server: bind (fatal or not, see [`AdminConfig::explicit`]), TLS, the bearer
//! token, health, reflection, and the stop with a short grace for open streams.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use midge_proto::admin::v1::broker_admin_server::BrokerAdminServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Status};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{debug, error, info, warn};

use super::service::AdminService;
use super::{Phase, Runtime};
use crate::config::{AdminConfig, AdminToken, TlsConfig, check_token};
use crate::context::BrokerContext;

/// How long open calls (a health `Watch`, a `WatchEvents` tail) may go on once the broker has
/// stopped, before the connections are closed.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// How often plugin states are sampled, so that their `state_since` is within this of the
/// change.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Why the admin server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address could not be bound.
    #[error("admin API: cannot listen on {addr}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A TLS file could not be read or was rejected.
    #[error("admin API: TLS file {}: {reason}", path.display())]
    Tls {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The token file could not be read or holds no usable token.
    #[error("admin API: token file {}: {reason}", path.display())]
    Token {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The admin server, bound and ready to [`serve`](BoundAdmin::serve).
#[derive(Debug)]
pub(crate) struct BoundAdmin {
    listener: TcpListener,
    local_addr: SocketAddr,
    token: Option<Arc<str>>,
    tls: Option<ServerTlsConfig>,
}

/// Binds the admin server of `config`, with its token and TLS material loaded. `Ok(None)` when
/// it is disabled, or when the built-in default address is busy (logged as an error: the
/// broker runs without admin API); a bind failure of an `admin` section written in the config
/// file is an error.
///
/// # Errors
///
/// An unreadable token file or TLS file, or (for an explicit section) a failed bind.
pub(crate) async fn bind(config: &AdminConfig) -> Result<Option<BoundAdmin>, AdminError> {
    if !config.enable {
        return Ok(None);
    }
    let token = match &config.token {
        None => None,
        Some(AdminToken::Inline(token)) => Some(Arc::from(token.as_str())),
        Some(AdminToken::File(path)) => Some(read_token(path)?),
    };
    let tls = config.tls.as_ref().map(tls_config).transpose()?;
    let listener = match TcpListener::bind(config.bind).await {
        Ok(listener) => listener,
        Err(source) if !config.explicit => {
            error!(addr = %config.bind, error = %source,
                "admin API not started: cannot listen on its default address (write an `admin` section to choose another)");
            return Ok(None);
        }
        Err(source) => {
            return Err(AdminError::Bind {
                addr: config.bind,
                source,
            });
        }
    };
    let local_addr = listener.local_addr().map_err(|source| AdminError::Bind {
        addr: config.bind,
        source,
    })?;
    if !local_addr.ip().is_loopback() && token.is_none() && tls.is_none() {
        warn!(addr = %local_addr, "admin API reachable from other hosts without token or TLS");
    }
    Ok(Some(BoundAdmin {
        listener,
        local_addr,
        token,
        tls,
    }))
}

fn read_token(path: &PathBuf) -> Result<Arc<str>, AdminError> {
    let error = |reason: String| AdminError::Token {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let token = text.trim();
    check_token(token).map_err(error)?;
    Ok(Arc::from(token))
}

fn tls_config(tls: &TlsConfig) -> Result<ServerTlsConfig, AdminError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| AdminError::Tls {
            path: path.clone(),
            reason: e.to_string(),
        })
    };
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
    if let Some(ca) = &tls.client_ca {
        config = config
            .client_ca_root(Certificate::from_pem(read(ca)?))
            .client_auth_optional(!tls.require_client_cert);
    }
    Ok(config)
}

impl BoundAdmin {
    /// Serves until `stop` (plus a short grace for open streams). Health follows the broker:
    /// NOT_SERVING until [`Runtime::listeners_bound`], SERVING until `drain` is cancelled (the
    /// broker's shutdown begins), NOT_SERVING after. Errors are logged: the admin API failing
    /// does not stop the broker.
    pub(crate) async fn serve(
        self,
        ctx: Arc<BrokerContext>,
        runtime: Arc<Runtime>,
        drain: CancellationToken,
        stop: CancellationToken,
    ) {
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::NotServing).await;

        let auth = RequireToken(self.token.clone());
        let mut routes = RoutesBuilder::default();
        let admin = AdminService::new(ctx.clone(), runtime.clone(), stop.clone());
        routes.add_service(BrokerAdminServer::with_interceptor(admin, auth.clone()));
        routes.add_service(health_service);
        add_reflection(&mut routes, &auth);

        let tls = self.tls.is_some();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = self.tls {
            builder = match builder.tls_config(tls) {
                Ok(builder) => builder,
                Err(err) => {
                    error!(error = %err, "admin API not started: bad TLS material");
                    return;
                }
            };
        }
        let incoming = TcpListenerStream::new(self.listener);
        info!(addr = %self.local_addr, tls, token = self.token.is_some(), "admin listening");
        let server = builder
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
        let server = async {
            tokio::select! {
                result = server => if let Err(err) = result {
                    error!(error = %err, "admin API failed");
                },
                () = async { stop.cancelled().await; tokio::time::sleep(STOP_GRACE).await } => {
                    debug!("admin API: open calls outlived the grace; closing connections");
                }
            }
        };
        tokio::join!(
            server,
            follow_phase(&runtime, &health, &drain, &stop),
            sample_plugins(&ctx, &runtime, &stop),
        );
        info!("admin API stopped");
    }
}

/// Sets the overall status and `BrokerAdmin`'s.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health
        .set_service_status(midge_proto::service_names::BROKER_ADMIN, status)
        .await;
}

/// Turns health SERVING when the broker serves and NOT_SERVING when `drain` is cancelled.
async fn follow_phase(
    runtime: &Runtime,
    health: &HealthReporter,
    drain: &CancellationToken,
    stop: &CancellationToken,
) {
    let mut phase = runtime.watch_phase();
    loop {
        let now = *phase.borrow_and_update();
        let status = match now {
            Phase::Serving if !drain.is_cancelled() => ServingStatus::Serving,
            _ => ServingStatus::NotServing,
        };
        set_health(health, status).await;
        if drain.is_cancelled() {
            runtime.set_phase(Phase::Draining);
            info!("admin API: health NOT_SERVING, broker shutting down");
            return;
        }
        // Biased: when drain and stop are both cancelled by the time this runs (a fast
        // shutdown on a busy machine), NOT_SERVING is still announced before returning.
        tokio::select! {
            biased;
            () = drain.cancelled() => {}
            changed = phase.changed() => if changed.is_err() { return },
            () = stop.cancelled() => return,
        }
    }
}

/// Samples plugin states every [`SAMPLE_INTERVAL`] until `stop`.
async fn sample_plugins(ctx: &BrokerContext, runtime: &Runtime, stop: &CancellationToken) {
    if ctx.plugins.plugins().is_empty() {
        return;
    }
    let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {
                runtime.observe_plugins(ctx);
            }
        }
    }
}

/// Checks `authorization: Bearer TOKEN` on every call of the services it wraps (all but
/// health), in constant time; no token configured lets every call through.
#[derive(Clone)]
struct RequireToken(Option<Arc<str>>);

impl tonic::service::Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.0 else {
            return Ok(request);
        };
        let Some(value) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "this admin API needs a token: send the metadata `authorization: Bearer TOKEN`",
            ));
        };
        let given = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("invalid admin token"))
        }
    }
}

/// Compares without an early exit on the first differing byte (the length is not secret),
/// by `subtle`.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.ct_eq(b))
}

/// Adds reflection v1 and v1alpha (older `grpcurl` only speak v1alpha), listing exactly the
/// services this server has, behind the token like `BrokerAdmin`.
fn add_reflection(routes: &mut RoutesBuilder, auth: &RequireToken) {
    let builder = || midge_proto::reflection::builder([midge_proto::service_names::BROKER_ADMIN]);
    // The descriptor sets are compiled in and known to be valid; a failure is a bug, which
    // leaves reflection out rather than taking the admin API down.
    match builder().build_v1() {
        Ok(service) => {
            routes.add_service(InterceptedService::new(service, auth.clone()));
        }
        Err(err) => error!(error = %err, "admin API: reflection v1 unavailable"),
    }
    match builder().build_v1alpha() {
        Ok(service) => {
            routes.add_service(InterceptedService::new(service, auth.clone()));
        }
        Err(err) => error!(error = %err, "admin API: reflection v1alpha unavailable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor as _;

    fn request(authorization: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = authorization {
            request
                .metadata_mut()
                .insert("authorization", value.parse().expect("ascii"));
        }
        request
    }

    #[test]
    fn the_token_is_checked_when_configured() {
        let mut open = RequireToken(None);
        assert!(open.call(request(None)).is_ok());

        let mut guarded = RequireToken(Some(Arc::from("s3cret")));
        assert!(guarded.call(request(Some("Bearer s3cret"))).is_ok());
        for bad in [
            None,
            Some("Bearer nope"),
            Some("s3cret"),
            Some("Bearer s3cre"),
            Some("Basic s3cret"),
        ] {
            let err = guarded.call(request(bad)).expect_err("refused");
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad:?}");
        }
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[tokio::test]
    async fn a_busy_default_address_is_not_fatal_but_an_explicit_one_is() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let implicit = AdminConfig {
            bind: addr,
            ..AdminConfig::default()
        };
        assert!(bind(&implicit).await.expect("not fatal").is_none());
        let explicit = AdminConfig {
            explicit: true,
            ..implicit
        };
        assert!(matches!(
            bind(&explicit).await,
            Err(AdminError::Bind { .. })
        ));
        let disabled = AdminConfig {
            enable: false,
            ..explicit
        };
        assert!(bind(&disabled).await.expect("disabled").is_none());
    }

    #[tokio::test]
    async fn token_files_are_trimmed_and_checked() {
        let dir = std::env::temp_dir().join(format!("midge-admin-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let good = dir.join("good");
        std::fs::write(&good, "s3cret\n").expect("write");
        let bad = dir.join("bad");
        std::fs::write(&bad, "two words\n").expect("write");
        let config = |path: &PathBuf| AdminConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            token: Some(AdminToken::File(path.clone())),
            explicit: true,
            ..AdminConfig::default()
        };
        let bound = bind(&config(&good)).await.expect("ok").expect("enabled");
        assert_eq!(bound.token.as_deref(), Some("s3cret"));
        assert!(matches!(
            bind(&config(&bad)).await,
            Err(AdminError::Token { .. })
        ));
        assert!(matches!(
            bind(&config(&dir.join("missing"))).await,
            Err(AdminError::Token { .. })
        ));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
