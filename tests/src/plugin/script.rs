//! What a [`TestPlugin`] answers ([`Reply`]) and what its handler saw ([`Received`]).

#[allow(clippy::wildcard_imports)]
use super::*;

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

pub(crate) type AuthRule = Arc<dyn Fn(&AuthRequest) -> Reply + Send + Sync>;
pub(crate) type TopicRule = Arc<dyn Fn(&TopicRequest) -> Reply + Send + Sync>;

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
