//! [`Server`]: registers the plugin's services and serves them with health, reflection and
//! graceful shutdown.

use std::{fmt, future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_stream::{StreamExt as _, wrappers::TcpListenerStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::service::RoutesBuilder;
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::{
    Authenticator, EventHandler, TopicChecker,
    config::ConfigStore,
    describe::{ConfigureHook, DescribeService, InterestFn},
    event_stream::EventSinkService,
    pb,
    service::{AuthenticatorService, TopicFilterService},
};

/// How long [`Server::serve`] waits, after the shutdown signal, for open calls to finish before
/// it closes the remaining connections.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A plugin server: one gRPC server with the services registered on it, plus
/// `midge.plugin.v1.Plugin` (Describe), `grpc.health.v1.Health` (SERVING for the server and for
/// each registered service) and server reflection (`grpc.reflection.v1` and `v1alpha`).
///
/// Registering the same kind of service twice keeps the last one. TLS is not supported yet:
/// serve on loopback or a private network, or put a TLS proxy in front.
///
/// ```no_run
/// # use midge_plugin::{AuthRequest, Authenticator, Decision, Server, Status};
/// # struct MyAuth;
/// # impl Authenticator for MyAuth {
/// #     async fn authenticate(&self, _: AuthRequest) -> Result<Decision, Status> { Ok(Decision::allow()) }
/// # }
/// # async fn run() -> Result<(), midge_plugin::ServeError> {
/// Server::new("my-auth", "1.0.0")
///     .authenticator(MyAuth)
///     .serve("127.0.0.1:50051".parse().expect("addr"), async {
///         let _ = tokio::signal::ctrl_c().await;
///     })
///     .await
/// # }
/// ```
pub struct Server {
    name: String,
    version: String,
    authenticator: Option<Registered>,
    topic_checker: Option<Registered>,
    event_handler: Option<(Registered, InterestFn)>,
    grace: Duration,
    tls: Option<tonic::transport::ServerTlsConfig>,
    config: ConfigStore,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// One registered service: how to add it to the router, and its config hook.
struct Registered {
    name: &'static str,
    add: Box<dyn FnOnce(&mut RoutesBuilder) + Send>,
    configure: ConfigureHook,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("services", &self.service_names())
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// Why [`Server::serve`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound (or the listener's address read).
    #[error("cannot listen: {0}")]
    Bind(#[source] io::Error),
    /// The gRPC server failed.
    #[error("grpc server failed: {0}")]
    Transport(#[source] tonic::transport::Error),
    /// The reflection service could not be built from the descriptor sets (a bug in this crate).
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[source] tonic_reflection::server::Error),
}

impl Server {
    /// A server for the plugin `name` at `version` (what `Describe` reports).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Server {
            name: name.into(),
            version: version.into(),
            authenticator: None,
            topic_checker: None,
            event_handler: None,
            grace: DEFAULT_SHUTDOWN_GRACE,
            tls: None,
            config: ConfigStore::default(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    /// Serve `midge.plugin.v1.Authenticator` with `auth`.
    #[must_use]
    pub fn authenticator<A: Authenticator>(mut self, auth: A) -> Self {
        let auth = Arc::new(auth);
        let hook = Arc::clone(&auth);
        self.authenticator = Some(Registered {
            name: midge_proto::service_names::AUTHENTICATOR,
            add: Box::new(move |routes| {
                routes.add_service(pb::authenticator_server::AuthenticatorServer::new(
                    AuthenticatorService(auth),
                ));
            }),
            configure: Arc::new(move |cfg| {
                let hook = Arc::clone(&hook);
                Box::pin(async move { hook.on_configure(&cfg).await })
            }),
        });
        self
    }

    /// Serve `midge.plugin.v1.TopicFilter` with `checker`.
    #[must_use]
    pub fn topic_checker<T: TopicChecker>(mut self, checker: T) -> Self {
        let checker = Arc::new(checker);
        let hook = Arc::clone(&checker);
        self.topic_checker = Some(Registered {
            name: midge_proto::service_names::TOPIC_FILTER,
            add: Box::new(move |routes| {
                routes.add_service(pb::topic_filter_server::TopicFilterServer::new(
                    TopicFilterService(checker),
                ));
            }),
            configure: Arc::new(move |cfg| {
                let hook = Arc::clone(&hook);
                Box::pin(async move { hook.on_configure(&cfg).await })
            }),
        });
        self
    }

    /// Serve `midge.plugin.v1.EventSink` with `handler`; `Describe` then reports its
    /// [`EventHandler::interest`].
    #[must_use]
    pub fn event_handler<H: EventHandler>(mut self, handler: H) -> Self {
        let handler = Arc::new(handler);
        let hook = Arc::clone(&handler);
        let interest = Arc::clone(&handler);
        let service = EventSinkService::new(
            handler,
            self.config.clone(),
            self.shutdown.clone(),
            self.tracker.clone(),
        );
        let registered = Registered {
            name: midge_proto::service_names::EVENT_SINK,
            add: Box::new(move |routes| {
                routes.add_service(pb::event_sink_server::EventSinkServer::new(service));
            }),
            configure: Arc::new(move |cfg| {
                let hook = Arc::clone(&hook);
                Box::pin(async move { hook.on_configure(&cfg).await })
            }),
        };
        self.event_handler = Some((registered, Arc::new(move || interest.interest())));
        self
    }

    /// How long to wait after the shutdown signal for open calls (e.g. a broker's health
    /// `Watch`) before closing connections. Default [`DEFAULT_SHUTDOWN_GRACE`].
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Serves over TLS with this certificate chain and private key (PEM), so the broker connects
    /// with an `https://` endpoint and its `tls.ca`. With `client_ca` (PEM), the broker must
    /// present a certificate signed by it (`tls.cert` / `tls.key` in the broker's plugin config).
    #[must_use]
    pub fn tls(
        mut self,
        cert_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
        client_ca: Option<&[u8]>,
    ) -> Self {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem));
        if let Some(ca) = client_ca {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        self.tls = Some(config);
        self
    }

    fn service_names(&self) -> Vec<&'static str> {
        let event = self.event_handler.as_ref().map(|(r, _)| r);
        [
            self.authenticator.as_ref(),
            self.topic_checker.as_ref(),
            event,
        ]
        .into_iter()
        .flatten()
        .map(|r| r.name)
        .collect()
    }

    /// Binds `addr` and serves until `shutdown` completes; see [`Server::serve_with_listener`].
    ///
    /// # Errors
    ///
    /// [`ServeError::Bind`] when `addr` cannot be bound, otherwise as `serve_with_listener`.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let listener = TcpListener::bind(addr).await.map_err(ServeError::Bind)?;
        self.serve_with_listener(listener, shutdown).await
    }

    /// Serves on an already bound listener (bind `127.0.0.1:0` in tests and read the port
    /// first) until `shutdown` completes.
    ///
    /// On shutdown, health turns NOT_SERVING, open event streams end after their current batch
    /// (the broker reconnects later and replays what was not acked), the server stops accepting
    /// and waits up to the grace period for open calls, and the handler tasks are awaited.
    ///
    /// # Errors
    ///
    /// [`ServeError::Transport`] when the gRPC server fails.
    pub async fn serve_with_listener(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let local = listener.local_addr().map_err(ServeError::Bind)?;
        let names = self.service_names();
        let mut routes = RoutesBuilder::default();
        let mut hooks = Vec::new();
        let mut interest = None;
        let event = self.event_handler.take().map(|(r, i)| {
            interest = Some(i);
            r
        });
        for registered in [self.authenticator.take(), self.topic_checker.take(), event]
            .into_iter()
            .flatten()
        {
            (registered.add)(&mut routes);
            hooks.push(registered.configure);
        }
        let mut services: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        services.push(midge_proto::service_names::PLUGIN.to_owned());
        routes.add_service(pb::plugin_server::PluginServer::new(DescribeService {
            name: self.name.clone(),
            version: self.version.clone(),
            services: services.clone(),
            hooks,
            interest,
            config: self.config.clone(),
        }));

        let (health, health_service) = tonic_health::server::health_reporter();
        for name in &services {
            health
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        routes.add_service(health_service);
        add_reflection(&mut routes, &services)?;

        // Nagle would hold small answers back for a delayed ACK: decisions are latency-bound.
        let incoming = TcpListenerStream::new(listener).map(|conn| {
            conn.inspect(|tcp| {
                let _ = tcp.set_nodelay(true);
            })
        });
        let token = self.shutdown.clone();
        let signal = async move {
            shutdown.await;
            info!("shutting down");
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            for name in &services {
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
            token.cancel();
        };
        info!(addr = %local, plugin = %self.name, services = ?names, "plugin listening");
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = self.tls.take() {
            builder = builder.tls_config(tls).map_err(ServeError::Transport)?;
        }
        let server = builder
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, signal);
        let grace = self.grace;
        let token = self.shutdown.clone();
        let result = tokio::select! {
            result = server => result.map_err(ServeError::Transport),
            () = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
                warn!(?grace, "open calls outlived the shutdown grace; closing connections");
                Ok(())
            }
        };
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        result
    }
}

/// Adds reflection v1 and v1alpha, listing exactly the services this server has.
fn add_reflection(routes: &mut RoutesBuilder, services: &[String]) -> Result<(), ServeError> {
    let builder = || midge_proto::reflection::builder(services.iter().map(String::as_str));
    routes.add_service(builder().build_v1().map_err(ServeError::Reflection)?);
    routes.add_service(builder().build_v1alpha().map_err(ServeError::Reflection)?);
    Ok(())
}
