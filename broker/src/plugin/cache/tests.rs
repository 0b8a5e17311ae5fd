//! Unit tests of the parent module.

use super::*;

#[tokio::test(start_paused = true)]
async fn topic_entries_expire() {
    let cache = TopicCache::default();
    let topic = ByteString::from("a/b");
    cache.put(
        0,
        Action::Publish,
        topic.clone(),
        PluginVote::Allow,
        Duration::from_secs(2),
    );
    assert_eq!(
        cache.get(0, Action::Publish, &topic),
        Some(PluginVote::Allow)
    );
    assert_eq!(cache.get(1, Action::Publish, &topic), None, "other plugin");
    assert_eq!(cache.get(0, Action::Receive, &topic), None, "other action");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(cache.get(0, Action::Publish, &topic), None);
}

#[tokio::test(start_paused = true)]
async fn topic_entries_replace_invalidate_and_clear() {
    let cache = TopicCache::default();
    assert!(cache.is_empty());
    let ttl = Duration::from_secs(60);
    cache.put(0, Action::Publish, "a".into(), PluginVote::Allow, ttl);
    cache.put(0, Action::Publish, "a".into(), PluginVote::Ignore, ttl);
    cache.put(1, Action::Publish, "a".into(), PluginVote::Allow, ttl);
    cache.put(
        0,
        Action::Receive,
        "b".into(),
        PluginVote::Deny("no".into()),
        ttl,
    );
    assert_eq!(cache.len(), 3, "a second put for the same key replaces");
    assert_eq!(cache.get(0, Action::Publish, "a"), Some(PluginVote::Ignore));
    assert_eq!(
        cache.peek(0, Action::Receive, "b", |v| matches!(
            v,
            PluginVote::Deny(_)
        )),
        Some(true)
    );
    cache.clear_plugin(0);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(0, Action::Receive, "b"), None);
    assert_eq!(cache.get(1, Action::Publish, "a"), Some(PluginVote::Allow));
    cache.clear();
    assert!(cache.is_empty());
    assert_eq!(cache.get(1, Action::Publish, "a"), None);
}

#[tokio::test(start_paused = true)]
async fn a_full_topic_cache_sweeps_expired_entries_then_refuses() {
    let cache = TopicCache::default();
    for i in 0..TOPIC_CACHE_CAPACITY {
        let ttl = Duration::from_secs(if i % 2 == 0 { 1 } else { 60 });
        cache.put(
            0,
            Action::Publish,
            format!("t/{i}").into(),
            PluginVote::Allow,
            ttl,
        );
    }
    let ttl = Duration::from_secs(60);
    cache.put(0, Action::Publish, "late".into(), PluginVote::Allow, ttl);
    assert_eq!(
        cache.get(0, Action::Publish, "late"),
        None,
        "full of live entries"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    cache.put(0, Action::Publish, "late".into(), PluginVote::Allow, ttl);
    assert_eq!(
        cache.len(),
        TOPIC_CACHE_CAPACITY / 2 + 1,
        "expired half swept"
    );
    assert_eq!(
        cache.get(0, Action::Publish, "late"),
        Some(PluginVote::Allow)
    );
}

#[tokio::test(start_paused = true)]
async fn the_longest_lifetimes_are_capped_not_overflowed() {
    let forever = Duration::from_millis(i64::MAX as u64);
    let cache = TopicCache::default();
    let topic = ByteString::from("t");
    cache.put(
        0,
        Action::Publish,
        topic.clone(),
        PluginVote::Allow,
        forever,
    );
    assert_eq!(
        cache.get(0, Action::Publish, &topic),
        Some(PluginVote::Allow)
    );
    let auth = AuthCache::default();
    let key = auth.key(0, &pb::AuthenticateRequest::default());
    auth.put(key.clone(), PluginVote::Allow, None, forever);
    assert!(auth.get(&key).is_some());
    tokio::time::advance(MAX_TTL).await;
    assert_eq!(
        cache.get(0, Action::Publish, &topic),
        None,
        "capped at a day"
    );
    assert!(auth.get(&key).is_none(), "capped at a day");
}

#[test]
fn grants_live_without_entries_until_cleared() {
    let cache = TopicCache::default();
    assert_eq!(cache.granted(Action::Publish, "a"), None);
    cache.set_grants(None);
    assert!(cache.0.lock().is_none(), "nothing allocated for no grants");
    let grants = pb::SessionGrants {
        publish: vec!["a/#".into()],
        ..Default::default()
    };
    let mut merged = Grants::default();
    merged.merge(&grants);
    cache.set_grants(Some(Arc::new(merged)));
    assert_eq!(cache.granted(Action::Publish, "a/b"), Some(true));
    assert!(cache.is_empty());
    cache.clear();
    assert_eq!(cache.granted(Action::Publish, "a/b"), None);
}

#[tokio::test(start_paused = true)]
async fn auth_keys_include_the_credentials() {
    let cache = AuthCache::default();
    let request = |password: &[u8], listener: &str| pb::AuthenticateRequest {
        client_id: "c".into(),
        username: Some("u".into()),
        password: Some(password.to_vec()),
        listener: listener.into(),
        ..Default::default()
    };
    let right = cache.key(0, &request(b"pw", "tcp"));
    cache.put(
        right.clone(),
        PluginVote::Allow,
        None,
        Duration::from_secs(10),
    );
    assert_eq!(cache.get(&right), Some((PluginVote::Allow, None)));
    assert_eq!(cache.get(&cache.key(0, &request(b"px", "tcp"))), None);
    assert_eq!(cache.get(&cache.key(0, &request(b"pw", "tls"))), None);
    cache.invalidate(1, None, None);
    assert_eq!(
        cache.get(&right),
        Some((PluginVote::Allow, None)),
        "another plugin's invalidation"
    );
    cache.invalidate(0, None, Some("u"));
    assert_eq!(cache.get(&right), None);
}
