//! EventSink.Stream through a real tonic client: in-order handling, duplicates dropped (also
//! across reconnects), cumulative acks, control messages from the handler, shutdown.

mod common;

use std::sync::{Arc, Mutex};

use common::{DEADLINE, TestServer};
use midge_plugin::{Context, EventHandler, Publish, Server, Status, pb};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// Records every sequence it handles; on a broadcast to `kick/<id>` it disconnects `<id>` and
/// republishes the message on `echo`.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<u64>>>,
}

impl EventHandler for Recorder {
    async fn on_event(&self, ctx: &Context, event: &pb::Event) -> Result<(), Status> {
        self.seen.lock().expect("lock").push(ctx.sequence());
        if let Some(pb::event::Body::MessageBroadcast(ev)) = &event.body {
            let msg = ev.message.as_ref().expect("message");
            if let Some(id) = msg.topic.strip_prefix("kick/") {
                ctx.disconnect_client(id, "kicked by test").await?;
                ctx.publish(Publish::new("echo", msg.payload.clone()).qos(1))
                    .await?;
            }
        }
        if ctx.sequence() == 13 {
            return Err(Status::internal("handler failure is logged, not fatal"));
        }
        Ok(())
    }
}

fn connected(sequence: u64) -> pb::Event {
    pb::Event {
        sequence,
        time: Some(std::time::SystemTime::now().into()),
        body: Some(pb::event::Body::ClientConnected(pb::ClientConnected {
            session: Some(pb::Session {
                client_id: format!("c{sequence}"),
                ..Default::default()
            }),
            session_present: false,
        })),
    }
}

fn broadcast(sequence: u64, topic: &str) -> pb::Event {
    pb::Event {
        sequence,
        time: None,
        body: Some(pb::event::Body::MessageBroadcast(pb::MessageEvent {
            client_id: "pub".into(),
            username: None,
            message: Some(pb::Message {
                topic: topic.into(),
                payload: b"hi".to_vec(),
                payload_size: 2,
                qos: 1,
                ..Default::default()
            }),
        })),
    }
}

/// An open stream: the broker's sending side and the plugin's replies.
struct Stream {
    tx: mpsc::Sender<pb::EventBatch>,
    replies: Streaming<pb::StreamReply>,
}

impl Stream {
    async fn open(server: &TestServer) -> Stream {
        let (tx, rx) = mpsc::channel(8);
        let mut client = pb::event_sink_client::EventSinkClient::new(server.channel.clone());
        let replies = client
            .stream(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner();
        Stream { tx, replies }
    }

    async fn send(&self, stream_id: &str, events: Vec<pb::Event>) {
        let batch = pb::EventBatch {
            stream_id: stream_id.into(),
            events,
        };
        self.tx.send(batch).await.expect("stream open");
    }

    async fn reply(&mut self) -> pb::StreamReply {
        tokio::time::timeout(DEADLINE, self.replies.message())
            .await
            .expect("reply before the deadline")
            .expect("no stream error")
            .expect("stream not ended")
    }

    async fn ack(&mut self) -> u64 {
        let reply = self.reply().await;
        assert!(reply.controls.is_empty(), "expected a bare ack: {reply:?}");
        reply.ack
    }
}

#[tokio::test]
async fn duplicates_are_dropped_and_acks_are_cumulative() {
    let recorder = Recorder::default();
    let server = TestServer::start(Server::new("rec", "1").event_handler(recorder.clone())).await;

    let mut stream = Stream::open(&server).await;
    stream
        .send("run-1", vec![connected(1), connected(2), connected(3)])
        .await;
    assert_eq!(stream.ack().await, 3, "one cumulative ack per batch");

    // A replay overlapping what was handled: only 4 is new.
    stream
        .send("run-1", vec![connected(2), connected(3), connected(4)])
        .await;
    assert_eq!(stream.ack().await, 4);

    // A batch of nothing but duplicates is acked at once with the highest handled.
    stream.send("run-1", vec![connected(1)]).await;
    assert_eq!(stream.ack().await, 4);

    // The broker reconnects (new call, same stream id) and replays un-acked events.
    drop(stream);
    let mut stream = Stream::open(&server).await;
    stream
        .send("run-1", vec![connected(3), connected(4), connected(5)])
        .await;
    assert_eq!(stream.ack().await, 5);

    // A restarted broker has a new stream id, and numbering starts again.
    stream.send("run-2", vec![connected(1)]).await;
    assert_eq!(stream.ack().await, 1);

    // A failing handler is logged; the event is still acked, the stream goes on.
    stream
        .send("run-2", vec![connected(13), connected(14)])
        .await;
    assert_eq!(stream.ack().await, 14);

    assert_eq!(
        *recorder.seen.lock().expect("lock"),
        vec![1, 2, 3, 4, 5, 1, 13, 14],
        "each event handled once, in order"
    );
    drop(stream);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn handler_control_messages_reach_the_broker_before_the_ack() {
    let server =
        TestServer::start(Server::new("rec", "1").event_handler(Recorder::default())).await;
    let mut stream = Stream::open(&server).await;
    stream
        .send(
            "run-1",
            vec![broadcast(1, "kick/dev-9"), broadcast(2, "other")],
        )
        .await;

    let disconnect = stream.reply().await;
    assert_eq!(disconnect.ack, 0);
    match &disconnect.controls[..] {
        [
            pb::Control {
                action: Some(pb::control::Action::Disconnect(d)),
            },
        ] => {
            assert_eq!(d.client_id, "dev-9");
            assert_eq!(d.reason, "kicked by test");
        }
        other => panic!("expected a disconnect, got {other:?}"),
    }
    let publish = stream.reply().await;
    match &publish.controls[..] {
        [
            pb::Control {
                action: Some(pb::control::Action::Publish(p)),
            },
        ] => {
            assert_eq!(
                (p.topic.as_str(), p.payload.as_slice(), p.qos),
                ("echo", &b"hi"[..], 1)
            );
        }
        other => panic!("expected a publish, got {other:?}"),
    }
    assert_eq!(stream.ack().await, 2);
    drop(stream);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let server =
        TestServer::start(Server::new("rec", "1").event_handler(Recorder::default())).await;
    let mut stream = Stream::open(&server).await;
    stream.send("run-1", vec![connected(1)]).await;
    assert_eq!(stream.ack().await, 1);

    // The broker keeps its stream open; the plugin must still stop within the deadline.
    let stopping = tokio::spawn(server.stop());
    let end = tokio::time::timeout(DEADLINE, stream.replies.message())
        .await
        .expect("stream ends before the deadline");
    match end {
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable),
        Ok(None) => {}
        Ok(Some(reply)) => panic!("unexpected reply {reply:?}"),
    }
    stopping.await.expect("join").expect("clean stop");
}
