//! [`EventKindName`]: the event kinds a plugin's `events` list may name (the contract's
//! `EventKind` names in snake_case, plus `all`). Mapped to the contract by name in `plugin/`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// An event kind in `events`: the proto's `EventKind` names in snake_case without the
/// `EVENT_KIND_` prefix, plus `all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKindName {
    /// `broker_pre_start`.
    BrokerPreStart,
    /// `broker_post_start`.
    BrokerPostStart,
    /// `broker_pre_shutdown`.
    BrokerPreShutdown,
    /// `broker_post_shutdown`.
    BrokerPostShutdown,
    /// `client_connected`.
    ClientConnected,
    /// `client_disconnected`.
    ClientDisconnected,
    /// `client_subscribed`.
    ClientSubscribed,
    /// `client_unsubscribed`.
    ClientUnsubscribed,
    /// `message_received`.
    MessageReceived,
    /// `message_broadcast`.
    MessageBroadcast,
    /// `retained_stored`.
    RetainedStored,
    /// `retained_cleared`.
    RetainedCleared,
    /// `packet_received` (high volume; not part of `all`).
    PacketReceived,
    /// `packet_sent` (high volume; not part of `all`).
    PacketSent,
    /// `all`: every kind above except `packet_received` and `packet_sent`.
    All,
}

/// [`EventKindName::KINDS`] as a static, so that [`EventKindName::expand`] can lend slices.
static KINDS: [EventKindName; 14] = EventKindName::KINDS;

impl EventKindName {
    /// Every event kind (not `All`), in the order of the proto's `EventKind` numbers (1 to 14).
    pub const KINDS: [Self; 14] = [
        Self::BrokerPreStart,
        Self::BrokerPostStart,
        Self::BrokerPreShutdown,
        Self::BrokerPostShutdown,
        Self::ClientConnected,
        Self::ClientDisconnected,
        Self::ClientSubscribed,
        Self::ClientUnsubscribed,
        Self::MessageReceived,
        Self::MessageBroadcast,
        Self::RetainedStored,
        Self::RetainedCleared,
        Self::PacketReceived,
        Self::PacketSent,
    ];

    /// The name used in the config file, such as `client_connected` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BrokerPreStart => "broker_pre_start",
            Self::BrokerPostStart => "broker_post_start",
            Self::BrokerPreShutdown => "broker_pre_shutdown",
            Self::BrokerPostShutdown => "broker_post_shutdown",
            Self::ClientConnected => "client_connected",
            Self::ClientDisconnected => "client_disconnected",
            Self::ClientSubscribed => "client_subscribed",
            Self::ClientUnsubscribed => "client_unsubscribed",
            Self::MessageReceived => "message_received",
            Self::MessageBroadcast => "message_broadcast",
            Self::RetainedStored => "retained_stored",
            Self::RetainedCleared => "retained_cleared",
            Self::PacketReceived => "packet_received",
            Self::PacketSent => "packet_sent",
            Self::All => "all",
        }
    }

    /// The kind named `name` in the config file, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "all" {
            return Some(Self::All);
        }
        Self::KINDS.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether this is one of the two high-volume packet kinds.
    pub fn is_packet(self) -> bool {
        matches!(self, Self::PacketReceived | Self::PacketSent)
    }

    /// The kinds this name stands for: itself, or for `All` every kind but the packet kinds.
    pub fn expand(self) -> &'static [Self] {
        match KINDS.iter().position(|&kind| kind == self) {
            Some(index) => &KINDS[index..=index],
            None => &KINDS[..12],
        }
    }
}

impl fmt::Display for EventKindName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKindName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;

        impl Visitor<'_> for Name {
            type Value = EventKindName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event kind such as `client_connected`, or `all`")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<EventKindName, E> {
                if let Some(kind) = EventKindName::from_name(name) {
                    return Ok(kind);
                }
                let hint = name
                    .strip_prefix("EVENT_KIND_")
                    .unwrap_or(name)
                    .to_ascii_lowercase()
                    .replace('-', "_");
                match EventKindName::from_name(&hint) {
                    Some(kind) => Err(E::custom(format_args!(
                        "unknown event kind `{name}`: write `{kind}`"
                    ))),
                    None => Err(E::custom(format_args!(
                        "unknown event kind `{name}`, expected `all` or one of {}",
                        EventKindName::KINDS
                            .map(|kind| format!("`{kind}`"))
                            .join(", ")
                    ))),
                }
            }
        }

        deserializer.deserialize_str(Name)
    }
}
