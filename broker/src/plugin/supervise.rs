//! One task per plugin: `Describe` with backoff until it answers (again after every lost
//! connection), and its event stream once it wants events; and the hooks the stream calls.

use std::sync::Arc;

use midge_proto::plugin::v1 as pb;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::events::PipelineHooks;
use super::{ControlRequest, DESCRIBE_BACKOFF, Plugin, control};

/// One plugin's lifecycle: describe (with backoff) until it answers, start its event stream the
/// first time it wants events, and describe again whenever a call saw the connection drop.
pub(super) async fn supervise(
    plugin: Arc<Plugin>,
    controls: mpsc::Sender<ControlRequest>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut stream_started = false;
    loop {
        let mut backoff = DESCRIBE_BACKOFF.0;
        let mut logged = false;
        loop {
            match plugin.describe(crate::VERSION).await {
                Ok(()) => break,
                Err(status) => {
                    let error = format!("describe: {:?}: {}", status.code(), status.message());
                    plugin.record_error(error.clone());
                    if logged {
                        debug!(alias = %plugin.alias(), error, "plugin still unavailable");
                    } else if status.code() == tonic::Code::InvalidArgument {
                        warn!(alias = %plugin.alias(), endpoint = %plugin.config().endpoint, error, "plugin refused its config; its decisions take on-unavailable; retrying with backoff");
                        logged = true;
                    } else {
                        warn!(alias = %plugin.alias(), endpoint = %plugin.config().endpoint, error, "plugin unavailable; retrying with backoff");
                        logged = true;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(DESCRIBE_BACKOFF.1);
        }
        let wants_any = pb::EventKind::ALL_BUT_PACKETS
            .iter()
            .chain(&pb::EventKind::PACKET_KINDS)
            .any(|kind| plugin.pipeline().wants(*kind));
        if !stream_started && wants_any {
            stream_started = true;
            let hooks: Arc<dyn PipelineHooks> = Arc::new(Hooks {
                plugin: plugin.clone(),
                controls: controls.clone(),
            });
            tracker.spawn(
                plugin
                    .pipeline()
                    .clone()
                    .run(plugin.channel(), hooks, shutdown.clone()),
            );
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = plugin.connection_lost() => {}
        }
    }
}

/// What the event pipeline calls back into.
#[derive(Debug)]
struct Hooks {
    plugin: Arc<Plugin>,
    controls: mpsc::Sender<ControlRequest>,
}

impl PipelineHooks for Hooks {
    fn on_connect(&self) -> futures_util::future::BoxFuture<'static, Result<(), tonic::Status>> {
        let plugin = self.plugin.clone();
        Box::pin(async move { plugin.describe(crate::VERSION).await })
    }

    fn on_control(&self, control: pb::Control) {
        let Some(control) = control::from_pb(self.plugin.alias(), control) else {
            return;
        };
        let request = ControlRequest {
            alias: self.plugin.alias().clone(),
            control,
        };
        if self.controls.try_send(request).is_err() {
            warn!(alias = %self.plugin.alias(), "control queue full: control message dropped");
        }
    }
}
