//! The generated tonic server traits implemented on top of the SDK's traits: convert the request,
//! call the plugin, convert the answer.

use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::{
    AuthRequest, Authenticator, TopicChecker, TopicRequest, pb,
    pb::{authenticator_server, topic_filter_server},
};

/// `midge.plugin.v1.Authenticator` backed by an [`Authenticator`].
#[derive(Debug)]
pub(crate) struct AuthenticatorService<A>(pub(crate) Arc<A>);

#[tonic::async_trait]
impl<A: Authenticator> authenticator_server::Authenticator for AuthenticatorService<A> {
    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let deadline = grpc_timeout(request.metadata()).map(|t| tokio::time::Instant::now() + t);
        let mut req = AuthRequest::from(request.into_inner());
        req.deadline = deadline;
        let reply: pb::AuthenticateResponse = if req.enhanced.is_some() {
            self.0.authenticate_enhanced(req).await?.into()
        } else {
            self.0.authenticate(req).await?.into()
        };
        Ok(Response::new(reply))
    }
}

/// `midge.plugin.v1.TopicFilter` backed by a [`TopicChecker`].
#[derive(Debug)]
pub(crate) struct TopicFilterService<T>(pub(crate) Arc<T>);

#[tonic::async_trait]
impl<T: TopicChecker> topic_filter_server::TopicFilter for TopicFilterService<T> {
    async fn check_topic(
        &self,
        request: Request<pb::CheckTopicRequest>,
    ) -> Result<Response<pb::CheckTopicResponse>, Status> {
        let req = TopicRequest::try_from(request.into_inner())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let decision = self.0.check_topic(req).await?;
        Ok(Response::new(decision.into()))
    }
}

/// The call's `grpc-timeout` (gRPC over HTTP/2: at most 8 digits and a unit, `H` `M` `S` `m`
/// `u` `n`); `None` when absent or malformed (tonic's server then enforces none either).
fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let split = text.len().checked_sub(1)?;
    let (digits, unit) = (text.get(..split)?, text.get(split..)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Option<Duration> {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", value.parse().expect("ascii"));
        grpc_timeout(&metadata)
    }

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "m", "123456789m", "12x", "-1m", "1.5S", "+1m"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&MetadataMap::new()), None);
    }
}
