//! [`TestPlugin`]: a plugin built with the SDK, scripted by the test.

#[allow(clippy::wildcard_imports)]
use super::*;

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
// TestPlugin

/// A plugin built with the SDK, scripted by the test. See the module docs of `midge_tests::plugin`.
///
/// By default it allows every client and topic (not cached) and wants every event kind but the
/// packet kinds, with payloads. Dropping it kills it.
pub struct TestPlugin {
    state: Arc<State>,
    hosted: Hosted,
}

impl std::fmt::Debug for TestPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPlugin")
            .field("hosted", &self.hosted)
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
        let hosted = Hosted::spawn(port, Self::serve(Arc::clone(&state)));
        TestPlugin { state, hosted }
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
        self.hosted.addr()
    }

    /// `http://127.0.0.1:PORT`, for the broker's config.
    pub fn endpoint(&self) -> String {
        self.hosted.endpoint()
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
    /// If they do not arrive within [`TIMEOUT`](crate::TIMEOUT).
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

    /// Waits up to [`TIMEOUT`](crate::TIMEOUT) for an event that `pred` accepts (earlier ones count) and
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

    /// Waits up to [`TIMEOUT`](crate::TIMEOUT) until `n` events accepted by `pred` were handled and returns
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
    /// If they do not arrive within [`TIMEOUT`](crate::TIMEOUT).
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
    /// If no event arrives within [`TIMEOUT`](crate::TIMEOUT) (the broker sends none unless the plugin wants
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
        self.hosted.end(Stop::Graceful).await;
    }

    /// Kills the server: its listener and every connection close at once, mid-call or
    /// mid-stream, as when a plugin process dies.
    pub async fn kill(&mut self) {
        self.hosted.end(Stop::Kill).await;
        *lock(&self.state.context) = None;
    }

    /// Kills the server if it runs, then starts a new one on the same port with the same
    /// script and records (a plugin process restarted by its supervisor).
    pub async fn restart_on_same_port(&mut self) {
        self.kill().await;
        let serve = Self::serve(Arc::clone(&self.state));
        self.hosted.restart(serve).await;
    }
}
