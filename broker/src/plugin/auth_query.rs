//! [`AuthQuery`]: what the authentication chain is asked about a CONNECT, built from the
//! broker's facts (the contract's `AuthenticateRequest` stays inside this module's type).

use std::net::SocketAddr;

use midge_proto::plugin::v1 as pb;

use super::emit;
use crate::codec::ProtocolVersion;

/// The facts of a CONNECT that authentication plugins are asked about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectFacts<'a> {
    /// The client id (assigned by the broker if the client sent none).
    pub(crate) client_id: &'a str,
    /// The user name, if any.
    pub(crate) username: Option<&'a str>,
    /// The password, if any.
    pub(crate) password: Option<&'a [u8]>,
    /// The client's address.
    pub(crate) remote_addr: SocketAddr,
    /// The listener's name.
    pub(crate) listener: &'a str,
    /// The MQTT version.
    pub(crate) protocol: ProtocolVersion,
    /// The subject of the client's TLS certificate, if it sent one.
    pub(crate) tls_subject: Option<&'a str>,
    /// Clean start / clean session.
    pub(crate) clean_start: bool,
    /// The keep-alive the client asked for, in seconds.
    pub(crate) keep_alive: u16,
    /// The connection's id.
    pub(crate) connection_id: u64,
    /// MQTT 5 Authentication Method (enhanced authentication), if any.
    pub(crate) auth_method: Option<&'a str>,
    /// MQTT 5 Authentication Data, if any.
    pub(crate) auth_data: Option<&'a [u8]>,
}

/// One authentication question: a CONNECT's facts, and for enhanced authentication the step of
/// the exchange and the client's latest Authentication Data.
#[derive(Debug, Clone)]
pub(crate) struct AuthQuery(pub(super) pb::AuthenticateRequest);

impl AuthQuery {
    /// The first step's question, with the CONNECT's MQTT 5 user properties.
    pub(crate) fn new<'p>(
        facts: ConnectFacts<'_>,
        user_properties: impl IntoIterator<Item = (&'p str, &'p str)>,
    ) -> Self {
        AuthQuery(pb::AuthenticateRequest {
            client_id: facts.client_id.to_string(),
            username: facts.username.map(str::to_string),
            password: facts.password.map(<[u8]>::to_vec),
            remote_addr: facts.remote_addr.to_string(),
            listener: facts.listener.to_string(),
            protocol_version: emit::protocol_version(facts.protocol) as i32,
            tls_peer_subject: facts.tls_subject.unwrap_or_default().to_string(),
            clean_start: facts.clean_start,
            keep_alive_secs: u32::from(facts.keep_alive),
            connection_id: facts.connection_id.to_string(),
            auth_method: facts.auth_method.unwrap_or_default().to_string(),
            auth_data: facts.auth_data.map(<[u8]>::to_vec).unwrap_or_default(),
            step: 0,
            user_properties: user_properties
                .into_iter()
                .map(|(key, value)| pb::UserProperty {
                    key: key.to_string(),
                    value: value.to_string(),
                })
                .collect(),
        })
    }

    /// The next step of an enhanced authentication exchange, with the client's AUTH data.
    pub(crate) fn next_step(&mut self, auth_data: Vec<u8>) {
        self.0.step += 1;
        self.0.auth_data = auth_data;
    }
}
