//! Real plugins for end-to-end tests of the broker's plugin side, and configs that use them.
//!
//! - [`TestPlugin`]: a plugin built with the `midge-plugin` SDK ([`midge_plugin::Server`]),
//!   serving `Authenticator`, `TopicFilter` and `EventSink` on `127.0.0.1:0`. The test scripts
//!   its answers ([`TestPlugin::on_auth`], [`TestPlugin::on_topic`]: a verdict, a cache
//!   lifetime, a delay, or an error status; [`TestPlugin::hold_answers`] keeps them back until
//!   the test releases them), reads back every call it got and every event it
//!   handled, holds back its acks, sends control messages through the SDK's [`Context`], and
//!   stops, kills or restarts it on the same port.
//! - [`RawEventSink`]: an `EventSink` written directly against the generated tonic traits,
//!   without the SDK, so that a test sees the stream exactly as the broker sends it
//!   (duplicates included) and decides when to ack.
//! - [`PluginProcess`]: the `test-plugin` binary of this crate as a child process, for what
//!   needs a real process (SIGSTOP).
//! - [`plugin_yaml`], [`broker_yaml`]: broker configs pointing at them.
//!
//! Each in-process server runs on its own thread with its own Tokio runtime. Killing it drops
//! that runtime, which closes its listener and every connection at once (what the broker sees
//! when a plugin process dies), independently of the test's runtime.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use midge_plugin::{
    Action, AuthRequest, Authenticator, Context, Decision, EventHandler, EventInterest, Publish,
    Server, Status, TopicChecker, TopicRequest, Verdict, pb,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, timeout_at};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Streaming};

use crate::{TIMEOUT, within};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// Configs

/// One entry of a broker's `plugins:` section: `alias` at `endpoint`, plus `extra` keys of that
/// plugin, one YAML line each, written relative to the plugin (for example
/// `"timeout: 200ms\nfallback: {on-error: allow}"`).
pub fn plugin_yaml(alias: &str, endpoint: &str, extra: &str) -> String {
    let mut yaml = format!("  {alias}:\n    endpoint: {endpoint}\n");
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str("    ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    yaml
}

/// A broker config: one TCP listener `default` on an ephemeral loopback port, a `plugins:`
/// section with `plugins` (from [`plugin_yaml`]), then `sections` (top-level YAML such as
/// `auth:` and `topic-check:`). Without an `auth:` section the broker allows anonymous clients.
pub fn broker_yaml(plugins: &[String], sections: &str) -> String {
    let mut yaml =
        String::from("listeners:\n  - name: default\n    kind: tcp\n    bind: 127.0.0.1:0\n");
    if !plugins.is_empty() {
        yaml.push_str("plugins:\n");
        for plugin in plugins {
            yaml.push_str(plugin);
        }
    }
    yaml.push_str(sections);
    if !yaml.ends_with('\n') {
        yaml.push('\n');
    }
    yaml
}

/// A loopback port that was free a moment ago (bound, then released), for configs that need
/// the address before the broker binds it.
///
/// # Panics
///
/// If no port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port")
}

/// The broker's Prometheus text (`GET /metrics`), from the address it logged as
/// `metrics listening` (configure `metrics: {bind: 127.0.0.1:0}`).
///
/// # Panics
///
/// If the broker logged no such address or the request fails.
pub async fn metrics_text(broker: &crate::TestBroker) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let line = broker
        .wait_for_log("metrics listening", |l| l.contains("metrics listening"))
        .await;
    let value: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {e}: {line}"));
    let addr: SocketAddr = value["fields"]["addr"]
        .as_str()
        .and_then(|a| a.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in {line}"));
    let mut stream = within(
        "connecting to /metrics",
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut response = Vec::new();
    within("GET /metrics", async {
        stream.write_all(request.as_bytes()).await?;
        stream.read_to_end(&mut response).await
    })
    .await
    .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    let response = String::from_utf8_lossy(&response).into_owned();
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.contains(" 200 ") => body.to_owned(),
        _ => panic!("GET /metrics answered {response}"),
    }
}

/// The value of the sample `name{plugin="alias"}` in Prometheus `text`, if present.
pub fn plugin_metric(text: &str, name: &str, alias: &str) -> Option<u64> {
    let label = format!("plugin=\"{alias}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
}

// ---------------------------------------------------------------------------------------------
// Scripted answers

/// What a [`TestPlugin`] answers to one call: a decision or an error status, after a delay.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The answer: `Err` makes the broker take the `on-error` fallback.
    pub outcome: Result<Decision, Status>,
    /// How long the plugin waits before answering (to go past the broker's deadline).
    pub delay: Duration,
}

impl Reply {
    /// ALLOW, not cached, at once.
    pub fn allow() -> Self {
        Decision::allow().into()
    }

    /// DENY (reason `"denied by the test"`), not cached, at once.
    pub fn deny() -> Self {
        Decision::deny("denied by the test").into()
    }

    /// IGNORE, not cached, at once.
    pub fn ignore() -> Self {
        Decision::ignore().into()
    }

    /// An error status instead of an answer.
    pub fn error(status: Status) -> Self {
        Reply {
            outcome: Err(status),
            delay: Duration::ZERO,
        }
    }

    /// Lets the broker cache the decision for `ttl` (no effect on an error).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        if let Ok(decision) = self.outcome {
            self.outcome = Ok(decision.cache_for(ttl));
        }
        self
    }

    /// Answers only after `delay`.
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

impl From<Decision> for Reply {
    fn from(decision: Decision) -> Self {
        Reply {
            outcome: Ok(decision),
            delay: Duration::ZERO,
        }
    }
}

impl From<Verdict> for Reply {
    fn from(verdict: Verdict) -> Self {
        Decision::from(verdict).into()
    }
}

type AuthRule = Arc<dyn Fn(&AuthRequest) -> Reply + Send + Sync>;
type TopicRule = Arc<dyn Fn(&TopicRequest) -> Reply + Send + Sync>;

/// One event as a plugin's handler saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `EventBatch.stream_id`.
    pub stream_id: String,
    /// `Event.sequence`.
    pub sequence: u64,
    /// The event.
    pub event: pb::Event,
}

impl Received {
    /// The event's kind.
    pub fn kind(&self) -> pb::EventKind {
        self.event.kind()
    }

    /// Whether it is of `kind`.
    pub fn is(&self, kind: pb::EventKind) -> bool {
        self.kind() == kind
    }

    /// The body.
    ///
    /// # Panics
    ///
    /// If the event has none.
    pub fn body(&self) -> &pb::event::Body {
        self.event.body.as_ref().expect("an event body")
    }

    /// The message event of the four message kinds.
    pub fn message_event(&self) -> Option<&pb::MessageEvent> {
        message_event(&self.event)
    }

    /// The payload of a message event.
    pub fn payload(&self) -> Option<&[u8]> {
        self.message().map(|m| m.payload.as_slice())
    }

    /// The message of a message event.
    pub fn message(&self) -> Option<&pb::Message> {
        self.message_event()?.message.as_ref()
    }

    /// The topic of a message event.
    pub fn topic(&self) -> Option<&str> {
        self.message().map(|m| m.topic.as_str())
    }

    /// Whether this is a message event of `kind` on `topic`.
    pub fn is_message(&self, kind: pb::EventKind, topic: &str) -> bool {
        self.is(kind) && self.topic() == Some(topic)
    }

    /// The session facts of a connected / disconnected event.
    pub fn session(&self) -> Option<&pb::Session> {
        match self.event.body.as_ref()? {
            pb::event::Body::ClientConnected(c) => c.session.as_ref(),
            pb::event::Body::ClientDisconnected(d) => d.session.as_ref(),
            _ => None,
        }
    }

    /// The client id an event is about (session, subscription or publisher), if any.
    pub fn client_id(&self) -> Option<&str> {
        use pb::event::Body;
        match self.event.body.as_ref()? {
            Body::ClientConnected(_) | Body::ClientDisconnected(_) => {
                self.session().map(|s| s.client_id.as_str())
            }
            Body::ClientSubscribed(s) => Some(&s.client_id),
            Body::ClientUnsubscribed(u) => Some(&u.client_id),
            _ => self.message_event().map(|m| m.client_id.as_str()),
        }
    }
}

/// The body of the four message kinds.
pub fn message_event(event: &pb::Event) -> Option<&pb::MessageEvent> {
    use pb::event::Body;
    match event.body.as_ref()? {
        Body::MessageReceived(m)
        | Body::MessageBroadcast(m)
        | Body::RetainedStored(m)
        | Body::RetainedCleared(m) => Some(m),
        _ => None,
    }
}

/// Everything a [`TestPlugin`] shares between its server (on the plugin's runtime) and the test.
struct State {
    auth_rule: Mutex<AuthRule>,
    topic_rule: Mutex<TopicRule>,
    interest: Mutex<EventInterest>,
    auth_calls: Mutex<Vec<AuthRequest>>,
    topic_calls: Mutex<Vec<TopicRequest>>,
    topic_counts: Mutex<HashMap<(Action, String), usize>>,
    events: Mutex<Vec<Received>>,
    /// The handler's context of the latest event: the way to send control messages.
    context: Mutex<Option<Context>>,
    /// Extra time the event handler takes per event.
    event_delay: Mutex<Duration>,
    /// True: the event handler does not return (so the SDK does not ack) until released.
    hold: watch::Sender<bool>,
    /// True: `Authenticate` and `CheckTopic` calls are recorded but not answered until released.
    hold_answers: watch::Sender<bool>,
    /// Bumped after every recorded call or event.
    changed: watch::Sender<u64>,
}

impl State {
    fn new(interest: EventInterest) -> Self {
        State {
            auth_rule: Mutex::new(Arc::new(|_: &AuthRequest| Reply::allow())),
            topic_rule: Mutex::new(Arc::new(|_: &TopicRequest| Reply::allow())),
            interest: Mutex::new(interest),
            auth_calls: Mutex::default(),
            topic_calls: Mutex::default(),
            topic_counts: Mutex::default(),
            events: Mutex::default(),
            context: Mutex::default(),
            event_delay: Mutex::new(Duration::ZERO),
            hold: watch::channel(false).0,
            hold_answers: watch::channel(false).0,
            changed: watch::channel(0).0,
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Returns once decision answers are not held (at once when they are not).
    async fn answers_released(&self) {
        let mut hold = self.hold_answers.subscribe();
        let _ = hold.wait_for(|held| !*held).await;
    }

    /// Waits up to `limit` until `check` returns `Some`.
    async fn wait<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + limit;
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(found) = check() {
                return Some(found);
            }
            match timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!("plugin state dropped while waiting for {what}"),
                Err(_) => return None,
            }
        }
    }
}

/// The SDK-facing side of a [`TestPlugin`].
#[derive(Clone)]
struct Handler(Arc<State>);

impl Authenticator for Handler {
    /// Refuses a config section with a `refuse` key, the way a real plugin refuses a misspelt
    /// key: INVALID_ARGUMENT naming it (anything else is accepted, as before).
    async fn on_configure(&self, config: &midge_plugin::PluginConfig) -> Result<(), Status> {
        match config.to_json().get("refuse") {
            Some(key) => Err(Status::invalid_argument(format!(
                "unknown field `{}`",
                key.as_str().unwrap_or("refuse")
            ))),
            None => Ok(()),
        }
    }

    async fn authenticate(&self, req: AuthRequest) -> Result<Decision, Status> {
        let rule = Arc::clone(&*lock(&self.0.auth_rule));
        let reply = rule(&req);
        lock(&self.0.auth_calls).push(req);
        self.0.bump();
        self.0.answers_released().await;
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        reply.outcome
    }
}

impl TopicChecker for Handler {
    async fn check_topic(&self, req: TopicRequest) -> Result<Decision, Status> {
        let rule = Arc::clone(&*lock(&self.0.topic_rule));
        let reply = rule(&req);
        *lock(&self.0.topic_counts)
            .entry((req.action, req.topic.clone()))
            .or_default() += 1;
        lock(&self.0.topic_calls).push(req);
        self.0.bump();
        self.0.answers_released().await;
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        reply.outcome
    }
}

impl EventHandler for Handler {
    fn interest(&self) -> EventInterest {
        lock(&self.0.interest).clone()
    }

    async fn on_event(&self, ctx: &Context, event: &pb::Event) -> Result<(), Status> {
        *lock(&self.0.context) = Some(ctx.clone());
        lock(&self.0.events).push(Received {
            stream_id: ctx.stream_id().to_owned(),
            sequence: ctx.sequence(),
            event: event.clone(),
        });
        self.0.bump();
        let delay = *lock(&self.0.event_delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut hold = self.0.hold.subscribe();
        let _ = hold.wait_for(|held| !*held).await;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Server threads

/// How to end an in-process server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Its own graceful shutdown.
    Graceful,
    /// Drop everything at once, connections included.
    Kill,
}

type Serve = Box<
    dyn FnOnce(tokio::net::TcpListener, BoxFuture<'static, ()>) -> BoxFuture<'static, ()> + Send,
>;

/// A gRPC server running on its own thread and current-thread runtime.
#[derive(Debug)]
struct ServerThread {
    stop: Option<oneshot::Sender<Stop>>,
    done: Option<oneshot::Receiver<()>>,
}

impl ServerThread {
    /// Binds `127.0.0.1:port` (SO_REUSEADDR, so a port just released can be taken again) and
    /// serves `serve` on it. Returns the thread and the bound address.
    fn spawn(port: u16, serve: Serve) -> (ServerThread, SocketAddr) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("binding the test plugin to port {port}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the listener's address");
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("test-plugin-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the test plugin's runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("registering the listener");
                    let (graceful_tx, graceful_rx) = oneshot::channel::<()>();
                    let signal: BoxFuture<'static, ()> = Box::pin(async move {
                        let _ = graceful_rx.await;
                    });
                    let server = tokio::spawn(serve(listener, signal));
                    match stop_rx.await {
                        Ok(Stop::Graceful) => {
                            let _ = graceful_tx.send(());
                            let _ = server.await;
                        }
                        Ok(Stop::Kill) | Err(_) => server.abort(),
                    }
                });
                // Dropping the runtime drops every task it still has: the listener and all
                // connections close here.
                drop(runtime);
                let _ = done_tx.send(());
            })
            .expect("spawning the test plugin's thread");
        let thread = ServerThread {
            stop: Some(stop_tx),
            done: Some(done_rx),
        };
        (thread, addr)
    }

    async fn end(mut self, how: Stop) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(how);
        }
        if let Some(done) = self.done.take() {
            let _ = within("the test plugin to stop", done).await;
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Stop::Kill);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TestPlugin

/// A plugin built with the SDK, scripted by the test. See the [module docs](self).
///
/// By default it allows every client and topic (not cached) and wants every event kind but the
/// packet kinds, with payloads. Dropping it kills it.
pub struct TestPlugin {
    state: Arc<State>,
    addr: SocketAddr,
    server: Option<ServerThread>,
}

impl std::fmt::Debug for TestPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPlugin")
            .field("addr", &self.addr)
            .field("running", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

impl TestPlugin {
    /// Starts a plugin on `127.0.0.1:0` wanting the default events.
    pub async fn start() -> TestPlugin {
        Self::start_with(EventInterest::default()).await
    }

    /// Starts a plugin on `127.0.0.1:0` that asks the broker for `interest` in `Describe`.
    pub async fn start_with(interest: EventInterest) -> TestPlugin {
        Self::start_on(0, interest).await
    }

    /// Starts a plugin on `127.0.0.1:port` (0: any free port) asking for `interest`.
    ///
    /// # Panics
    ///
    /// If the port cannot be bound.
    pub async fn start_on(port: u16, interest: EventInterest) -> TestPlugin {
        let state = Arc::new(State::new(interest));
        let (server, addr) = ServerThread::spawn(port, Self::serve(Arc::clone(&state)));
        TestPlugin {
            state,
            addr,
            server: Some(server),
        }
    }

    fn serve(state: Arc<State>) -> Serve {
        Box::new(move |listener, signal| {
            Box::pin(async move {
                let handler = Handler(state);
                let server = Server::new("test-plugin", "1.0.0")
                    .authenticator(handler.clone())
                    .topic_checker(handler.clone())
                    .event_handler(handler)
                    .shutdown_grace(Duration::from_millis(500));
                if let Err(e) = server.serve_with_listener(listener, signal).await {
                    eprintln!("test plugin failed: {e}");
                }
            })
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for the broker's config.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `plugins:` entry for this plugin under `alias` (see [`plugin_yaml`]).
    pub fn yaml(&self, alias: &str, extra: &str) -> String {
        plugin_yaml(alias, &self.endpoint(), extra)
    }

    /// Answers authentication calls with `rule` from now on.
    pub fn on_auth(&self, rule: impl Fn(&AuthRequest) -> Reply + Send + Sync + 'static) {
        *lock(&self.state.auth_rule) = Arc::new(rule);
    }

    /// Answers topic checks with `rule` from now on.
    pub fn on_topic(&self, rule: impl Fn(&TopicRequest) -> Reply + Send + Sync + 'static) {
        *lock(&self.state.topic_rule) = Arc::new(rule);
    }

    /// Every `Authenticate` call received, in order (including those it answered too late).
    pub fn auth_calls(&self) -> Vec<AuthRequest> {
        lock(&self.state.auth_calls).clone()
    }

    /// Every `CheckTopic` call received, in order.
    pub fn topic_calls(&self) -> Vec<TopicRequest> {
        lock(&self.state.topic_calls).clone()
    }

    /// How many `CheckTopic` calls were received for (`action`, `topic`).
    pub fn topic_call_count(&self, action: Action, topic: &str) -> usize {
        lock(&self.state.topic_counts)
            .get(&(action, topic.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Waits until at least `n` `Authenticate` calls were received.
    ///
    /// # Panics
    ///
    /// If they do not arrive within [`TIMEOUT`].
    pub async fn wait_for_auth_calls(&self, n: usize) {
        let found = self
            .state
            .wait("authenticate calls", TIMEOUT, || {
                (lock(&self.state.auth_calls).len() >= n).then_some(())
            })
            .await;
        assert!(
            found.is_some(),
            "fewer than {n} Authenticate calls within {TIMEOUT:?}: {:?}",
            self.auth_calls()
        );
    }

    /// Every event handled so far, in the order the handler saw them. After a
    /// [`restart`](Self::restart_on_same_port) the SDK no longer knows which sequence numbers it
    /// handled before, so events the broker replays appear a second time.
    pub fn events(&self) -> Vec<Received> {
        lock(&self.state.events).clone()
    }

    /// The events handled so far that `pred` accepts.
    pub fn events_where(&self, pred: impl Fn(&Received) -> bool) -> Vec<Received> {
        lock(&self.state.events)
            .iter()
            .filter(|r| pred(r))
            .cloned()
            .collect()
    }

    /// Waits up to [`TIMEOUT`] for an event that `pred` accepts (earlier ones count) and
    /// returns the first such.
    ///
    /// # Panics
    ///
    /// If none arrives in time; the message names `what` and lists the events seen.
    pub async fn wait_for_event(&self, what: &str, pred: impl Fn(&Received) -> bool) -> Received {
        match self.wait_for_event_within(TIMEOUT, &pred).await {
            Some(found) => found,
            None => panic!(
                "test plugin: no event {what} within {TIMEOUT:?}; got {:#?}",
                self.event_summary()
            ),
        }
    }

    /// Waits up to `limit` for an event that `pred` accepts; `None` if none arrives.
    pub async fn wait_for_event_within(
        &self,
        limit: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Option<Received> {
        self.state
            .wait("an event", limit, || {
                lock(&self.state.events).iter().find(|r| pred(r)).cloned()
            })
            .await
    }

    /// Waits up to [`TIMEOUT`] until `n` events accepted by `pred` were handled and returns
    /// them (all of them, if more arrived).
    ///
    /// # Panics
    ///
    /// If fewer arrive in time.
    pub async fn wait_for_events(
        &self,
        what: &str,
        n: usize,
        pred: impl Fn(&Received) -> bool,
    ) -> Vec<Received> {
        let found = self
            .state
            .wait(what, TIMEOUT, || {
                let matching = self.events_where(&pred);
                (matching.len() >= n).then_some(matching)
            })
            .await;
        found.unwrap_or_else(|| {
            panic!(
                "test plugin: fewer than {n} events {what} within {TIMEOUT:?} (have {}); got {:#?}",
                self.events_where(&pred).len(),
                self.event_summary()
            )
        })
    }

    /// `sequence kind [topic|client]` for each event, for failure messages.
    pub fn event_summary(&self) -> Vec<String> {
        lock(&self.state.events)
            .iter()
            .map(|r| {
                let detail = r.topic().or_else(|| r.client_id()).unwrap_or("");
                format!("{} {} {detail}", r.sequence, r.kind().as_str_name())
            })
            .collect()
    }

    /// From now on the event handler records each event and then does not return, so the SDK
    /// neither acks it nor handles the next, until [`release_events`](Self::release_events).
    pub fn hold_events(&self) {
        self.state.hold.send_replace(true);
    }

    /// Lets held events go (see [`hold_events`](Self::hold_events)).
    pub fn release_events(&self) {
        self.state.hold.send_replace(false);
    }

    /// From now on `Authenticate` and `CheckTopic` calls are recorded (so the test can wait for
    /// them) but not answered until [`release_answers`](Self::release_answers): the broker is
    /// left waiting for a decision, for as long as the alias's `timeout` allows.
    pub fn hold_answers(&self) {
        self.state.hold_answers.send_replace(true);
    }

    /// Answers the held calls (each with its rule's reply, after its delay) and stops holding.
    pub fn release_answers(&self) {
        self.state.hold_answers.send_replace(false);
    }

    /// Waits until at least `n` `CheckTopic` calls were received.
    ///
    /// # Panics
    ///
    /// If they do not arrive within [`TIMEOUT`].
    pub async fn wait_for_topic_calls(&self, n: usize) {
        let found = self
            .state
            .wait("topic checks", TIMEOUT, || {
                (lock(&self.state.topic_calls).len() >= n).then_some(())
            })
            .await;
        assert!(
            found.is_some(),
            "fewer than {n} CheckTopic calls within {TIMEOUT:?}: {:?}",
            self.topic_calls()
        );
    }

    /// Makes the event handler take `delay` per event (a slow plugin).
    pub fn set_event_delay(&self, delay: Duration) {
        *lock(&self.state.event_delay) = delay;
    }

    /// The SDK context of the latest handled event: its stream carries control messages.
    ///
    /// # Panics
    ///
    /// If no event arrives within [`TIMEOUT`] (the broker sends none unless the plugin wants
    /// some and something happened, e.g. `broker_post_start`).
    pub async fn context(&self) -> Context {
        let found = self
            .state
            .wait("an event stream", TIMEOUT, || {
                lock(&self.state.context).clone()
            })
            .await;
        found.unwrap_or_else(|| panic!("test plugin: no event (so no stream) within {TIMEOUT:?}"))
    }

    /// Sends a `PublishControl`.
    ///
    /// # Panics
    ///
    /// If there is no open stream.
    pub async fn publish(&self, message: Publish) {
        let ctx = self.context().await;
        ctx.publish(message)
            .await
            .expect("the event stream is open");
    }

    /// Sends a `DisconnectControl` for `client_id`.
    ///
    /// # Panics
    ///
    /// If there is no open stream.
    pub async fn disconnect_client(&self, client_id: &str) {
        let ctx = self.context().await;
        ctx.disconnect_client(client_id, "kicked by the test")
            .await
            .expect("the event stream is open");
    }

    /// Sends an `InvalidateControl` for `client_id`.
    ///
    /// # Panics
    ///
    /// If there is no open stream.
    pub async fn invalidate_client(&self, client_id: &str) {
        let ctx = self.context().await;
        ctx.invalidate_client(client_id)
            .await
            .expect("the event stream is open");
    }

    /// Sends an `InvalidateControl` for `username`.
    ///
    /// # Panics
    ///
    /// If there is no open stream.
    pub async fn invalidate_username(&self, username: &str) {
        let ctx = self.context().await;
        ctx.invalidate_username(username)
            .await
            .expect("the event stream is open");
    }

    /// Sends an `InvalidateControl` with both fields empty (every entry of this plugin).
    ///
    /// # Panics
    ///
    /// If there is no open stream.
    pub async fn invalidate_all(&self) {
        let ctx = self.context().await;
        ctx.invalidate_all()
            .await
            .expect("the event stream is open");
    }

    /// Graceful shutdown (the SDK's: open event streams end with UNAVAILABLE, open calls get
    /// a short grace), then the server is gone.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.end(Stop::Graceful).await;
        }
    }

    /// Kills the server: its listener and every connection close at once, mid-call or
    /// mid-stream, as when a plugin process dies.
    pub async fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.end(Stop::Kill).await;
        }
        *lock(&self.state.context) = None;
    }

    /// Kills the server if it runs, then starts a new one on the same port with the same
    /// script and records (a plugin process restarted by its supervisor).
    pub async fn restart_on_same_port(&mut self) {
        self.kill().await;
        let (server, addr) =
            ServerThread::spawn(self.addr.port(), Self::serve(Arc::clone(&self.state)));
        self.addr = addr;
        self.server = Some(server);
    }
}

// ---------------------------------------------------------------------------------------------
// RawEventSink

/// One event as a [`RawEventSink`] received it off the wire.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Which `Stream` call carried it: 1 for the first, 2 after the first reconnect, ...
    pub connection: u32,
    /// `EventBatch.stream_id`.
    pub stream_id: String,
    /// The event, `sequence` as sent.
    pub event: pb::Event,
}

impl Delivery {
    /// `Event.sequence`.
    pub fn sequence(&self) -> u64 {
        self.event.sequence
    }

    /// The message payload of a message event, if any.
    pub fn payload(&self) -> Option<&[u8]> {
        message_event(&self.event)?
            .message
            .as_ref()
            .map(|m| m.payload.as_slice())
    }
}

struct RawState {
    kinds: Vec<pb::EventKind>,
    acking: AtomicBool,
    /// Kinds whose next event, once it arrives, stops the acks just before it.
    hold_at: Mutex<Vec<pb::EventKind>>,
    /// Bumped by `release_acks`: every stream acks all it received and holds no more.
    released: watch::Sender<u64>,
    connections: AtomicU32,
    deliveries: Mutex<Vec<Delivery>>,
    changed: watch::Sender<u64>,
}

#[derive(Clone)]
struct RawService(Arc<RawState>);

#[tonic::async_trait]
impl pb::plugin_server::Plugin for RawService {
    async fn describe(
        &self,
        _request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        Ok(Response::new(pb::DescribeResponse {
            name: "raw-event-sink".into(),
            version: "1.0.0".into(),
            events: self.0.kinds.iter().map(|k| *k as i32).collect(),
            services: vec![midge_proto::service_names::EVENT_SINK.into()],
            ..Default::default()
        }))
    }
}

#[tonic::async_trait]
impl pb::event_sink_server::EventSink for RawService {
    type StreamStream = ReceiverStream<Result<pb::StreamReply, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<pb::EventBatch>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let state = Arc::clone(&self.0);
        let connection = state.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let (tx, rx) = mpsc::channel(64);
        let mut inbound = request.into_inner();
        tokio::spawn(async move {
            let mut highest = 0;
            let mut acked = 0;
            // The sequence of a held event: acks stop just before it until released.
            let mut held: Option<u64> = None;
            let mut released = state.released.subscribe();
            loop {
                tokio::select! {
                    message = inbound.message() => {
                        let Ok(Some(batch)) = message else { return };
                        {
                            let mut deliveries = lock(&state.deliveries);
                            let mut hold_at = lock(&state.hold_at);
                            for event in batch.events {
                                highest = highest.max(event.sequence);
                                let kind = event.kind();
                                if held.is_none()
                                    && let Some(at) = hold_at.iter().position(|k| *k == kind)
                                {
                                    hold_at.remove(at);
                                    held = Some(event.sequence);
                                }
                                deliveries.push(Delivery {
                                    connection,
                                    stream_id: batch.stream_id.clone(),
                                    event,
                                });
                            }
                        }
                        state.changed.send_modify(|n| *n += 1);
                    }
                    changed = released.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        held = None;
                    }
                }
                let ack = held.map_or(highest, |at| at - 1);
                if state.acking.load(Ordering::SeqCst) && ack > acked {
                    acked = ack;
                    let reply = pb::StreamReply {
                        ack,
                        controls: Vec::new(),
                    };
                    if tx.send(Ok(reply)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// An `EventSink` (plus `Plugin.Describe`) written directly against the generated tonic
/// traits: it records every event exactly as it arrives, duplicates included, and acks each
/// batch cumulatively only while acking is on (and only up to an event held by
/// [`hold_acks_at`](Self::hold_acks_at)). Dropping it kills it.
pub struct RawEventSink {
    state: Arc<RawState>,
    addr: SocketAddr,
    server: Option<ServerThread>,
}

impl std::fmt::Debug for RawEventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawEventSink")
            .field("addr", &self.addr)
            .field("running", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

impl RawEventSink {
    /// Starts one on `127.0.0.1:0` that asks for `kinds` and acks.
    pub async fn start(kinds: &[pb::EventKind]) -> RawEventSink {
        let state = Arc::new(RawState {
            kinds: kinds.to_vec(),
            acking: AtomicBool::new(true),
            hold_at: Mutex::default(),
            released: watch::channel(0).0,
            connections: AtomicU32::new(0),
            deliveries: Mutex::default(),
            changed: watch::channel(0).0,
        });
        let (server, addr) = ServerThread::spawn(0, Self::serve(Arc::clone(&state)));
        RawEventSink {
            state,
            addr,
            server: Some(server),
        }
    }

    fn serve(state: Arc<RawState>) -> Serve {
        Box::new(move |listener, signal| {
            Box::pin(async move {
                let service = RawService(state);
                let result = tonic::transport::Server::builder()
                    .add_service(pb::plugin_server::PluginServer::new(service.clone()))
                    .add_service(pb::event_sink_server::EventSinkServer::new(service))
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
                    .await;
                if let Err(e) = result {
                    eprintln!("raw event sink failed: {e}");
                }
            })
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `plugins:` entry for it under `alias`.
    pub fn yaml(&self, alias: &str, extra: &str) -> String {
        plugin_yaml(alias, &self.endpoint(), extra)
    }

    /// Turns acking on (each later batch is acked up to the highest sequence seen on its
    /// connection) or off (nothing is acked).
    pub fn set_acking(&self, on: bool) {
        self.state.acking.store(on, Ordering::SeqCst);
    }

    /// The next event of `kind` to arrive is not acknowledged, nor any after it, until
    /// [`release_acks`](Self::release_acks): the broker waits for it as for a slow plugin.
    /// Events keep being received and recorded meanwhile.
    pub fn hold_acks_at(&self, kind: pb::EventKind) {
        lock(&self.state.hold_at).push(kind);
    }

    /// Acknowledges everything received so far (while acking is on) and holds no more acks.
    pub fn release_acks(&self) {
        self.state.released.send_modify(|n| *n += 1);
    }

    /// Every event received, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.state.deliveries).clone()
    }

    /// Waits up to [`TIMEOUT`] for a delivery `pred` accepts.
    ///
    /// # Panics
    ///
    /// If none arrives in time.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Delivery) -> bool) -> Delivery {
        let deadline = Instant::now() + TIMEOUT;
        let mut rx = self.state.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(found) = lock(&self.state.deliveries).iter().find(|d| pred(d)) {
                return found.clone();
            }
            match timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!("raw event sink state dropped"),
                Err(_) => panic!(
                    "raw event sink: no delivery {what} within {TIMEOUT:?}; got {:?}",
                    self.deliveries()
                        .iter()
                        .map(|d| (d.connection, d.sequence(), d.event.kind().as_str_name()))
                        .collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Kills it (listener and connections close at once).
    pub async fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.end(Stop::Kill).await;
        }
    }

    /// Starts it again on the same port, with the same records.
    pub async fn restart_on_same_port(&mut self) {
        self.kill().await;
        let (server, addr) =
            ServerThread::spawn(self.addr.port(), Self::serve(Arc::clone(&self.state)));
        self.addr = addr;
        self.server = Some(server);
    }
}

// ---------------------------------------------------------------------------------------------
// PluginProcess

/// The `test-plugin` binary as a child process (see `src/bin/test-plugin.rs`), killed on drop.
#[derive(Debug)]
pub struct PluginProcess {
    child: Child,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl PluginProcess {
    /// Runs `bin` (`env!("CARGO_BIN_EXE_test-plugin")` in a test) with `args` and waits for
    /// its `listening ADDR` line.
    ///
    /// # Panics
    ///
    /// If it cannot be started or does not listen within [`TIMEOUT`].
    pub async fn spawn(bin: &Path, args: &[&str]) -> PluginProcess {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = oneshot::channel();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening ") {
                    if let (Some(tx), Ok(addr)) = (addr_tx.take(), addr.parse::<SocketAddr>()) {
                        let _ = tx.send(addr);
                    }
                }
                lock(&sink).push(line);
            }
        });
        let addr = within("the plugin process to listen", addr_rx)
            .await
            .expect("the plugin process printed `listening ADDR`");
        PluginProcess { child, addr, lines }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `plugins:` entry for it under `alias`.
    pub fn yaml(&self, alias: &str, extra: &str) -> String {
        plugin_yaml(alias, &self.endpoint(), extra)
    }

    /// The lines it printed (one per call: `auth CLIENT_ID`, `topic ACTION TOPIC`).
    pub fn lines(&self) -> Vec<String> {
        lock(&self.lines).clone()
    }

    /// Whether it prints `line` within `timeout` (its output is read by a thread, so a line
    /// can arrive after the answer it belongs to).
    pub async fn wait_for_line(&self, line: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if lock(&self.lines).iter().any(|l| l == line) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends `signal` (a name such as `STOP` or `CONT`) with `kill`.
    ///
    /// # Panics
    ///
    /// If `kill` fails.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("sh")
            .args([
                "-c",
                "kill -s \"$1\" \"$2\"",
                "sh",
                signal,
                &self.child.id().to_string(),
            ])
            .status()
            .unwrap_or_else(|e| panic!("running kill: {e}"));
        assert!(status.success(), "kill -s {signal} failed: {status}");
    }
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
