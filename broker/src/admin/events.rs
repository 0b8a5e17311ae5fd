//! `WatchEvents`: a live tail of the events plugins receive, through the plugin manager's
//! watcher fan-out ([`crate::plugin::watch`]).
//!
//! Best effort, as the contract says: no acks and no replay. Each call numbers the events it
//! sends from 1. A watcher that reads too slowly loses the oldest events buffered for it; the
//! gap in `sequence` then counts every lost event, including those its filters would have
//! skipped (the broker cannot tell which they were). The stream ends when the client cancels
//! or the broker has stopped (after the shutdown events, which a watcher sees).

use std::pin::Pin;

use futures_util::Stream;
use midge_proto::admin::v1 as admin_pb;
use midge_proto::plugin::v1 as pb;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::plugin::watch::Watcher;
use crate::topic;

/// The stream `WatchEvents` answers with.
pub(super) type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

/// What one watcher asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EventFilter {
    /// Bit `k` set: kind value `k` wanted.
    kinds: u32,
    topic_filters: Vec<String>,
    omit_payload: bool,
}

impl EventFilter {
    /// Checks and reads a request: unknown or unspecified kinds and invalid topic filters are
    /// INVALID_ARGUMENT. No kinds means every kind but the packet kinds.
    pub(super) fn new(request: &admin_pb::WatchEventsRequest) -> Result<Self, Status> {
        let mut kinds = 0u32;
        for &value in &request.kinds {
            match pb::EventKind::try_from(value) {
                Ok(kind) if kind != pb::EventKind::Unspecified => kinds |= 1 << (kind as i32),
                _ => {
                    return Err(Status::invalid_argument(format!(
                        "unknown event kind {value}: use an EventKind such as \
                         EVENT_KIND_CLIENT_CONNECTED"
                    )));
                }
            }
        }
        if kinds == 0 {
            kinds = pb::EventKind::ALL_BUT_PACKETS
                .iter()
                .fold(0, |mask, kind| mask | 1 << (*kind as i32));
        }
        if let Some(bad) = request
            .topic_filters
            .iter()
            .find(|f| !topic::is_valid_topic_filter(f))
        {
            return Err(Status::invalid_argument(format!(
                "`{bad}` is not a valid MQTT topic filter"
            )));
        }
        Ok(Self {
            kinds,
            topic_filters: request.topic_filters.clone(),
            omit_payload: request.omit_payload,
        })
    }

    /// Whether `event` passes: its kind is wanted and, for message kinds with topic filters
    /// given, its topic matches one of them.
    pub(super) fn matches(&self, event: &pb::Event) -> bool {
        let kind = event.kind();
        if kind == pb::EventKind::Unspecified || self.kinds & (1 << (kind as i32)) == 0 {
            return false;
        }
        if !kind.is_message() || self.topic_filters.is_empty() {
            return true;
        }
        message_topic(event)
            .is_some_and(|t| self.topic_filters.iter().any(|f| topic::matches(f, t)))
    }

    /// The event as this watcher gets it: numbered `sequence`, payload left out if asked.
    pub(super) fn prepare(&self, event: &pb::Event, sequence: u64) -> pb::Event {
        let mut event = event.clone();
        event.sequence = sequence;
        if self.omit_payload
            && let Some(message) = message_event(&mut event).and_then(|m| m.message.as_mut())
        {
            message.payload.clear();
        }
        event
    }
}

/// The message event inside a message-kind event.
fn message_event(event: &mut pb::Event) -> Option<&mut pb::MessageEvent> {
    use pb::event::Body;
    match event.body.as_mut()? {
        Body::MessageReceived(m)
        | Body::MessageBroadcast(m)
        | Body::RetainedStored(m)
        | Body::RetainedCleared(m) => Some(m),
        _ => None,
    }
}

/// The topic of a message-kind event.
fn message_topic(event: &pb::Event) -> Option<&str> {
    use pb::event::Body;
    match event.body.as_ref()? {
        Body::MessageReceived(m)
        | Body::MessageBroadcast(m)
        | Body::RetainedStored(m)
        | Body::RetainedCleared(m) => m.message.as_ref().map(|m| m.topic.as_str()),
        _ => None,
    }
}

/// The answer stream of one `WatchEvents` call: events from `watcher` that pass `filter`,
/// numbered from 1, until the client goes away (the stream is dropped) or `stop`.
pub(super) fn stream(
    watcher: Watcher,
    filter: EventFilter,
    stop: CancellationToken,
) -> EventStream {
    struct State {
        watcher: Watcher,
        filter: EventFilter,
        sequence: u64,
        stop: CancellationToken,
    }
    let state = State {
        watcher,
        filter,
        sequence: 0,
        stop,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        loop {
            let received = tokio::select! {
                // Events already buffered go out before the stop, so watchers see shutdown.
                biased;
                received = st.watcher.recv() => received,
                () = st.stop.cancelled() => return None,
            };
            match received {
                Ok(event) if st.filter.matches(&event) => {
                    st.sequence += 1;
                    let event = st.filter.prepare(&event, st.sequence);
                    return Some((Ok(event), st));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "event watcher too slow: oldest events dropped");
                    st.sequence += missed;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::event::Body;

    fn message(kind: fn(pb::MessageEvent) -> Body, topic: &str) -> pb::Event {
        pb::Event {
            body: Some(kind(pb::MessageEvent {
                client_id: "c".into(),
                username: None,
                message: Some(pb::Message {
                    topic: topic.into(),
                    payload: b"hello".to_vec(),
                    payload_size: 5,
                    ..pb::Message::default()
                }),
            })),
            ..pb::Event::default()
        }
    }

    fn connected() -> pb::Event {
        pb::Event {
            body: Some(Body::ClientConnected(pb::ClientConnected::default())),
            ..pb::Event::default()
        }
    }

    #[test]
    fn default_is_every_kind_but_packets_and_every_topic() {
        let filter = EventFilter::new(&admin_pb::WatchEventsRequest::default()).expect("valid");
        assert!(filter.matches(&connected()));
        assert!(filter.matches(&message(Body::MessageBroadcast, "a/b")));
        let packet = pb::Event {
            body: Some(Body::PacketReceived(pb::PacketEvent::default())),
            ..pb::Event::default()
        };
        assert!(!filter.matches(&packet));
        assert!(!filter.matches(&pb::Event::default()));
    }

    #[test]
    fn kinds_and_topic_filters_narrow_and_payloads_can_be_left_out() {
        let request = admin_pb::WatchEventsRequest {
            kinds: vec![pb::EventKind::MessageBroadcast as i32],
            topic_filters: vec!["sensors/#".into()],
            omit_payload: true,
        };
        let filter = EventFilter::new(&request).expect("valid");
        assert!(!filter.matches(&connected()));
        assert!(!filter.matches(&message(Body::MessageReceived, "sensors/a")));
        assert!(!filter.matches(&message(Body::MessageBroadcast, "other")));
        let event = message(Body::MessageBroadcast, "sensors/a");
        assert!(filter.matches(&event));
        let sent = filter.prepare(&event, 7);
        assert_eq!(sent.sequence, 7);
        let Some(Body::MessageBroadcast(m)) = sent.body else {
            panic!("kind kept")
        };
        let m = m.message.expect("message");
        assert_eq!((m.payload.len(), m.payload_size), (0, 5));
    }

    #[test]
    fn bad_kinds_and_filters_are_invalid_arguments() {
        for request in [
            admin_pb::WatchEventsRequest {
                kinds: vec![0],
                ..Default::default()
            },
            admin_pb::WatchEventsRequest {
                kinds: vec![99],
                ..Default::default()
            },
            admin_pb::WatchEventsRequest {
                topic_filters: vec!["a/#/b".into()],
                ..Default::default()
            },
        ] {
            let err = EventFilter::new(&request).expect_err("invalid");
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
        }
    }
}
