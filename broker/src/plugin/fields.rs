//! Field numbers of the protobuf messages the hand-written encoders ([`super::emit`], the event
//! buffer) write, by name. They come from the `.proto` files; a test reads the compiled
//! descriptor set (`midge_proto::FILE_DESCRIPTOR_SET`) and checks every one, so a renumbered
//! field fails the build's tests instead of corrupting events.

/// `google.protobuf.Timestamp`.
pub(super) mod timestamp {
    /// `seconds`.
    pub(crate) const SECONDS: u32 = 1;
    /// `nanos`.
    pub(crate) const NANOS: u32 = 2;
}

/// `midge.plugin.v1.EventBatch`.
pub(super) mod event_batch {
    /// `events`.
    pub(crate) const EVENTS: u32 = 2;
}

/// `midge.plugin.v1.Event`.
pub(super) mod event {
    /// `sequence`.
    pub(crate) const SEQUENCE: u32 = 1;
    /// `time`.
    pub(crate) const TIME: u32 = 2;
    /// `message_received` (body).
    pub(crate) const MESSAGE_RECEIVED: u32 = 18;
    /// `message_broadcast` (body).
    pub(crate) const MESSAGE_BROADCAST: u32 = 19;
    /// `retained_stored` (body).
    pub(crate) const RETAINED_STORED: u32 = 20;
    /// `retained_cleared` (body).
    pub(crate) const RETAINED_CLEARED: u32 = 21;
}

/// `midge.plugin.v1.MessageEvent`.
pub(super) mod message_event {
    /// `client_id`.
    pub(crate) const CLIENT_ID: u32 = 1;
    /// `username`.
    pub(crate) const USERNAME: u32 = 2;
    /// `message`.
    pub(crate) const MESSAGE: u32 = 3;
}

/// `midge.plugin.v1.Message`.
pub(super) mod message {
    /// `topic`.
    pub(crate) const TOPIC: u32 = 1;
    /// `payload`.
    pub(crate) const PAYLOAD: u32 = 2;
    /// `payload_size`.
    pub(crate) const PAYLOAD_SIZE: u32 = 3;
    /// `qos`.
    pub(crate) const QOS: u32 = 4;
    /// `retain`.
    pub(crate) const RETAIN: u32 = 5;
    /// `properties`.
    pub(crate) const PROPERTIES: u32 = 6;
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_types::FileDescriptorSet;

    use super::*;

    #[test]
    fn every_field_number_is_the_descriptors() {
        let fds = FileDescriptorSet::decode(midge_proto::FILE_DESCRIPTOR_SET)
            .expect("the compiled descriptor set");
        let number = |package: &str, message: &str, field: &str| -> u32 {
            let file = fds
                .file
                .iter()
                .filter(|f| f.package() == package)
                .find(|f| f.message_type.iter().any(|m| m.name() == message))
                .unwrap_or_else(|| panic!("{package}.{message} in the descriptor set"));
            let m = file
                .message_type
                .iter()
                .find(|m| m.name() == message)
                .expect("the message");
            let f = m
                .field
                .iter()
                .find(|f| f.name() == field)
                .unwrap_or_else(|| panic!("{package}.{message}.{field}"));
            u32::try_from(f.number()).expect("a positive field number")
        };
        let plugin = "midge.plugin.v1";
        let cases = [
            (
                "google.protobuf",
                "Timestamp",
                "seconds",
                timestamp::SECONDS,
            ),
            ("google.protobuf", "Timestamp", "nanos", timestamp::NANOS),
            (plugin, "EventBatch", "events", event_batch::EVENTS),
            (plugin, "Event", "sequence", event::SEQUENCE),
            (plugin, "Event", "time", event::TIME),
            (plugin, "Event", "message_received", event::MESSAGE_RECEIVED),
            (
                plugin,
                "Event",
                "message_broadcast",
                event::MESSAGE_BROADCAST,
            ),
            (plugin, "Event", "retained_stored", event::RETAINED_STORED),
            (plugin, "Event", "retained_cleared", event::RETAINED_CLEARED),
            (
                plugin,
                "MessageEvent",
                "client_id",
                message_event::CLIENT_ID,
            ),
            (plugin, "MessageEvent", "username", message_event::USERNAME),
            (plugin, "MessageEvent", "message", message_event::MESSAGE),
            (plugin, "Message", "topic", message::TOPIC),
            (plugin, "Message", "payload", message::PAYLOAD),
            (plugin, "Message", "payload_size", message::PAYLOAD_SIZE),
            (plugin, "Message", "qos", message::QOS),
            (plugin, "Message", "retain", message::RETAIN),
            (plugin, "Message", "properties", message::PROPERTIES),
        ];
        for (package, message, field, ours) in cases {
            assert_eq!(
                number(package, message, field),
                ours,
                "{package}.{message}.{field}"
            );
        }
    }
}
