//! Unit tests of the parent module.

use super::*;

/// Every `midge_*` name in the table of the module documentation above.
fn documented() -> Vec<String> {
    include_str!("mod.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("//! | `midge_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("midge_{name}"))
        .collect()
}

#[tokio::test]
async fn every_metric_served_is_documented() {
    let config = crate::config::from_yaml(
        "plugins:\n  acl:\n    endpoint: http://127.0.0.1:1\nlisteners:\n  - {name: default, kind: tcp, bind: '127.0.0.1:0'}\n",
        "t.yaml",
    )
    .expect("config");
    let broker = crate::Broker::new(config).expect("broker");
    let text = render(&registry(broker.context().clone(), Arc::default())).expect("render");
    let documented = documented();
    let mut families = 0;
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).expect("name");
        assert!(
            documented.iter().any(|d| d == name),
            "{name} is not documented"
        );
        families += 1;
    }
    assert_eq!(
        families,
        documented.len(),
        "documented but not served:\n{text}"
    );
    assert!(
        text.contains("midge_plugin_call_duration_seconds_bucket{plugin=\"acl\",le=\"+Inf\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("midge_plugin_state{plugin=\"acl\",state=\"reconnecting\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("midge_messages_dropped_total{reason=\"queue_full\"} 0"),
        "{text}"
    );
}
