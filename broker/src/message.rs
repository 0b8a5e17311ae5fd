//! The broker's own view of an application message, independent of the protocol version it
//! arrived with.

use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use tokio::time::Instant;

use crate::codec::QoS;
use crate::codec::v5::{PublishProperties, SubscriptionId, UserProperties};

/// An application message on its way through the broker.
///
/// Cloning is cheap (reference-count increments): topic and payload share the buffer the
/// message was decoded from, so fan-out never copies a payload, and the MQTT 5 properties are
/// shared behind one `Arc`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// Topic name the message was published to.
    pub(crate) topic: ByteString,
    /// Application payload.
    pub(crate) payload: Bytes,
    /// QoS: as published, or, once queued for a subscriber, the QoS it is delivered with.
    pub(crate) qos: QoS,
    /// Retain flag: as published, or, once queued, whether it is delivered as retained.
    pub(crate) retain: bool,
    /// The MQTT 5 properties forwarded to subscribers unchanged; `None` when there are none
    /// (every MQTT 3.1.1 message).
    pub(crate) properties: Option<Arc<MessageProperties>>,
    /// When the message expires (MQTT 5 Message Expiry Interval, counted from receipt): an
    /// expired message is not delivered, and the interval forwarded is what is left.
    pub(crate) expires_at: Option<Instant>,
    /// Subscription identifiers of the subscriptions that matched, for one subscriber's copy
    /// (MQTT 5 §3.3.4); empty on the published message.
    pub(crate) subscription_ids: SubscriptionIds,
    /// The shared subscription (`$share/{group}/{filter}`, as subscribed) one subscriber's copy
    /// was delivered through, so that it can go to another member of the group if this one
    /// disconnects before acknowledging it; `None` otherwise (one pointer, no allocation).
    pub(crate) shared_origin: SharedOrigin,
}

/// See [`Message::shared_origin`]: the key is shared by every copy the group delivers.
pub(crate) type SharedOrigin = Option<Arc<ByteString>>;

/// The subscription identifiers carried by one subscriber's copy of a message. Boxed, so a
/// message without identifiers (almost all of them) pays one pointer.
pub(crate) type SubscriptionIds = Option<Box<[SubscriptionId]>>;

/// The MQTT 5 PUBLISH properties that travel with a message from publisher to subscribers
/// ([MQTT-3.3.2-4] and the statements after it: the server forwards them unaltered).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MessageProperties {
    /// Payload Format Indicator: `true` for UTF-8 text.
    pub(crate) payload_format_indicator: Option<bool>,
    /// Content Type.
    pub(crate) content_type: Option<ByteString>,
    /// Response Topic (request/response).
    pub(crate) response_topic: Option<ByteString>,
    /// Correlation Data (request/response).
    pub(crate) correlation_data: Option<Bytes>,
    /// User properties, in the order the publisher sent them ([MQTT-3.3.2-18]).
    pub(crate) user_properties: UserProperties,
}

impl MessageProperties {
    /// The forwarded properties of a PUBLISH, or `None` if it has none of them.
    pub(crate) fn from_publish(p: &PublishProperties) -> Option<Arc<Self>> {
        let props = MessageProperties {
            payload_format_indicator: p.payload_format_indicator,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user_properties: p.user_properties.clone(),
        };
        (props != MessageProperties::default()).then(|| Arc::new(props))
    }

    /// Copies every string and binary out of the buffer they were decoded from, so a message
    /// kept for long (retained, will) does not pin that buffer.
    pub(crate) fn owned(&self) -> Self {
        let s = |v: &ByteString| ByteString::from(v.to_string());
        MessageProperties {
            payload_format_indicator: self.payload_format_indicator,
            content_type: self.content_type.as_ref().map(s),
            response_topic: self.response_topic.as_ref().map(s),
            correlation_data: self.correlation_data.as_deref().map(Bytes::copy_from_slice),
            user_properties: self
                .user_properties
                .iter()
                .map(|(k, v)| (s(k), s(v)))
                .collect(),
        }
    }
}

impl Message {
    /// A message with no MQTT 5 properties and no expiry.
    pub(crate) fn new(topic: ByteString, payload: Bytes, qos: QoS, retain: bool) -> Self {
        Message {
            topic,
            payload,
            qos,
            retain,
            properties: None,
            expires_at: None,
            subscription_ids: None,
            shared_origin: None,
        }
    }

    /// A copy of this message for a subscriber granted `max_qos`, with the given retain flag
    /// (subscription identifiers and shared origin are the caller's to set).
    pub(crate) fn for_subscriber(&self, max_qos: QoS, retain: bool) -> Message {
        Message {
            topic: self.topic.clone(),
            payload: self.payload.clone(),
            qos: self.qos.min(max_qos),
            retain,
            properties: self.properties.clone(),
            expires_at: self.expires_at,
            subscription_ids: None,
            shared_origin: None,
        }
    }

    /// Whether the message's expiry interval has passed at `now`.
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The Message Expiry Interval to forward at `now`: the seconds left, rounded up so a
    /// message that has not expired never goes out with 0. `None` without expiry.
    pub(crate) fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }

    /// A copy that shares no memory with the buffer it was decoded from (for retained
    /// messages and wills, which may live for long).
    pub(crate) fn owned(&self) -> Message {
        Message {
            topic: ByteString::from(self.topic.to_string()),
            payload: Bytes::copy_from_slice(&self.payload),
            qos: self.qos,
            retain: self.retain,
            properties: self.properties.as_ref().map(|p| Arc::new(p.owned())),
            expires_at: self.expires_at,
            subscription_ids: None,
            shared_origin: None,
        }
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("properties", &self.properties)
            .field("expires_at", &self.expires_at)
            .field("subscription_ids", &self.subscription_ids)
            .field("shared_origin", &self.shared_origin)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn remaining_expiry_rounds_up_and_expiry_is_exclusive_of_the_future() {
        let now = Instant::now();
        let mut m = Message::new("t".into(), Bytes::new(), QoS::AtMostOnce, false);
        assert_eq!(m.remaining_expiry(now), None);
        assert!(!m.is_expired(now));
        m.expires_at = Some(now + Duration::from_millis(1500));
        assert_eq!(m.remaining_expiry(now), Some(2));
        assert!(!m.is_expired(now));
        assert!(m.is_expired(now + Duration::from_secs(2)));
    }

    #[test]
    fn only_publishes_with_forwarded_properties_get_some() {
        assert!(MessageProperties::from_publish(&PublishProperties::default()).is_none());
        let with = PublishProperties {
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        assert!(MessageProperties::from_publish(&with).is_some());
    }
}

/// Who published a message (for events); `None` fields for broker-originated messages.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Origin<'a> {
    /// Publishing client's id ("" for the broker itself).
    pub(crate) client_id: &'a str,
    /// Publishing client's user name.
    pub(crate) username: Option<&'a str>,
}
