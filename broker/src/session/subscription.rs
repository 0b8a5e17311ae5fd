//! [`Subscription`]: what a session holds for each of its topic filters.

#[cfg(test)]
use crate::codec::QoS;
use crate::codec::v5::{SubscriptionId, SubscriptionOptions};

/// One session's subscription to one filter: the MQTT 5 options (3.1.1 subscriptions have
/// only the QoS set) and the subscription identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subscription {
    /// Maximum QoS, No Local, Retain As Published, Retain Handling.
    pub(crate) options: SubscriptionOptions,
    /// The MQTT 5 Subscription Identifier, returned with every message it delivers.
    pub(crate) id: Option<SubscriptionId>,
}

impl Subscription {
    /// A plain subscription at `qos` (what 3.1.1 has).
    #[cfg(test)]
    pub(crate) fn qos(qos: QoS) -> Self {
        Subscription {
            options: SubscriptionOptions::new(qos),
            id: None,
        }
    }
}
