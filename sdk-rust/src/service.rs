//! The generated tonic server traits implemented on top of the SDK's traits: convert the request,
//! call the plugin, convert the answer.

use std::sync::Arc;

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
        let req = AuthRequest::from(request.into_inner());
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
