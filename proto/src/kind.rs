//! Which [`EventKind`] each event body belongs to, so the broker (to filter by subscription) and
//! plugins (to dispatch) agree on one mapping.

use crate::generated::midge::plugin::v1::{Event, EventKind, event::Body};

impl Body {
    /// The kind a subscriber must have asked for (`DescribeResponse.events`) to get this body.
    pub fn kind(&self) -> EventKind {
        match self {
            Body::PreStart(_) => EventKind::BrokerPreStart,
            Body::PostStart(_) => EventKind::BrokerPostStart,
            Body::PreShutdown(_) => EventKind::BrokerPreShutdown,
            Body::PostShutdown(_) => EventKind::BrokerPostShutdown,
            Body::ClientConnected(_) => EventKind::ClientConnected,
            Body::ClientDisconnected(_) => EventKind::ClientDisconnected,
            Body::ClientSubscribed(_) => EventKind::ClientSubscribed,
            Body::ClientUnsubscribed(_) => EventKind::ClientUnsubscribed,
            Body::MessageReceived(_) => EventKind::MessageReceived,
            Body::MessageBroadcast(_) => EventKind::MessageBroadcast,
            Body::RetainedStored(_) => EventKind::RetainedStored,
            Body::RetainedCleared(_) => EventKind::RetainedCleared,
            Body::PacketReceived(_) => EventKind::PacketReceived,
            Body::PacketSent(_) => EventKind::PacketSent,
        }
    }
}

impl Event {
    /// The kind of this event's body; [`EventKind::Unspecified`] when the body is missing (or
    /// unknown to this version of the contract).
    pub fn kind(&self) -> EventKind {
        self.body
            .as_ref()
            .map_or(EventKind::Unspecified, Body::kind)
    }
}

impl EventKind {
    /// The high-volume kinds that are only sent when asked for by name.
    pub const PACKET_KINDS: [EventKind; 2] = [EventKind::PacketReceived, EventKind::PacketSent];

    /// Every kind except [`EventKind::Unspecified`] and the packet kinds: what a plugin that
    /// wants "all events" normally subscribes to.
    pub const ALL_BUT_PACKETS: [EventKind; 12] = [
        EventKind::BrokerPreStart,
        EventKind::BrokerPostStart,
        EventKind::BrokerPreShutdown,
        EventKind::BrokerPostShutdown,
        EventKind::ClientConnected,
        EventKind::ClientDisconnected,
        EventKind::ClientSubscribed,
        EventKind::ClientUnsubscribed,
        EventKind::MessageReceived,
        EventKind::MessageBroadcast,
        EventKind::RetainedStored,
        EventKind::RetainedCleared,
    ];

    /// True for the four start/shutdown kinds, which the broker awaits (under a deadline).
    pub fn is_lifecycle(self) -> bool {
        matches!(
            self,
            EventKind::BrokerPreStart
                | EventKind::BrokerPostStart
                | EventKind::BrokerPreShutdown
                | EventKind::BrokerPostShutdown
        )
    }

    /// True for the kinds filtered by `DescribeResponse.topic_filters` (they carry a message).
    pub fn is_message(self) -> bool {
        matches!(
            self,
            EventKind::MessageReceived
                | EventKind::MessageBroadcast
                | EventKind::RetainedStored
                | EventKind::RetainedCleared
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generated::midge::plugin::v1::{BrokerLifecycle, MessageEvent};

    #[test]
    fn kinds_follow_the_body() {
        let ev = Event {
            body: Some(Body::MessageBroadcast(MessageEvent::default())),
            ..Event::default()
        };
        assert_eq!(ev.kind(), EventKind::MessageBroadcast);
        assert!(ev.kind().is_message());
        assert_eq!(
            Body::PostShutdown(BrokerLifecycle::default()).kind(),
            EventKind::BrokerPostShutdown
        );
        assert!(EventKind::BrokerPostShutdown.is_lifecycle());
        assert_eq!(Event::default().kind(), EventKind::Unspecified);
    }

    #[test]
    fn all_but_packets_has_every_other_kind() {
        let mut every: Vec<i32> = EventKind::ALL_BUT_PACKETS
            .iter()
            .chain(EventKind::PACKET_KINDS.iter())
            .map(|k| *k as i32)
            .collect();
        every.sort_unstable();
        every.dedup();
        // Every enum value but UNSPECIFIED (0), once.
        let expected: Vec<i32> = (1..=14)
            .filter(|v| EventKind::try_from(*v).is_ok())
            .collect();
        assert_eq!(every, expected);
        assert_eq!(
            EventKind::try_from(15).ok(),
            None,
            "update ALL_BUT_PACKETS for new kinds"
        );
    }
}
