//! Failures: a plugin killed and restarted, one not there yet, a failing connect hook, a
//! plugin ending the stream, and shutdown.

use super::*;

fn settings() -> PipelineSettings {
    PipelineSettings::new(100, super::super::Overflow::DropOldest)
}

#[tokio::test]
async fn a_restarted_plugin_gets_the_unacked_events_again_and_nothing_acked() {
    let mut server = TestServer::start("127.0.0.1:0".parse().expect("addr"));
    let addr = server.addr;
    let run = Running::new(settings(), addr);
    let p = &run.pipeline;
    for i in 0..10 {
        p.push(ev(i));
    }
    let mut call = server.call().await;
    call.events(10, 256, p.stream_id()).await;
    call.reply(6, vec![]).await;
    wait_stats(p, "ack 6", |s| s.acked == 6).await;

    drop(call);
    server.kill();
    wait_stats(p, "the broken stream noticed", |s| {
        !s.connected && s.reconnects >= 1
    })
    .await;
    let mut server = TestServer::start(addr);
    let mut call = server.call().await;
    let replay = call.events(4, 256, p.stream_id()).await;
    assert_eq!(seq_marks(&replay), [(7, 6), (8, 7), (9, 8), (10, 9)]);
    p.push(ev(10));
    assert_eq!(
        seq_marks(&call.events(1, 256, p.stream_id()).await),
        [(11, 10)]
    );
    call.reply(11, vec![]).await;
    wait_stats(p, "all acked", |s| s.acked == 11 && s.unacked == 0).await;
    let stats = p.stats();
    assert_eq!((stats.sent, stats.replayed), (15, 4), "{stats:?}");
    assert!(
        run.hooks.connects.load(Ordering::SeqCst) >= 2,
        "on_connect per reconnect"
    );
    run.stop().await;
}

#[tokio::test]
async fn a_plugin_ending_the_stream_with_an_error_gets_a_replay() {
    let mut server = TestServer::start("127.0.0.1:0".parse().expect("addr"));
    let run = Running::new(settings(), server.addr);
    let p = &run.pipeline;
    for i in 0..3 {
        p.push(ev(i));
    }
    let mut call = server.call().await;
    call.events(3, 256, p.stream_id()).await;
    call.reply(1, vec![]).await;
    call.replies
        .send(Err(Status::unavailable("reconnect please")))
        .await
        .expect("reply stream open");
    let mut call = server.call().await;
    let replay = call.events(2, 256, p.stream_id()).await;
    assert_eq!(seq_marks(&replay), [(2, 1), (3, 2)]);
    wait_stats(p, "one reconnect", |s| s.reconnects == 1 && s.replayed == 2).await;
    run.stop().await;
}

#[tokio::test]
async fn with_nothing_listening_it_retries_until_a_plugin_appears() {
    let addr = free_addr();
    let run = Running::new(settings(), addr);
    let p = &run.pipeline;
    for i in 0..3 {
        p.push(ev(i));
    }
    wait_stats(p, "a few failed attempts", |s| s.reconnects >= 2).await;
    assert!(!p.stats().connected);

    let mut server = TestServer::start(addr);
    let mut call = server.call().await;
    let events = call.events(3, 256, p.stream_id()).await;
    assert_eq!(seq_marks(&events), [(1, 0), (2, 1), (3, 2)]);
    wait_stats(p, "connected", |s| s.connected).await;
    let stats = p.stats();
    assert_eq!(
        (stats.sent, stats.replayed),
        (3, 0),
        "failed attempts count nothing"
    );
    run.stop().await;
}

#[tokio::test]
async fn a_failing_connect_hook_is_retried_before_events_flow() {
    let mut server = TestServer::start("127.0.0.1:0".parse().expect("addr"));
    let pipeline = EventPipeline::new("test".into(), settings());
    pipeline.push(ev(0));
    let hooks = Hooks {
        fail_connects: 2,
        ..Hooks::default()
    };
    let run = Running::start(pipeline, server.addr, hooks);
    let mut call = server.call().await;
    assert_eq!(
        seq_marks(&call.events(1, 256, run.pipeline.stream_id()).await),
        [(1, 0)]
    );
    assert_eq!(run.hooks.connects.load(Ordering::SeqCst), 3);
    assert_eq!(run.pipeline.stats().reconnects, 2);
    run.stop().await;
}

#[tokio::test]
async fn after_shutdown_push_still_accepts_but_nothing_is_sent() {
    let mut server = TestServer::start("127.0.0.1:0".parse().expect("addr"));
    let run = Running::new(settings(), server.addr);
    let pipeline = Arc::clone(&run.pipeline);
    let mut call = server.call().await;
    run.stop().await;
    // Our side of the stream ended.
    let end = tokio::time::timeout(WAIT, call.batches.message()).await;
    assert!(matches!(end, Ok(Ok(None) | Err(_))), "{end:?}");
    pipeline.push(ev(0));
    let stats = pipeline.stats();
    assert_eq!((stats.enqueued, stats.queue_depth, stats.sent), (1, 1, 0));
    assert!(!stats.connected);
}
