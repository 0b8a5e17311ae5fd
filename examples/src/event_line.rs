//! Events as lines: one JSON object ([`event_json`]) or one `key=value` line ([`event_text`])
//! per event, written by an [`EventSink`] to stdout and, optionally, appended to a file.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use midge_plugin::pb::{self, EventKind, event::Body};
use serde_json::{Map, Value as Json};

/// The snake_case name of an event kind without its `EVENT_KIND_` prefix
/// (`client_connected`, `packet_sent`, ...), as in the broker's `events:` config key.
pub fn kind_name(kind: EventKind) -> String {
    enum_name(kind.as_str_name(), "EVENT_KIND_")
}

/// `PREFIX_SOME_NAME` → `some_name`.
fn enum_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// One event as a flat JSON object: `stream_id`, `seq`, `time_ms` (broker clock, Unix
/// milliseconds), `kind`, then the body's fields (`client_id`, `username`, `topic`, `payload`,
/// ...). Payloads are text when they are UTF-8, else hex in `payload_hex`.
pub fn event_json(stream_id: &str, event: &pb::Event) -> Json {
    let mut obj = Map::new();
    obj.insert("stream_id".into(), stream_id.into());
    obj.insert("seq".into(), event.sequence.into());
    if let Some(ms) = event
        .time
        .and_then(|t| std::time::SystemTime::try_from(t).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_millis()).ok())
    {
        obj.insert("time_ms".into(), ms.into());
    }
    obj.insert("kind".into(), kind_name(event.kind()).into());
    if let Some(body) = &event.body {
        body_fields(body, &mut obj);
    }
    Json::Object(obj)
}

fn body_fields(body: &Body, obj: &mut Map<String, Json>) {
    let mut put = |key: &str, value: Json| {
        if !value.is_null() {
            obj.insert(key.to_owned(), value);
        }
    };
    match body {
        Body::PreStart(b) | Body::PostStart(b) | Body::PreShutdown(b) | Body::PostShutdown(b) => {
            put("broker_version", b.broker_version.clone().into());
        }
        Body::ClientConnected(b) => {
            session_fields(b.session.as_ref(), &mut put);
            put("session_present", b.session_present.into());
        }
        Body::ClientDisconnected(b) => {
            session_fields(b.session.as_ref(), &mut put);
            put(
                "reason",
                enum_name(b.reason().as_str_name(), "DISCONNECT_REASON_").into(),
            );
            put("will_published", b.will_published.into());
        }
        Body::ClientSubscribed(b) => {
            put("client_id", b.client_id.clone().into());
            put("username", b.username.clone().into());
            put("topic_filter", b.topic_filter.clone().into());
            put("requested_qos", b.requested_qos.into());
            put("granted_qos", b.granted_qos.into());
        }
        Body::ClientUnsubscribed(b) => {
            put("client_id", b.client_id.clone().into());
            put("username", b.username.clone().into());
            put("topic_filter", b.topic_filter.clone().into());
        }
        Body::MessageReceived(b)
        | Body::MessageBroadcast(b)
        | Body::RetainedStored(b)
        | Body::RetainedCleared(b) => {
            put("client_id", b.client_id.clone().into());
            put("username", b.username.clone().into());
            if let Some(m) = &b.message {
                put("topic", m.topic.clone().into());
                put("qos", m.qos.into());
                put("retain", m.retain.into());
                put("payload_size", m.payload_size.into());
                match std::str::from_utf8(&m.payload) {
                    _ if m.payload.is_empty() => {}
                    Ok(text) => put("payload", text.into()),
                    Err(_) => put("payload_hex", hex(&m.payload).into()),
                }
            }
        }
        Body::PacketReceived(b) | Body::PacketSent(b) => {
            put("client_id", b.client_id.clone().into());
            put("connection_id", b.connection_id.clone().into());
            put(
                "packet_type",
                enum_name(b.packet_type().as_str_name(), "PACKET_TYPE_").into(),
            );
            put("size", b.size.into());
            if !b.raw.is_empty() {
                put("raw_hex", hex(&b.raw).into());
            }
        }
    }
}

fn session_fields(session: Option<&pb::Session>, put: &mut impl FnMut(&str, Json)) {
    let Some(s) = session else { return };
    put("client_id", s.client_id.clone().into());
    put("username", s.username.clone().into());
    put("clean_start", s.clean_start.into());
    put("keep_alive_secs", s.keep_alive_secs.into());
    put(
        "protocol_version",
        enum_name(s.protocol_version().as_str_name(), "PROTOCOL_VERSION_").into(),
    );
    put("remote_addr", s.remote_addr.clone().into());
    put("listener", s.listener.clone().into());
    put("connection_id", s.connection_id.clone().into());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// One event as a text line: the kind, then `key=value` pairs of [`event_json`] in key order
/// (strings with spaces, quotes or `=` are quoted). `stream_id` and `time_ms` are left out.
pub fn event_text(json: &Json) -> String {
    let Some(obj) = json.as_object() else {
        return json.to_string();
    };
    let mut line = obj
        .get("kind")
        .and_then(Json::as_str)
        .unwrap_or("unknown")
        .to_owned();
    for (key, value) in obj {
        if matches!(key.as_str(), "kind" | "stream_id" | "time_ms") {
            continue;
        }
        let _ = match value {
            Json::String(s) if s.is_empty() || s.contains([' ', '"', '=', '\n']) => {
                write!(line, " {key}={value}")
            }
            Json::String(s) => write!(line, " {key}={s}"),
            other => write!(line, " {key}={other}"),
        };
    }
    line
}

/// Where a logger writes its event lines: stdout (text or JSON) and, optionally, a file that
/// always gets JSON lines, appended and flushed one event at a time.
#[derive(Debug)]
pub struct EventSink {
    json: bool,
    file: Option<Mutex<File>>,
}

impl EventSink {
    /// Lines on stdout as JSON when `json`, else as text; plus JSON lines appended to `out`
    /// when given (created if missing).
    ///
    /// # Errors
    ///
    /// When `out` cannot be opened for appending.
    pub fn new(json: bool, out: Option<&Path>) -> io::Result<Self> {
        let file = out
            .map(|path| OpenOptions::new().create(true).append(true).open(path))
            .transpose()?
            .map(Mutex::new);
        Ok(EventSink { json, file })
    }

    /// Writes one event. A failed write is reported as an error; the caller logs it (the
    /// event still counts as handled, as aMQTT swallows handler errors).
    ///
    /// # Errors
    ///
    /// When writing stdout or the file fails.
    pub fn write(&self, stream_id: &str, event: &pb::Event) -> io::Result<()> {
        let json = event_json(stream_id, event);
        let line = if self.json {
            json.to_string()
        } else {
            event_text(&json)
        };
        {
            let mut stdout = io::stdout().lock();
            writeln!(stdout, "{line}")?;
            stdout.flush()?;
        }
        if let Some(file) = &self.file {
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            let mut bytes = if self.json { line } else { json.to_string() }.into_bytes();
            bytes.push(b'\n');
            file.write_all(&bytes)?;
            file.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_connected(client_id: &str) -> pb::Event {
        pb::Event {
            sequence: 7,
            time: None,
            body: Some(Body::ClientConnected(pb::ClientConnected {
                session: Some(pb::Session {
                    client_id: client_id.to_owned(),
                    username: Some("alice".to_owned()),
                    protocol_version: pb::ProtocolVersion::Mqtt311 as i32,
                    ..pb::Session::default()
                }),
                session_present: false,
            })),
        }
    }

    #[test]
    fn kinds_are_snake_case_without_prefix() {
        assert_eq!(kind_name(EventKind::ClientConnected), "client_connected");
        assert_eq!(kind_name(EventKind::PacketSent), "packet_sent");
        assert_eq!(kind_name(EventKind::BrokerPreStart), "broker_pre_start");
    }

    #[test]
    fn connected_event_as_json_and_text() {
        let json = event_json("s1", &sample_connected("c 1"));
        assert_eq!(json["kind"], "client_connected");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["client_id"], "c 1");
        assert_eq!(json["username"], "alice");
        assert_eq!(json["protocol_version"], "mqtt_3_1_1");
        let text = event_text(&json);
        assert!(text.starts_with("client_connected "), "{text}");
        assert!(text.contains(r#"client_id="c 1""#), "{text}");
        assert!(text.contains(" seq=7"), "{text}");
        assert!(!text.contains("stream_id"), "{text}");
    }

    #[test]
    fn binary_payloads_are_hex() {
        let ev = pb::Event {
            sequence: 1,
            time: None,
            body: Some(Body::MessageReceived(pb::MessageEvent {
                client_id: "c".into(),
                username: None,
                message: Some(pb::Message {
                    topic: "t".into(),
                    payload: vec![0xff, 0x00],
                    payload_size: 2,
                    ..pb::Message::default()
                }),
            })),
        };
        let json = event_json("s", &ev);
        assert_eq!(json["payload_hex"], "ff00");
        assert!(json.get("payload").is_none());
        assert!(json.get("username").is_none());
    }
}
