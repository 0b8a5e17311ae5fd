//! MQTT 5.0 packets written and read by hand, independent of the broker's codec: properties
//! with their wire types, builders for CONNECT, PUBLISH, SUBSCRIBE and the rest, decoders for
//! what the broker sends, and [`V5Client`], a [`RawClient`] that speaks them.
//!
//! Why one file over 500 lines: a complete MQTT 5 codec for tests (every packet and property),
//! written independently of the broker's so that each checks the other.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use tokio::time::Instant;

use super::packet::{self, Packet, frame, put_str, remaining_length};
use super::{RawClient, Read};
use crate::TIMEOUT;

/// Property identifiers (MQTT 5 §2.2.2.2).
pub mod prop {
    /// Payload Format Indicator (byte).
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    /// Message Expiry Interval (four-byte integer).
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    /// Content Type (string).
    pub const CONTENT_TYPE: u8 = 0x03;
    /// Response Topic (string).
    pub const RESPONSE_TOPIC: u8 = 0x08;
    /// Correlation Data (binary).
    pub const CORRELATION_DATA: u8 = 0x09;
    /// Subscription Identifier (variable byte integer).
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    /// Session Expiry Interval (four-byte integer).
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    /// Assigned Client Identifier (string).
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    /// Server Keep Alive (two-byte integer).
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    /// Authentication Method (string).
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    /// Authentication Data (binary).
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    /// Request Problem Information (byte).
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    /// Will Delay Interval (four-byte integer).
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    /// Request Response Information (byte).
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    /// Response Information (string).
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    /// Server Reference (string).
    pub const SERVER_REFERENCE: u8 = 0x1C;
    /// Reason String (string).
    pub const REASON_STRING: u8 = 0x1F;
    /// Receive Maximum (two-byte integer).
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    /// Topic Alias Maximum (two-byte integer).
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    /// Topic Alias (two-byte integer).
    pub const TOPIC_ALIAS: u8 = 0x23;
    /// Maximum QoS (byte).
    pub const MAXIMUM_QOS: u8 = 0x24;
    /// Retain Available (byte).
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    /// User Property (string pair).
    pub const USER_PROPERTY: u8 = 0x26;
    /// Maximum Packet Size (four-byte integer).
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    /// Wildcard Subscription Available (byte).
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    /// Subscription Identifier Available (byte).
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    /// Shared Subscription Available (byte).
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Reason codes used by the tests (MQTT 5 §2.4).
pub mod reason {
    /// Success / Normal disconnection / Granted QoS 0.
    pub const SUCCESS: u8 = 0x00;
    /// Granted QoS 1.
    pub const GRANTED_QOS_1: u8 = 0x01;
    /// Granted QoS 2.
    pub const GRANTED_QOS_2: u8 = 0x02;
    /// Disconnect with Will Message.
    pub const DISCONNECT_WITH_WILL: u8 = 0x04;
    /// No matching subscribers.
    pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
    /// No subscription existed.
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    /// Malformed Packet.
    pub const MALFORMED_PACKET: u8 = 0x81;
    /// Protocol Error.
    pub const PROTOCOL_ERROR: u8 = 0x82;
    /// Not authorized.
    pub const NOT_AUTHORIZED: u8 = 0x87;
    /// Server shutting down.
    pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
    /// Keep Alive timeout.
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    /// Session taken over.
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    /// Receive Maximum exceeded.
    pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
    /// Topic Alias invalid.
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    /// Packet too large.
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    /// Quota exceeded.
    pub const QUOTA_EXCEEDED: u8 = 0x97;
    /// Administrative action.
    pub const ADMINISTRATIVE_ACTION: u8 = 0x98;
    /// Shared Subscriptions not supported.
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0x9E;
}

/// One property value, in its wire type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Byte.
    Byte(u8),
    /// Two-byte integer.
    U16(u16),
    /// Four-byte integer.
    U32(u32),
    /// Variable byte integer.
    VarInt(u32),
    /// UTF-8 string.
    Str(String),
    /// Binary data.
    Bin(Vec<u8>),
    /// UTF-8 string pair (user property).
    Pair(String, String),
}

/// Reads one property value; returns it and the bytes consumed.
type ReadValue = fn(&[u8]) -> Result<(Value, usize), String>;

/// The reader for the wire type of property `id`, or `None` for an unknown identifier.
fn kind_of(id: u8) -> Option<ReadValue> {
    use prop::*;
    Some(match id {
        PAYLOAD_FORMAT_INDICATOR
        | REQUEST_PROBLEM_INFORMATION
        | REQUEST_RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => |b| {
            let v = *b.first().ok_or("byte property truncated")?;
            Ok((Value::Byte(v), 1))
        },
        SERVER_KEEP_ALIVE | RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | TOPIC_ALIAS => |b| {
            let v = b.get(..2).ok_or("two-byte property truncated")?;
            Ok((Value::U16(u16::from_be_bytes([v[0], v[1]])), 2))
        },
        MESSAGE_EXPIRY_INTERVAL
        | SESSION_EXPIRY_INTERVAL
        | WILL_DELAY_INTERVAL
        | MAXIMUM_PACKET_SIZE => |b| {
            let v = b.get(..4).ok_or("four-byte property truncated")?;
            Ok((Value::U32(u32::from_be_bytes([v[0], v[1], v[2], v[3]])), 4))
        },
        SUBSCRIPTION_IDENTIFIER => |b| {
            let (v, n) = read_varint(b)?;
            Ok((Value::VarInt(v), n))
        },
        CONTENT_TYPE
        | RESPONSE_TOPIC
        | ASSIGNED_CLIENT_IDENTIFIER
        | AUTHENTICATION_METHOD
        | RESPONSE_INFORMATION
        | SERVER_REFERENCE
        | REASON_STRING => |b| {
            let (s, n) = read_bin(b)?;
            Ok((Value::Str(utf8(s)?), n))
        },
        CORRELATION_DATA | AUTHENTICATION_DATA => |b| {
            let (s, n) = read_bin(b)?;
            Ok((Value::Bin(s.to_vec()), n))
        },
        USER_PROPERTY => |b| {
            let (k, n) = read_bin(b)?;
            let (v, m) = read_bin(&b[n..])?;
            Ok((Value::Pair(utf8(k)?, utf8(v)?), n + m))
        },
        _ => return None,
    })
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| format!("not UTF-8: {e}"))
}

/// Reads a length-prefixed string or binary; returns it and the bytes consumed.
fn read_bin(b: &[u8]) -> Result<(&[u8], usize), String> {
    let len = b.get(..2).ok_or("length prefix truncated")?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let data = b.get(2..2 + len).ok_or("string or binary truncated")?;
    Ok((data, 2 + len))
}

/// Reads a variable byte integer; returns it and the bytes consumed.
pub fn read_varint(b: &[u8]) -> Result<(u32, usize), String> {
    let mut value = 0u32;
    for (i, byte) in b.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(format!("bad variable byte integer: {b:?}"))
}

/// A property list, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props(pub Vec<(u8, Value)>);

impl Props {
    /// No properties.
    pub fn new() -> Self {
        Props(Vec::new())
    }

    /// Adds a byte property.
    pub fn byte(mut self, id: u8, v: u8) -> Self {
        self.0.push((id, Value::Byte(v)));
        self
    }

    /// Adds a two-byte integer property.
    pub fn u16(mut self, id: u8, v: u16) -> Self {
        self.0.push((id, Value::U16(v)));
        self
    }

    /// Adds a four-byte integer property.
    pub fn u32(mut self, id: u8, v: u32) -> Self {
        self.0.push((id, Value::U32(v)));
        self
    }

    /// Adds a variable byte integer property.
    pub fn varint(mut self, id: u8, v: u32) -> Self {
        self.0.push((id, Value::VarInt(v)));
        self
    }

    /// Adds a string property.
    pub fn str(mut self, id: u8, v: &str) -> Self {
        self.0.push((id, Value::Str(v.to_owned())));
        self
    }

    /// Adds a binary property.
    pub fn bin(mut self, id: u8, v: &[u8]) -> Self {
        self.0.push((id, Value::Bin(v.to_vec())));
        self
    }

    /// Adds a user property.
    pub fn user(mut self, key: &str, value: &str) -> Self {
        self.0
            .push((prop::USER_PROPERTY, Value::Pair(key.into(), value.into())));
        self
    }

    /// The encoded property list, length first.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for (id, value) in &self.0 {
            body.push(*id);
            match value {
                Value::Byte(v) => body.push(*v),
                Value::U16(v) => body.extend(v.to_be_bytes()),
                Value::U32(v) => body.extend(v.to_be_bytes()),
                Value::VarInt(v) => body.extend(remaining_length(*v as usize)),
                Value::Str(s) => put_str(&mut body, s.as_bytes()),
                Value::Bin(b) => put_str(&mut body, b),
                Value::Pair(k, v) => {
                    put_str(&mut body, k.as_bytes());
                    put_str(&mut body, v.as_bytes());
                }
            }
        }
        let mut out = remaining_length(body.len());
        out.extend(body);
        out
    }

    /// Decodes a property list (length first); returns it and the bytes consumed.
    ///
    /// # Errors
    ///
    /// If the list is truncated or has an unknown identifier.
    pub fn decode(b: &[u8]) -> Result<(Props, usize), String> {
        let (len, n) = read_varint(b)?;
        let end = n + len as usize;
        let mut list = b.get(n..end).ok_or("property list truncated")?;
        let mut props = Props::new();
        while let Some((&id, rest)) = list.split_first() {
            let read = kind_of(id).ok_or(format!("unknown property 0x{id:02x}"))?;
            let (value, used) = read(rest)?;
            props.0.push((id, value));
            list = &rest[used..];
        }
        Ok((props, end))
    }

    /// The first value of property `id`.
    pub fn get(&self, id: u8) -> Option<&Value> {
        self.0.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
    }

    /// How many times property `id` appears.
    pub fn count(&self, id: u8) -> usize {
        self.0.iter().filter(|(i, _)| *i == id).count()
    }

    /// A byte property.
    pub fn get_byte(&self, id: u8) -> Option<u8> {
        match self.get(id)? {
            Value::Byte(v) => Some(*v),
            other => panic!("property 0x{id:02x} is {other:?}"),
        }
    }

    /// A two-byte integer property.
    pub fn get_u16(&self, id: u8) -> Option<u16> {
        match self.get(id)? {
            Value::U16(v) => Some(*v),
            other => panic!("property 0x{id:02x} is {other:?}"),
        }
    }

    /// A four-byte integer property.
    pub fn get_u32(&self, id: u8) -> Option<u32> {
        match self.get(id)? {
            Value::U32(v) => Some(*v),
            other => panic!("property 0x{id:02x} is {other:?}"),
        }
    }

    /// A string property.
    pub fn get_str(&self, id: u8) -> Option<&str> {
        match self.get(id)? {
            Value::Str(v) => Some(v),
            other => panic!("property 0x{id:02x} is {other:?}"),
        }
    }

    /// A binary property.
    pub fn get_bin(&self, id: u8) -> Option<&[u8]> {
        match self.get(id)? {
            Value::Bin(v) => Some(v),
            other => panic!("property 0x{id:02x} is {other:?}"),
        }
    }

    /// Every Subscription Identifier, in order.
    pub fn subscription_ids(&self) -> Vec<u32> {
        self.0
            .iter()
            .filter_map(|(_, v)| match v {
                Value::VarInt(v) => Some(*v),
                _ => None,
            })
            .collect()
    }

    /// Every user property, in order.
    pub fn user_properties(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter_map(|(_, v)| match v {
                Value::Pair(k, v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }
}

/// An MQTT 5 will.
#[derive(Debug, Clone)]
pub struct Will5 {
    /// Will Topic.
    pub topic: String,
    /// Will Payload.
    pub payload: Vec<u8>,
    /// Will QoS.
    pub qos: u8,
    /// Will Retain.
    pub retain: bool,
    /// Will Properties.
    pub props: Props,
}

/// An MQTT 5 CONNECT; `Connect5::new(id)` has Clean Start 1, keep alive 30 s, no properties.
#[derive(Debug, Clone)]
pub struct Connect5 {
    /// Client Identifier.
    pub client_id: String,
    /// Clean Start.
    pub clean_start: bool,
    /// Keep Alive, seconds.
    pub keep_alive: u16,
    /// CONNECT properties.
    pub props: Props,
    /// Will.
    pub will: Option<Will5>,
    /// User Name.
    pub username: Option<String>,
}

impl Connect5 {
    /// A CONNECT for `client_id`, Clean Start 1, keep alive 30 s.
    pub fn new(client_id: &str) -> Self {
        Connect5 {
            client_id: client_id.to_owned(),
            clean_start: true,
            keep_alive: 30,
            props: Props::new(),
            will: None,
            username: None,
        }
    }

    /// Sets Clean Start.
    pub fn clean_start(mut self, clean: bool) -> Self {
        self.clean_start = clean;
        self
    }

    /// Sets Keep Alive.
    pub fn keep_alive(mut self, secs: u16) -> Self {
        self.keep_alive = secs;
        self
    }

    /// Sets the CONNECT properties.
    pub fn props(mut self, props: Props) -> Self {
        self.props = props;
        self
    }

    /// Sets the Session Expiry Interval property (on top of the others).
    pub fn session_expiry(mut self, secs: u32) -> Self {
        self.props = self.props.u32(prop::SESSION_EXPIRY_INTERVAL, secs);
        self
    }

    /// Sets a will.
    pub fn will(mut self, topic: &str, payload: &[u8], qos: u8, props: Props) -> Self {
        self.will = Some(Will5 {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos,
            retain: false,
            props,
        });
        self
    }

    /// The encoded packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        put_str(&mut body, b"MQTT");
        body.push(5);
        let mut flags = 0u8;
        if self.clean_start {
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
        body.push(flags);
        body.extend(self.keep_alive.to_be_bytes());
        body.extend(self.props.encode());
        put_str(&mut body, self.client_id.as_bytes());
        if let Some(will) = &self.will {
            body.extend(will.props.encode());
            put_str(&mut body, will.topic.as_bytes());
            put_str(&mut body, &will.payload);
        }
        if let Some(user) = &self.username {
            put_str(&mut body, user.as_bytes());
        }
        frame(0x10, &body)
    }
}

/// An MQTT 5 PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish5 {
    /// Topic Name (empty with a topic alias).
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS.
    pub qos: u8,
    /// RETAIN.
    pub retain: bool,
    /// DUP.
    pub dup: bool,
    /// Packet Identifier (QoS 1 and 2).
    pub packet_id: Option<u16>,
    /// PUBLISH properties.
    pub props: Props,
}

impl Publish5 {
    /// A QoS 0 PUBLISH without properties.
    pub fn new(topic: &str, payload: &[u8]) -> Self {
        Publish5 {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos: 0,
            retain: false,
            dup: false,
            packet_id: None,
            props: Props::new(),
        }
    }

    /// Sets QoS and packet id.
    pub fn qos(mut self, qos: u8, packet_id: u16) -> Self {
        self.qos = qos;
        self.packet_id = (qos > 0).then_some(packet_id);
        self
    }

    /// Sets RETAIN.
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Sets the properties.
    pub fn props(mut self, props: Props) -> Self {
        self.props = props;
        self
    }

    /// The encoded packet.
    pub fn encode(&self) -> Vec<u8> {
        let first = 0x30 | (u8::from(self.dup) << 3) | (self.qos << 1) | u8::from(self.retain);
        let mut body = Vec::new();
        put_str(&mut body, self.topic.as_bytes());
        if let Some(id) = self.packet_id {
            body.extend(id.to_be_bytes());
        }
        body.extend(self.props.encode());
        body.extend_from_slice(&self.payload);
        frame(first, &body)
    }
}

/// A SUBSCRIBE with packet id `id`, properties `props` and `(filter, options byte)` pairs.
pub fn subscribe(id: u16, props: &Props, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    body.extend(props.encode());
    for (filter, options) in filters {
        put_str(&mut body, filter.as_bytes());
        body.push(*options);
    }
    frame(0x82, &body)
}

/// Subscription options byte: maximum QoS, No Local, Retain As Published, Retain Handling.
pub fn options(qos: u8, no_local: bool, retain_as_published: bool, retain_handling: u8) -> u8 {
    qos | (u8::from(no_local) << 2) | (u8::from(retain_as_published) << 3) | (retain_handling << 4)
}

/// An UNSUBSCRIBE with packet id `id`.
pub fn unsubscribe(id: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    body.push(0);
    for filter in filters {
        put_str(&mut body, filter.as_bytes());
    }
    frame(0xa2, &body)
}

/// PUBACK / PUBREC / PUBREL / PUBCOMP (`kind`) with packet id `id` and reason `reason`.
pub fn ack(kind: u8, id: u16, reason: u8) -> Vec<u8> {
    let first = if kind == packet::PUBREL {
        0x62
    } else {
        kind << 4
    };
    let mut body = id.to_be_bytes().to_vec();
    if reason != 0 {
        body.push(reason);
    }
    frame(first, &body)
}

/// A DISCONNECT with `reason` and `props`.
pub fn disconnect(reason: u8, props: &Props) -> Vec<u8> {
    let mut body = vec![reason];
    body.extend(props.encode());
    frame(0xe0, &body)
}

/// A received CONNACK.
#[derive(Debug, Clone)]
pub struct ConnAck5 {
    /// Session Present.
    pub session_present: bool,
    /// Reason code.
    pub reason: u8,
    /// CONNACK properties.
    pub props: Props,
}

/// A received PUBACK, PUBREC, PUBREL or PUBCOMP, or UNSUBACK / SUBACK (codes in `codes`).
#[derive(Debug, Clone)]
pub struct Ack5 {
    /// Packet Identifier.
    pub packet_id: u16,
    /// Reason code (0 when the packet left it out).
    pub reason: u8,
    /// Properties.
    pub props: Props,
    /// SUBACK / UNSUBACK reason codes.
    pub codes: Vec<u8>,
}

/// A received DISCONNECT.
#[derive(Debug, Clone)]
pub struct Disconnect5 {
    /// Reason code (0 when left out).
    pub reason: u8,
    /// Properties.
    pub props: Props,
}

/// Decoding MQTT 5 packets out of a [`Packet`].
pub trait Decode5 {
    /// As a CONNACK.
    fn connack5(&self) -> ConnAck5;
    /// As a PUBLISH.
    fn publish5(&self) -> Publish5;
    /// As a PUBACK, PUBREC, PUBREL or PUBCOMP.
    fn ack5(&self) -> Ack5;
    /// As a SUBACK or UNSUBACK.
    fn suback5(&self) -> Ack5;
    /// As a DISCONNECT.
    fn disconnect5(&self) -> Disconnect5;
}

fn props_at(p: &Packet, at: usize) -> (Props, usize) {
    Props::decode(&p.body[at..])
        .map(|(props, n)| (props, at + n))
        .unwrap_or_else(|e| panic!("bad properties in {p:?}: {e}"))
}

impl Decode5 for Packet {
    fn connack5(&self) -> ConnAck5 {
        assert_eq!(self.kind(), packet::CONNACK, "not a CONNACK: {self:?}");
        let (props, _) = props_at(self, 2);
        ConnAck5 {
            session_present: self.body[0] & 1 == 1,
            reason: self.body[1],
            props,
        }
    }

    fn publish5(&self) -> Publish5 {
        assert_eq!(self.kind(), packet::PUBLISH, "not a PUBLISH: {self:?}");
        let flags = self.flags();
        let qos = (flags >> 1) & 3;
        let (topic, mut at) = read_bin(&self.body).expect("PUBLISH topic");
        let topic = utf8(topic).expect("PUBLISH topic is UTF-8");
        let packet_id = (qos > 0).then(|| {
            let id = u16::from_be_bytes([self.body[at], self.body[at + 1]]);
            at += 2;
            id
        });
        let (props, at) = props_at(self, at);
        Publish5 {
            topic,
            payload: self.body[at..].to_vec(),
            qos,
            retain: flags & 1 == 1,
            dup: flags & 8 == 8,
            packet_id,
            props,
        }
    }

    fn ack5(&self) -> Ack5 {
        let packet_id = self.packet_id();
        let reason = self.body.get(2).copied().unwrap_or(0);
        let props = if self.body.len() > 3 {
            props_at(self, 3).0
        } else {
            Props::new()
        };
        Ack5 {
            packet_id,
            reason,
            props,
            codes: Vec::new(),
        }
    }

    fn suback5(&self) -> Ack5 {
        let packet_id = self.packet_id();
        let (props, at) = props_at(self, 2);
        Ack5 {
            packet_id,
            reason: 0,
            props,
            codes: self.body[at..].to_vec(),
        }
    }

    fn disconnect5(&self) -> Disconnect5 {
        assert_eq!(
            self.kind(),
            packet::DISCONNECT,
            "not a DISCONNECT: {self:?}"
        );
        let reason = self.body.first().copied().unwrap_or(0);
        let props = if self.body.len() > 1 {
            props_at(self, 1).0
        } else {
            Props::new()
        };
        Disconnect5 { reason, props }
    }
}

/// A [`RawClient`] speaking MQTT 5 (every [`RawClient`] method is available through `Deref`).
#[derive(Debug)]
pub struct V5Client {
    /// The underlying connection.
    pub raw: RawClient,
}

impl Deref for V5Client {
    type Target = RawClient;

    fn deref(&self) -> &RawClient {
        &self.raw
    }
}

impl DerefMut for V5Client {
    fn deref_mut(&mut self) -> &mut RawClient {
        &mut self.raw
    }
}

impl V5Client {
    /// Opens a TCP connection, sends `connect` and returns the client with the CONNACK.
    ///
    /// # Panics
    ///
    /// If no CONNACK arrives.
    pub async fn connect(addr: SocketAddr, connect: &Connect5) -> (Self, ConnAck5) {
        let mut raw = RawClient::tcp(addr).await;
        raw.send_ok(&connect.encode()).await;
        let ack = raw.read_packet().await.connack5();
        (V5Client { raw }, ack)
    }

    /// Connects `connect`, asserting CONNACK reason 0.
    ///
    /// # Panics
    ///
    /// If the broker refuses.
    pub async fn connect_ok(addr: SocketAddr, connect: &Connect5) -> (Self, ConnAck5) {
        let (client, ack) = Self::connect(addr, connect).await;
        assert_eq!(
            ack.reason, 0,
            "CONNACK for {:?}: {ack:?}",
            connect.client_id
        );
        (client, ack)
    }

    /// Connects as `client_id` with Clean Start 1 and no properties.
    ///
    /// # Panics
    ///
    /// If the broker refuses.
    pub async fn connected(addr: SocketAddr, client_id: &str) -> Self {
        Self::connect_ok(addr, &Connect5::new(client_id)).await.0
    }

    /// Subscribes `(filter, options byte)` with `props` and returns the SUBACK reason codes.
    ///
    /// # Panics
    ///
    /// If no SUBACK arrives.
    pub async fn subscribe_with(
        &mut self,
        id: u16,
        props: &Props,
        filters: &[(&str, u8)],
    ) -> Vec<u8> {
        self.raw.send_ok(&subscribe(id, props, filters)).await;
        self.raw
            .wait_for(packet::SUBACK, Some(id))
            .await
            .suback5()
            .codes
    }

    /// Subscribes to `filter` at `qos` (no other options) and asserts it was granted.
    ///
    /// # Panics
    ///
    /// If it is not granted.
    pub async fn subscribe(&mut self, id: u16, filter: &str, qos: u8) {
        let codes = self
            .subscribe_with(id, &Props::new(), &[(filter, qos)])
            .await;
        assert_eq!(codes, [qos], "SUBACK for {filter}");
    }

    /// Unsubscribes and returns the UNSUBACK reason codes.
    ///
    /// # Panics
    ///
    /// If no UNSUBACK arrives.
    pub async fn unsubscribe(&mut self, id: u16, filters: &[&str]) -> Vec<u8> {
        self.raw.send_ok(&unsubscribe(id, filters)).await;
        self.raw
            .wait_for(packet::UNSUBACK, Some(id))
            .await
            .suback5()
            .codes
    }

    /// Publishes and completes the QoS flow; returns the PUBACK / PUBREC reason (0 for QoS 0).
    ///
    /// # Panics
    ///
    /// If an acknowledgement is missing.
    pub async fn publish(&mut self, publish: &Publish5) -> u8 {
        self.raw.send_ok(&publish.encode()).await;
        match (publish.qos, publish.packet_id) {
            (1, id @ Some(_)) => self.raw.wait_for(packet::PUBACK, id).await.ack5().reason,
            (2, Some(id)) => {
                let rec = self.raw.wait_for(packet::PUBREC, Some(id)).await.ack5();
                if rec.reason < 0x80 {
                    self.raw.send_ok(&ack(packet::PUBREL, id, 0)).await;
                    self.raw.wait_for(packet::PUBCOMP, Some(id)).await;
                }
                rec.reason
            }
            _ => 0,
        }
    }

    /// The next packet, which must be a PUBLISH (not acknowledged).
    ///
    /// # Panics
    ///
    /// If something else or nothing arrives.
    pub async fn expect_publish(&mut self) -> Publish5 {
        self.raw.read_packet().await.publish5()
    }

    /// The next PUBLISH, acknowledged (PUBACK; or PUBREC, PUBREL awaited, PUBCOMP).
    ///
    /// # Panics
    ///
    /// If something else or nothing arrives.
    pub async fn receive_acked(&mut self) -> Publish5 {
        let publish = self.expect_publish().await;
        match (publish.qos, publish.packet_id) {
            (1, Some(id)) => self.raw.send_ok(&ack(packet::PUBACK, id, 0)).await,
            (2, Some(id)) => {
                self.raw.send_ok(&ack(packet::PUBREC, id, 0)).await;
                self.raw.wait_for(packet::PUBREL, Some(id)).await;
                self.raw.send_ok(&ack(packet::PUBCOMP, id, 0)).await;
            }
            _ => {}
        }
        publish
    }

    /// Asserts that no packet arrives (and the connection stays open) for `ms` milliseconds.
    ///
    /// # Panics
    ///
    /// If a packet arrives or the connection closes.
    pub async fn expect_nothing(&mut self, ms: u64) {
        match self.raw.next(Duration::from_millis(ms)).await {
            Read::TimedOut => {}
            Read::Packet(p) => panic!("expected nothing, got {p:?}"),
            Read::Closed => panic!("expected nothing, the connection closed"),
        }
    }

    /// Waits for the broker's DISCONNECT (skipping other packets) and then for the close;
    /// returns the DISCONNECT.
    ///
    /// # Panics
    ///
    /// If the connection closes without DISCONNECT, or nothing happens within [`TIMEOUT`].
    pub async fn expect_disconnect(&mut self) -> Disconnect5 {
        let deadline = Instant::now() + TIMEOUT;
        let mut others = Vec::new();
        loop {
            match self
                .raw
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Read::Packet(p) if p.kind() == packet::DISCONNECT => {
                    let disconnect = p.disconnect5();
                    let after = self.raw.expect_closed().await;
                    assert!(after.is_empty(), "packets after DISCONNECT: {after:?}");
                    return disconnect;
                }
                Read::Packet(p) => others.push(p),
                Read::Closed => panic!("closed without DISCONNECT (got {others:?})"),
                Read::TimedOut => panic!("no DISCONNECT within {TIMEOUT:?} (got {others:?})"),
            }
        }
    }

    /// Sends DISCONNECT with `reason` and `props` and waits until the broker closed.
    ///
    /// # Panics
    ///
    /// If the broker keeps the connection open or answers something.
    pub async fn disconnect_with(&mut self, reason: u8, props: &Props) {
        self.raw.send_ok(&disconnect(reason, props)).await;
        let after = self.raw.expect_closed().await;
        assert!(after.is_empty(), "packets after DISCONNECT: {after:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip() {
        let props = Props::new()
            .byte(prop::PAYLOAD_FORMAT_INDICATOR, 1)
            .u32(prop::MESSAGE_EXPIRY_INTERVAL, 70_000)
            .str(prop::CONTENT_TYPE, "text/plain")
            .bin(prop::CORRELATION_DATA, &[0, 1, 2])
            .varint(prop::SUBSCRIPTION_IDENTIFIER, 200)
            .u16(prop::TOPIC_ALIAS, 3)
            .user("k", "v")
            .user("k", "w");
        let bytes = props.encode();
        assert_eq!(Props::decode(&bytes), Ok((props.clone(), bytes.len())));
        assert_eq!(props.subscription_ids(), [200]);
        assert_eq!(
            props.user_properties(),
            [("k".into(), "v".into()), ("k".into(), "w".into())]
        );
    }

    #[test]
    fn connect_bytes() {
        let bytes = Connect5::new("c").keep_alive(10).encode();
        assert_eq!(
            bytes,
            [
                0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 10, 0, 0, 1, b'c'
            ]
        );
    }

    #[test]
    fn publish_round_trip() {
        let p = Publish5::new("a/b", b"hi")
            .qos(1, 7)
            .retain(true)
            .props(Props::new().u16(prop::TOPIC_ALIAS, 1));
        let mut buf = p.encode();
        let packet = packet::split_packet(&mut buf).unwrap().unwrap();
        assert_eq!(packet.publish5(), p);
    }
}
