//! Delivery over one healthy stream: order, batching, the window, overflow, waiting, controls.

use tokio::time::Instant;

use super::*;
use crate::plugin::events::Overflow;

fn settings(queue_size: usize, max_batch: usize, max_unacked: usize) -> PipelineSettings {
    PipelineSettings {
        queue_size,
        overflow: Overflow::DropOldest,
        max_batch,
        max_unacked,
    }
}

#[tokio::test]
async fn batches_arrive_in_order_with_increasing_sequences() {
    let mut server = TestServer::start("127.0.0.1:0".parse().expect("addr"));
    let run = Running::new(settings(1000, 16, 1000), server.addr);
    let p = &run.pipeline;
    for i in 0..100 {
        p.push(ev(i));
    }
    let mut call = server.call().await;
    for i in 100..200 {
        p.push(ev(i));
    }
    let events = call.events(200, 16, p.stream_id()).await;
    let expected: Vec<_> = (1..=200).zip(0..200).collect();
    assert_eq!(seq_marks(&events), expected);
    assert!(events.iter().all(|e| e.time.is_some()), "time is stamped");
    call.reply(200, vec![]).await;
    wait_stats(p, "all acked", |s| s.acked == 200 && s.unacked == 0).await;
    let stats = p.stats();
    assert_eq!((stats.enqueued, stats.sent, stats.dropped), (200, 200, 0));
    assert!(stats.connected);
    run.stop().await;
}

#[tokio::test]
async fn the_window_bounds_unacked_events_and_cumulative_acks_release_it() {
    let mut server = TestServer::start("127.0.0.1:0".parse().expect("addr"));
    let run = Running::new(settings(100, 4, 10), server.addr);
    let p = &run.pipeline;
    for i in 0..25 {
        p.push(ev(i));
    }
    let mut call = server.call().await;
    let first = call.events(10, 4, p.stream_id()).await;
    assert_eq!(first.last().map(|e| e.sequence), Some(10));
    wait_stats(p, "a full window", |s| s.sent == 10).await;
    let stats = p.stats();
    assert_eq!((stats.unacked, stats.queue_depth), (10, 15), "{stats:?}");

    // Ack 4 releases 1..=4 and makes room for exactly four more.
    call.reply(4, vec![]).await;
    let next = call.events(4, 4, p.stream_id()).await;
    assert_eq!(seq_marks(&next), [(11, 10), (12, 11), (13, 12), (14, 13)]);
    wait_stats(p, "acks applied", |s| s.acked == 4 && s.unacked == 10).await;

    // A stale ack changes nothing; a cumulative one releases everything up to it.
    call.reply(2, vec![]).await;
    call.reply(14, vec![]).await;
    let rest = call.events(10, 4, p.stream_id()).await;
    assert_eq!(rest.first().map(|e| e.sequence), Some(15));
    call.reply(24, vec![]).await;
    let last = call.events(1, 4, p.stream_id()).await;
    assert_eq!(seq_marks(&last), [(25, 24)]);
    call.reply(25, vec![]).await;
    wait_stats(p, "all acked", |s| s.acked == 25 && s.unacked == 0).await;
    assert_eq!(p.stats().replayed, 0);
    run.stop().await;
}

/// Fills a queue of 5 with 8 events before anything runs, then checks what gets through.
async fn overflow_case(overflow: Overflow) -> Vec<(u64, u32)> {
    let mut server = TestServer::start("127.0.0.1:0".parse().expect("addr"));
    let settings = PipelineSettings {
        overflow,
        ..settings(5, 16, 100)
    };
    let pipeline = EventPipeline::new("test".into(), settings);
    for i in 0..8 {
        pipeline.push(ev(i));
    }
    let stats = pipeline.stats();
    assert_eq!(
        (stats.dropped, stats.queue_depth, stats.sent),
        (3, 5, 0),
        "{stats:?}"
    );
    let run = Running::start(pipeline, server.addr, Hooks::default());
    let mut call = server.call().await;
    let events = call.events(5, 16, run.pipeline.stream_id()).await;
    run.stop().await;
    seq_marks(&events)
}

#[tokio::test]
async fn drop_oldest_counts_drops_and_keeps_the_newest_without_sequence_gaps() {
    let got = overflow_case(Overflow::DropOldest).await;
    assert_eq!(got, [(1, 3), (2, 4), (3, 5), (4, 6), (5, 7)]);
}

#[tokio::test]
async fn drop_newest_counts_drops_and_keeps_the_oldest() {
    let got = overflow_case(Overflow::DropNewest).await;
    assert_eq!(got, [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)]);
}

#[tokio::test]
async fn push_and_wait_is_true_when_acked_and_false_at_the_deadline() {
    let mut server = TestServer::start("127.0.0.1:0".parse().expect("addr"));
    let run = Running::new(settings(100, 16, 100), server.addr);
    let p = Arc::clone(&run.pipeline);

    // The plugin reads but never acks: false at the deadline.
    let deadline = Instant::now() + Duration::from_millis(200);
    let waiting = tokio::spawn({
        let p = Arc::clone(&p);
        async move { p.push_and_wait(ev(0), deadline).await }
    });
    let mut call = server.call().await;
    assert_eq!(
        seq_marks(&call.events(1, 16, p.stream_id()).await),
        [(1, 0)]
    );
    assert!(!waiting.await.expect("no panic"), "not acked in time");

    // Acked: true, well before the deadline.
    let waiting = tokio::spawn({
        let p = Arc::clone(&p);
        async move { p.push_and_wait(ev(1), Instant::now() + WAIT).await }
    });
    assert_eq!(
        seq_marks(&call.events(1, 16, p.stream_id()).await),
        [(2, 1)]
    );
    call.reply(2, vec![]).await;
    let acked = tokio::time::timeout(WAIT, waiting).await.expect("in time");
    assert!(acked.expect("no panic"));
    run.stop().await;
}

#[tokio::test]
async fn drain_waits_for_every_queued_event_to_be_acked() {
    let mut server = TestServer::start("127.0.0.1:0".parse().expect("addr"));
    let run = Running::new(settings(100, 16, 100), server.addr);
    let p = Arc::clone(&run.pipeline);
    for i in 0..5 {
        p.push(ev(i));
    }
    let draining = tokio::spawn({
        let p = Arc::clone(&p);
        async move { p.drain(Instant::now() + WAIT).await }
    });
    let mut call = server.call().await;
    call.events(5, 16, p.stream_id()).await;
    call.reply(3, vec![]).await;
    wait_stats(&p, "ack 3", |s| s.acked == 3).await;
    assert!(!draining.is_finished(), "two events are still un-acked");
    call.reply(5, vec![]).await;
    let drained = tokio::time::timeout(WAIT, draining).await.expect("in time");
    assert!(drained.expect("no panic"));

    // Sent but not acked: false at the deadline; true once acked.
    p.push(ev(5));
    assert!(!p.drain(Instant::now() + Duration::from_millis(100)).await);
    wait_stats(&p, "the sixth event sent", |s| s.sent == 6).await;
    call.reply(6, vec![]).await;
    assert!(p.drain(Instant::now() + WAIT).await);
    run.stop().await;
}

#[tokio::test]
async fn controls_reach_the_hooks_in_order() {
    let mut server = TestServer::start("127.0.0.1:0".parse().expect("addr"));
    let run = Running::new(settings(100, 16, 100), server.addr);
    let call = server.call().await;
    let publish = pb::Control {
        action: Some(pb::control::Action::Publish(pb::PublishControl {
            topic: "a/b".into(),
            ..Default::default()
        })),
    };
    let disconnect = pb::Control {
        action: Some(pb::control::Action::Disconnect(pb::DisconnectControl {
            client_id: "c1".into(),
            reason: "test".into(),
        })),
    };
    call.reply(0, vec![publish.clone(), disconnect.clone()])
        .await;
    let deadline = Instant::now() + WAIT;
    while run.hooks.controls.lock().len() < 2 {
        assert!(Instant::now() < deadline, "controls in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(*run.hooks.controls.lock(), [publish, disconnect]);
    run.stop().await;
}
