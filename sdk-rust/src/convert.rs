//! `From`/`TryFrom` conversions between the SDK's domain types and the generated `pb` types.
//!
//! Plugins rarely need these (the SDK converts at the gRPC edge), but unit tests can build a
//! request from its `pb` form, e.g. `AuthRequest::from(pb::AuthenticateRequest { .. })`, and the
//! broker side can read answers back with `TryFrom`.

use std::time::Duration;

use crate::{
    Action, AuthRequest, AuthStep, Decision, EnhancedAuth, Grants, Password, ProtocolVersion,
    TopicRequest, Verdict, pb,
};

/// A cache lifetime as the contract's `cache_ttl_ms`: `None` or zero → 0, otherwise whole
/// milliseconds rounded up (so a tiny positive lifetime still caches), saturating at `i64::MAX`.
pub(crate) fn ttl_to_ms(ttl: Option<Duration>) -> i64 {
    match ttl {
        None => 0,
        Some(d) if d.is_zero() => 0,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            i64::try_from(ms).unwrap_or(i64::MAX)
        }
    }
}

/// `cache_ttl_ms` back to a lifetime: 0 or negative → `None` (do not cache).
pub(crate) fn ms_to_ttl(ms: i64) -> Option<Duration> {
    u64::try_from(ms)
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

impl From<&Verdict> for pb::Verdict {
    fn from(v: &Verdict) -> Self {
        match v {
            Verdict::Allow => pb::Verdict::Allow,
            Verdict::Deny(_) => pb::Verdict::Deny,
            Verdict::Ignore => pb::Verdict::Ignore,
        }
    }
}

impl TryFrom<pb::Verdict> for Verdict {
    type Error = InvalidVerdict;

    /// A `DENY` comes back with an empty reason (the reason travels in a separate field).
    fn try_from(v: pb::Verdict) -> Result<Self, Self::Error> {
        match v {
            pb::Verdict::Allow => Ok(Verdict::Allow),
            pb::Verdict::Deny => Ok(Verdict::Deny(String::new())),
            pb::Verdict::Ignore => Ok(Verdict::Ignore),
            pb::Verdict::Unspecified | pb::Verdict::Continue => Err(InvalidVerdict(v as i32)),
        }
    }
}

impl From<Grants> for pb::SessionGrants {
    fn from(g: Grants) -> Self {
        pb::SessionGrants {
            publish: g.publish,
            subscribe: g.subscribe,
            receive: g.receive,
            exclusive: g.exclusive,
        }
    }
}

impl From<pb::SessionGrants> for Grants {
    fn from(g: pb::SessionGrants) -> Self {
        Grants {
            publish: g.publish,
            subscribe: g.subscribe,
            receive: g.receive,
            exclusive: g.exclusive,
        }
    }
}

fn reason(v: &Verdict) -> String {
    match v {
        Verdict::Deny(reason) => reason.clone(),
        Verdict::Allow | Verdict::Ignore => String::new(),
    }
}

impl From<Decision> for pb::CheckTopicResponse {
    /// Grants are dropped: they mean nothing on a topic check.
    fn from(d: Decision) -> Self {
        pb::CheckTopicResponse {
            verdict: pb::Verdict::from(&d.verdict).into(),
            cache_ttl_ms: ttl_to_ms(d.cache_for),
            reason: reason(&d.verdict),
        }
    }
}

impl From<Decision> for pb::AuthenticateResponse {
    fn from(d: Decision) -> Self {
        pb::AuthenticateResponse {
            verdict: pb::Verdict::from(&d.verdict).into(),
            reason: reason(&d.verdict),
            cache_ttl_ms: ttl_to_ms(d.cache_for),
            grants: d.grants.map(Into::into),
            auth_data: Vec::new(),
            reason_code: d.reason_code.map_or(0, u32::from),
        }
    }
}

impl From<AuthStep> for pb::AuthenticateResponse {
    fn from(step: AuthStep) -> Self {
        match step {
            AuthStep::Continue { auth_data } => pb::AuthenticateResponse {
                verdict: pb::Verdict::Continue.into(),
                auth_data,
                ..pb::AuthenticateResponse::default()
            },
            AuthStep::Done {
                decision,
                auth_data,
            } => pb::AuthenticateResponse {
                auth_data: auth_data.unwrap_or_default(),
                ..decision.into()
            },
        }
    }
}

/// A `pb` answer that carries no valid verdict (`VERDICT_UNSPECIFIED`, an unknown value, or
/// `CONTINUE` where it is not allowed). The broker treats these like a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid verdict {0} in plugin answer")]
pub struct InvalidVerdict(pub i32);

fn decision(verdict: i32, reason: String, ttl_ms: i64) -> Result<Decision, InvalidVerdict> {
    let wire = pb::Verdict::try_from(verdict).map_err(|_| InvalidVerdict(verdict))?;
    let verdict = match Verdict::try_from(wire)? {
        Verdict::Deny(_) => Verdict::Deny(reason),
        other => other,
    };
    Ok(Decision {
        verdict,
        cache_for: ms_to_ttl(ttl_ms),
        grants: None,
        reason_code: None,
    })
}

impl TryFrom<pb::CheckTopicResponse> for Decision {
    type Error = InvalidVerdict;

    fn try_from(r: pb::CheckTopicResponse) -> Result<Self, Self::Error> {
        decision(r.verdict, r.reason, r.cache_ttl_ms)
    }
}

impl TryFrom<pb::AuthenticateResponse> for AuthStep {
    type Error = InvalidVerdict;

    fn try_from(r: pb::AuthenticateResponse) -> Result<Self, Self::Error> {
        if r.verdict == pb::Verdict::Continue as i32 {
            return Ok(AuthStep::Continue {
                auth_data: r.auth_data,
            });
        }
        let mut d = decision(r.verdict, r.reason, r.cache_ttl_ms)?;
        if d.verdict == Verdict::Allow {
            d.grants = r.grants.map(Into::into);
        }
        Ok(AuthStep::Done {
            decision: d,
            auth_data: (!r.auth_data.is_empty()).then_some(r.auth_data),
        })
    }
}

impl From<pb::ProtocolVersion> for ProtocolVersion {
    fn from(v: pb::ProtocolVersion) -> Self {
        match v {
            pb::ProtocolVersion::Mqtt31 => ProtocolVersion::V3_1,
            pb::ProtocolVersion::Mqtt311 => ProtocolVersion::V3_1_1,
            pb::ProtocolVersion::Mqtt5 => ProtocolVersion::V5,
            pb::ProtocolVersion::Unspecified => ProtocolVersion::Unknown,
        }
    }
}

impl From<pb::AuthenticateRequest> for AuthRequest {
    fn from(r: pb::AuthenticateRequest) -> Self {
        let protocol_version = pb::ProtocolVersion::try_from(r.protocol_version)
            .map_or(ProtocolVersion::Unknown, Into::into);
        AuthRequest {
            client_id: r.client_id,
            username: r.username,
            password: r.password.map(Password::new),
            remote_addr: r.remote_addr.parse().ok(),
            listener: r.listener,
            protocol_version,
            tls_peer_subject: Some(r.tls_peer_subject).filter(|s| !s.is_empty()),
            clean_start: r.clean_start,
            keep_alive: Duration::from_secs(r.keep_alive_secs.into()),
            connection_id: r.connection_id,
            enhanced: (!r.auth_method.is_empty()).then_some(EnhancedAuth {
                method: r.auth_method,
                data: r.auth_data,
                step: r.step,
            }),
            user_properties: r
                .user_properties
                .into_iter()
                .map(|p| (p.key, p.value))
                .collect(),
            deadline: None,
        }
    }
}

impl TryFrom<pb::Action> for Action {
    type Error = InvalidAction;

    fn try_from(a: pb::Action) -> Result<Self, Self::Error> {
        match a {
            pb::Action::Publish => Ok(Action::Publish),
            pb::Action::Subscribe => Ok(Action::Subscribe),
            pb::Action::Receive => Ok(Action::Receive),
            pb::Action::Unspecified => Err(InvalidAction(a as i32)),
        }
    }
}

impl From<Action> for pb::Action {
    fn from(a: Action) -> Self {
        match a {
            Action::Publish => pb::Action::Publish,
            Action::Subscribe => pb::Action::Subscribe,
            Action::Receive => pb::Action::Receive,
        }
    }
}

/// A `CheckTopicRequest` whose action is unspecified or unknown to this SDK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic action {0}")]
pub struct InvalidAction(pub i32);

impl TryFrom<pb::CheckTopicRequest> for TopicRequest {
    type Error = InvalidAction;

    fn try_from(r: pb::CheckTopicRequest) -> Result<Self, Self::Error> {
        let action = pb::Action::try_from(r.action)
            .map_err(|_| InvalidAction(r.action))?
            .try_into()?;
        Ok(TopicRequest {
            client_id: r.client_id,
            username: r.username,
            topic: r.topic,
            action,
            // QoS is 0..=2 on the wire; anything larger is clamped rather than wrapped.
            qos: u8::try_from(r.qos).unwrap_or(u8::MAX),
            retain: r.retain,
            listener: r.listener,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_and_zero_means_no_cache() {
        assert_eq!(ttl_to_ms(None), 0);
        assert_eq!(ttl_to_ms(Some(Duration::ZERO)), 0);
        assert_eq!(ttl_to_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(ttl_to_ms(Some(Duration::from_millis(1500))), 1500);
        assert_eq!(ttl_to_ms(Some(Duration::MAX)), i64::MAX);
        assert_eq!(ms_to_ttl(0), None);
        assert_eq!(ms_to_ttl(-5), None);
        assert_eq!(ms_to_ttl(250), Some(Duration::from_millis(250)));
    }

    #[test]
    fn decisions_round_trip_through_pb() {
        let d = Decision::deny("nope").cache_for(Duration::from_secs(2));
        let wire = pb::CheckTopicResponse::from(d.clone());
        assert_eq!(wire.verdict, pb::Verdict::Deny as i32);
        assert_eq!(wire.cache_ttl_ms, 2000);
        assert_eq!(Decision::try_from(wire), Ok(d));

        let allow = Decision::allow().with_grants(Grants::default().publish(["a/#"]));
        let wire = pb::AuthenticateResponse::from(allow.clone());
        assert_eq!(AuthStep::try_from(wire), Ok(allow.into()));
    }

    #[test]
    fn verdicts_convert_both_ways() {
        for v in [
            Verdict::Allow,
            Verdict::Deny(String::new()),
            Verdict::Ignore,
        ] {
            assert_eq!(Verdict::try_from(pb::Verdict::from(&v)), Ok(v));
        }
        assert!(Verdict::try_from(pb::Verdict::Continue).is_err());
    }

    #[test]
    fn invalid_verdicts_are_errors() {
        let unset = pb::CheckTopicResponse::default();
        assert_eq!(Decision::try_from(unset), Err(InvalidVerdict(0)));
        let cont = pb::CheckTopicResponse {
            verdict: pb::Verdict::Continue as i32,
            ..Default::default()
        };
        assert!(Decision::try_from(cont).is_err());
        let step = AuthStep::Continue {
            auth_data: b"server-first".to_vec(),
        };
        assert_eq!(
            AuthStep::try_from(pb::AuthenticateResponse::from(step.clone())),
            Ok(step)
        );
    }

    #[test]
    fn requests_convert_from_pb() {
        let req = AuthRequest::from(pb::AuthenticateRequest {
            client_id: "c1".into(),
            username: Some("alice".into()),
            password: Some(b"pw".to_vec()),
            remote_addr: "127.0.0.1:5000".into(),
            protocol_version: pb::ProtocolVersion::Mqtt5 as i32,
            auth_method: "SCRAM-SHA-256".into(),
            step: 1,
            ..Default::default()
        });
        assert_eq!(req.protocol_version, ProtocolVersion::V5);
        assert_eq!(req.remote_addr.map(|a| a.port()), Some(5000));
        assert!(req.password.as_ref().is_some_and(|p| p.matches(b"pw")));
        assert_eq!(req.enhanced.as_ref().map(|e| e.step), Some(1));
        assert_eq!(req.tls_peer_subject, None);

        let bad = pb::CheckTopicRequest::default();
        assert_eq!(TopicRequest::try_from(bad), Err(InvalidAction(0)));
        let ok = TopicRequest::try_from(pb::CheckTopicRequest {
            topic: "a/b".into(),
            action: pb::Action::Receive as i32,
            qos: 1,
            retain: true,
            ..Default::default()
        })
        .expect("valid");
        assert_eq!((ok.action, ok.qos, ok.retain), (Action::Receive, 1, true));
    }
}
