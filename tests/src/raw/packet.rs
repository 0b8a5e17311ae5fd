//! MQTT 3.1.1 packets written and read by hand, independent of the broker's codec: builders
//! for what a test sends, a splitter and accessors for what it receives.
//!
//! Why one file over 500 lines: every MQTT 3.1.1 packet a test sends or reads, independently of
//! the broker's codec.

use std::fmt;

/// Packet type CONNECT (the high nibble of the first byte).
pub const CONNECT: u8 = 1;
/// Packet type CONNACK.
pub const CONNACK: u8 = 2;
/// Packet type PUBLISH.
pub const PUBLISH: u8 = 3;
/// Packet type PUBACK.
pub const PUBACK: u8 = 4;
/// Packet type PUBREC.
pub const PUBREC: u8 = 5;
/// Packet type PUBREL.
pub const PUBREL: u8 = 6;
/// Packet type PUBCOMP.
pub const PUBCOMP: u8 = 7;
/// Packet type SUBSCRIBE.
pub const SUBSCRIBE: u8 = 8;
/// Packet type SUBACK.
pub const SUBACK: u8 = 9;
/// Packet type UNSUBSCRIBE.
pub const UNSUBSCRIBE: u8 = 10;
/// Packet type UNSUBACK.
pub const UNSUBACK: u8 = 11;
/// Packet type PINGREQ.
pub const PINGREQ: u8 = 12;
/// Packet type PINGRESP.
pub const PINGRESP: u8 = 13;
/// Packet type DISCONNECT.
pub const DISCONNECT: u8 = 14;

/// The name of packet type `kind`, for messages.
pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        CONNECT => "CONNECT",
        CONNACK => "CONNACK",
        PUBLISH => "PUBLISH",
        PUBACK => "PUBACK",
        PUBREC => "PUBREC",
        PUBREL => "PUBREL",
        PUBCOMP => "PUBCOMP",
        SUBSCRIBE => "SUBSCRIBE",
        SUBACK => "SUBACK",
        UNSUBSCRIBE => "UNSUBSCRIBE",
        UNSUBACK => "UNSUBACK",
        PINGREQ => "PINGREQ",
        PINGRESP => "PINGRESP",
        DISCONNECT => "DISCONNECT",
        _ => "RESERVED",
    }
}

/// Encodes the Remaining Length variable byte integer (1 to 4 bytes for valid lengths).
pub fn remaining_length(mut len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            return out;
        }
    }
}

/// A whole packet: `first_byte`, the Remaining Length of `body`, then `body`.
pub fn frame(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    out.extend(remaining_length(body.len()));
    out.extend_from_slice(body);
    out
}

/// Appends a length-prefixed UTF-8 string or binary field.
pub fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    let len = u16::try_from(s.len()).expect("MQTT strings are at most 65535 bytes");
    buf.extend(len.to_be_bytes());
    buf.extend_from_slice(s);
}

/// A Will Message carried by CONNECT.
#[derive(Debug, Clone)]
pub struct Will {
    /// Will Topic.
    pub topic: String,
    /// Will Message payload.
    pub payload: Vec<u8>,
    /// Will QoS (0..=2).
    pub qos: u8,
    /// Will Retain.
    pub retain: bool,
}

/// A CONNECT packet's fields; `Connect::new(id).encode()` is a valid 3.1.1 CONNECT with clean
/// session 1 and a 30 s keepalive.
#[derive(Debug, Clone)]
pub struct Connect {
    /// Protocol Name, `MQTT` for 3.1.1.
    pub protocol_name: String,
    /// Protocol Level, 4 for 3.1.1.
    pub level: u8,
    /// Client Identifier.
    pub client_id: String,
    /// Clean Session flag.
    pub clean_session: bool,
    /// Keep Alive in seconds (0 disables it).
    pub keep_alive: u16,
    /// Will Message.
    pub will: Option<Will>,
    /// User Name.
    pub username: Option<String>,
    /// Password (only sent together with a user name).
    pub password: Option<Vec<u8>>,
}

impl Connect {
    /// A 3.1.1 CONNECT for `client_id`, clean session, keepalive 30 s.
    pub fn new(client_id: &str) -> Self {
        Connect {
            protocol_name: "MQTT".to_owned(),
            level: 4,
            client_id: client_id.to_owned(),
            clean_session: true,
            keep_alive: 30,
            will: None,
            username: None,
            password: None,
        }
    }

    /// Sets the Clean Session flag.
    pub fn clean_session(mut self, clean: bool) -> Self {
        self.clean_session = clean;
        self
    }

    /// Sets Keep Alive, in seconds.
    pub fn keep_alive(mut self, secs: u16) -> Self {
        self.keep_alive = secs;
        self
    }

    /// Sets the Protocol Level.
    pub fn level(mut self, level: u8) -> Self {
        self.level = level;
        self
    }

    /// Sets the Protocol Name.
    pub fn protocol_name(mut self, name: &str) -> Self {
        self.protocol_name = name.to_owned();
        self
    }

    /// Sets a Will Message.
    pub fn will(mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Self {
        self.will = Some(Will {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos,
            retain,
        });
        self
    }

    /// Sets the User Name.
    pub fn username(mut self, username: &str) -> Self {
        self.username = Some(username.to_owned());
        self
    }

    /// Sets the Password.
    pub fn password(mut self, password: &[u8]) -> Self {
        self.password = Some(password.to_vec());
        self
    }

    /// The CONNECT packet's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        put_str(&mut body, self.protocol_name.as_bytes());
        body.push(self.level);
        let mut flags = 0u8;
        if self.clean_session {
            flags |= 0x02;
        }
        if let Some(will) = &self.will {
            flags |= 0x04 | (will.qos << 3);
            if will.retain {
                flags |= 0x20;
            }
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        body.push(flags);
        body.extend(self.keep_alive.to_be_bytes());
        put_str(&mut body, self.client_id.as_bytes());
        if let Some(will) = &self.will {
            put_str(&mut body, will.topic.as_bytes());
            put_str(&mut body, &will.payload);
        }
        if let Some(username) = &self.username {
            put_str(&mut body, username.as_bytes());
        }
        if let Some(password) = &self.password {
            put_str(&mut body, password);
        }
        frame(CONNECT << 4, &body)
    }
}

/// A PUBLISH packet's fields, for sending and as decoded from received packets.
#[derive(Clone, PartialEq, Eq)]
pub struct Publish {
    /// Topic Name.
    pub topic: String,
    /// Application payload.
    pub payload: Vec<u8>,
    /// QoS (0..=2).
    pub qos: u8,
    /// RETAIN flag.
    pub retain: bool,
    /// DUP flag.
    pub dup: bool,
    /// Packet Identifier; present when `qos > 0`.
    pub packet_id: Option<u16>,
}

impl fmt::Debug for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("topic", &self.topic)
            .field("payload", &String::from_utf8_lossy(&self.payload))
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("dup", &self.dup)
            .field("packet_id", &self.packet_id)
            .finish()
    }
}

impl Publish {
    /// A QoS 0, non-retained PUBLISH.
    pub fn new(topic: &str, payload: &[u8]) -> Self {
        Publish {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos: 0,
            retain: false,
            dup: false,
            packet_id: None,
        }
    }

    /// Sets QoS and, for QoS > 0, the Packet Identifier.
    pub fn qos(mut self, qos: u8, packet_id: u16) -> Self {
        self.qos = qos;
        self.packet_id = (qos > 0).then_some(packet_id);
        self
    }

    /// Sets the RETAIN flag.
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Sets the DUP flag.
    pub fn dup(mut self, dup: bool) -> Self {
        self.dup = dup;
        self
    }

    /// The PUBLISH packet's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let first =
            (PUBLISH << 4) | (u8::from(self.dup) << 3) | (self.qos << 1) | u8::from(self.retain);
        let mut body = Vec::new();
        put_str(&mut body, self.topic.as_bytes());
        if let Some(id) = self.packet_id {
            body.extend(id.to_be_bytes());
        }
        body.extend_from_slice(&self.payload);
        frame(first, &body)
    }
}

/// SUBSCRIBE with packet id `id` and `(filter, requested QoS)` pairs.
pub fn subscribe(id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    for (filter, qos) in filters {
        put_str(&mut body, filter.as_bytes());
        body.push(*qos);
    }
    frame((SUBSCRIBE << 4) | 0x02, &body)
}

/// UNSUBSCRIBE with packet id `id`.
pub fn unsubscribe(id: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    for filter in filters {
        put_str(&mut body, filter.as_bytes());
    }
    frame((UNSUBSCRIBE << 4) | 0x02, &body)
}

/// PUBACK for `id`.
pub fn puback(id: u16) -> Vec<u8> {
    frame(PUBACK << 4, &id.to_be_bytes())
}

/// PUBREC for `id`.
pub fn pubrec(id: u16) -> Vec<u8> {
    frame(PUBREC << 4, &id.to_be_bytes())
}

/// PUBREL for `id` (fixed header flags 0b0010).
pub fn pubrel(id: u16) -> Vec<u8> {
    frame((PUBREL << 4) | 0x02, &id.to_be_bytes())
}

/// PUBCOMP for `id`.
pub fn pubcomp(id: u16) -> Vec<u8> {
    frame(PUBCOMP << 4, &id.to_be_bytes())
}

/// PINGREQ.
pub fn pingreq() -> Vec<u8> {
    vec![PINGREQ << 4, 0]
}

/// DISCONNECT.
pub fn disconnect() -> Vec<u8> {
    vec![DISCONNECT << 4, 0]
}

/// CONNACK's two fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// Connect Return code (0 = accepted).
    pub code: u8,
}

/// A received packet: its first byte and its body (everything after Remaining Length).
#[derive(Clone, PartialEq, Eq)]
pub struct Packet {
    /// Packet type (high nibble) and flags (low nibble).
    pub first_byte: u8,
    /// Variable header and payload.
    pub body: Vec<u8>,
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind() == PUBLISH {
            if let Ok(p) = self.try_publish() {
                return write!(f, "{p:?}");
            }
        }
        write!(
            f,
            "{}(flags={:#06b}, body={:?})",
            kind_name(self.kind()),
            self.flags(),
            self.body
        )
    }
}

impl Packet {
    /// The packet type.
    pub fn kind(&self) -> u8 {
        self.first_byte >> 4
    }

    /// The fixed header flags.
    pub fn flags(&self) -> u8 {
        self.first_byte & 0x0f
    }

    /// Decodes a CONNACK.
    ///
    /// # Panics
    ///
    /// If this is not a well-formed CONNACK.
    pub fn connack(&self) -> ConnAck {
        assert!(
            self.kind() == CONNACK && self.body.len() == 2 && self.body[0] & 0xfe == 0,
            "expected CONNACK, got {self:?}"
        );
        ConnAck {
            session_present: self.body[0] & 1 == 1,
            code: self.body[1],
        }
    }

    /// Decodes a PUBLISH.
    ///
    /// # Panics
    ///
    /// If this is not a well-formed PUBLISH.
    pub fn publish(&self) -> Publish {
        self.try_publish()
            .unwrap_or_else(|e| panic!("expected PUBLISH, got {self:?}: {e}"))
    }

    fn try_publish(&self) -> Result<Publish, String> {
        if self.kind() != PUBLISH {
            return Err("wrong packet type".into());
        }
        let qos = (self.first_byte >> 1) & 3;
        let len = self.body.get(..2).ok_or("no topic length")?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let topic = self.body.get(2..2 + len).ok_or("topic truncated")?;
        let topic = String::from_utf8(topic.to_vec()).map_err(|e| e.to_string())?;
        let mut rest = &self.body[2 + len..];
        let mut packet_id = None;
        if qos > 0 {
            let id = rest.get(..2).ok_or("no packet id")?;
            packet_id = Some(u16::from_be_bytes([id[0], id[1]]));
            rest = &rest[2..];
        }
        Ok(Publish {
            topic,
            payload: rest.to_vec(),
            qos,
            retain: self.first_byte & 1 == 1,
            dup: self.first_byte & 0x08 != 0,
            packet_id,
        })
    }

    /// Decodes a SUBACK into its packet id and return codes.
    ///
    /// # Panics
    ///
    /// If this is not a well-formed SUBACK.
    pub fn suback(&self) -> (u16, Vec<u8>) {
        assert!(
            self.kind() == SUBACK && self.body.len() >= 3,
            "expected SUBACK, got {self:?}"
        );
        (self.packet_id(), self.body[2..].to_vec())
    }

    /// The packet identifier at the start of the body (acks, SUBACK, UNSUBACK).
    ///
    /// # Panics
    ///
    /// If the body is shorter than two bytes.
    pub fn packet_id(&self) -> u16 {
        assert!(self.body.len() >= 2, "{self:?} has no packet identifier");
        u16::from_be_bytes([self.body[0], self.body[1]])
    }
}

/// Splits one complete packet off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a packet.
///
/// # Errors
///
/// If the Remaining Length is longer than four bytes.
pub fn split_packet(buf: &mut Vec<u8>) -> Result<Option<Packet>, String> {
    let mut len = 0usize;
    let mut shift = 0;
    let mut i = 1;
    loop {
        let Some(&byte) = buf.get(i) else {
            return Ok(None);
        };
        len |= usize::from(byte & 0x7f) << shift;
        i += 1;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if i > 4 {
            return Err(format!(
                "remaining length longer than 4 bytes: {:?}",
                &buf[..i]
            ));
        }
    }
    if buf.len() < i + len {
        return Ok(None);
    }
    let rest = buf.split_off(i + len);
    let packet = Packet {
        first_byte: buf[0],
        body: buf[i..].to_vec(),
    };
    *buf = rest;
    Ok(Some(packet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_length_examples_from_the_spec() {
        assert_eq!(remaining_length(0), [0x00]);
        assert_eq!(remaining_length(127), [0x7f]);
        assert_eq!(remaining_length(128), [0x80, 0x01]);
        assert_eq!(remaining_length(16_383), [0xff, 0x7f]);
        assert_eq!(remaining_length(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(remaining_length(268_435_455), [0xff, 0xff, 0xff, 0x7f]);
    }

    #[test]
    fn connect_bytes() {
        let bytes = Connect::new("c").keep_alive(10).username("u").encode();
        assert_eq!(
            bytes,
            [
                0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x82, 0, 10, 0, 1, b'c', 0, 1, b'u'
            ]
        );
    }

    #[test]
    fn publish_round_trip() {
        let p = Publish::new("a/b", b"hi").qos(1, 7).retain(true).dup(true);
        let mut buf = p.encode();
        assert_eq!(buf[0], 0x3b);
        buf.extend(pingreq());
        let packet = split_packet(&mut buf).unwrap().unwrap();
        assert_eq!(packet.publish(), p);
        assert_eq!(buf, pingreq());
    }

    #[test]
    fn partial_packets_wait_for_more() {
        let mut buf = vec![0x30, 0x80];
        assert_eq!(split_packet(&mut buf), Ok(None));
        let mut buf = vec![0x30, 5, 0, 1];
        assert_eq!(split_packet(&mut buf), Ok(None));
        assert!(split_packet(&mut vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    }
}
