//! Tests of the whole config module: the embedded default, full files, and every error with
//! the line it is reported at.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

#[test]
fn embedded_default_parses_to_config_default() {
    assert_eq!(
        from_yaml(DEFAULT_YAML, "default.yaml"),
        Ok(Config::default())
    );
}

#[test]
fn empty_file_is_the_default() {
    for text in ["", "# nothing but a comment\n", "---\n", "{}\n"] {
        assert_eq!(
            from_yaml(text, "empty.yaml"),
            Ok(Config::default()),
            "{text:?}"
        );
    }
}

#[test]
fn omitted_sections_keep_the_default_and_omitted_keys_take_theirs() {
    let config = from_yaml("limits:\n  max-inflight: 5\n", "t.yaml").expect("valid");
    assert_eq!(config.limits.max_inflight, 5);
    assert_eq!(
        config.limits.max_packet_size,
        Limits::default().max_packet_size
    );
    assert_eq!(
        config.auth.allow_anonymous,
        Some(true),
        "auth section omitted"
    );
    assert_eq!(config.listeners, Config::default().listeners);

    let config = from_yaml("auth: {}\n", "t.yaml").expect("valid");
    assert_eq!(
        config.auth.allow_anonymous, None,
        "allow-anonymous omitted: no vote"
    );
}

#[test]
fn full_file_parses_every_key() {
    let text = "\
listeners:
  - name: plain
    kind: tcp
    bind: 127.0.0.1:0
    max-connections: 0
    connect-timeout: 1m30s
  - name: secure
    kind: wss
    bind: '[::1]:8443'
    tls:
      cert: certs/server.pem
      key: certs/server.key
      client-ca: certs/ca.pem
      require-client-cert: true
limits:
  max-packet-size: 64
  max-inflight: 65535
  max-queued-messages: 1
  queue-full-policy: drop-oldest
  session-expiry: 2h
sys-interval: 0s
auth:
  allow-anonymous: false
  plugins: []
topic-check:
  enable: true
";
    let expected = Config {
        listeners: vec![
            ListenerConfig {
                max_connections: 0,
                connect_timeout: Duration::from_secs(90),
                ..ListenerConfig::tcp("plain", addr("127.0.0.1:0"))
            },
            ListenerConfig {
                kind: ListenerKind::Wss,
                tls: Some(TlsConfig {
                    cert: PathBuf::from("certs/server.pem"),
                    key: PathBuf::from("certs/server.key"),
                    client_ca: Some(PathBuf::from("certs/ca.pem")),
                    require_client_cert: true,
                }),
                ..ListenerConfig::tcp("secure", addr("[::1]:8443"))
            },
        ],
        limits: Limits {
            max_packet_size: 64,
            max_inflight: 65535,
            max_queued_messages: 1,
            queue_full_policy: QueueFullPolicy::DropOldest,
            session_expiry: Duration::from_secs(7200),
        },
        sys_interval: Duration::ZERO,
        auth: AuthConfig {
            allow_anonymous: Some(false),
            plugins: vec![],
        },
        topic_check: TopicCheckConfig {
            enable: true,
            plugins: vec![],
        },
    };
    assert_eq!(from_yaml(text, "full.yaml"), Ok(expected));
}

/// Four valid lines, so that each case below puts its mistake further down the file.
const HEAD: &str = "\
sys-interval: 10s
listeners:
  - name: a
    kind: tcp
    bind: 0.0.0.0:1883
";

#[test]
fn every_error_names_its_line_column_and_reason() {
    // (text appended after HEAD, line, column, substring of the reason)
    #[rustfmt::skip]
    let cases: &[(&str, usize, usize, &str)] = &[
        // Syntax and types.
        ("    bind2: [\n", 6, 5, "unknown field `bind2`"),
        ("limits:\n\tmax-inflight: 1\n", 7, 1, "cannot start any token"),
        ("colour: blue\n", 6, 1, "unknown field `colour`, expected one of `listeners`"),
        ("limits:\n  max-inflight: lots\n", 7, 17, "limits.max-inflight: invalid type: string"),
        ("auth:\n  allow-anonymous: yes\n", 7, 20, "expected a boolean"),
        ("  - name: b\n    kind: udp\n", 7, 11, "unknown variant `udp`"),
        ("  - name: b\n    kind: tcp\n", 6, 5, "listeners[1]: missing field `bind`"),
        ("  - name: b\n    kind: tcp\n    bind: localhost:1\n", 8, 11, "is not an IP address"),
        ("  - name: b\n    kind: tcp\n    bind: 0.0.0.0:1\n    port: 1\n", 9, 5, "unknown field `port`"),
        ("limits:\n  queue-full-policy: drop-all\n", 7, 22, "expected `drop-oldest` or `drop-newest`"),
        ("limits:\n  max-inflight: 1\n  max-inflight: 2\n", 7, 3, "duplicate field `max-inflight`"),
        ("---\nsys-interval: 5s\n", 6, 1, "more than one document"),
        // Durations.
        ("    connect-timeout: 10\n", 6, 22, "`10` has no unit: write `10s` or `10ms`"),
        ("    connect-timeout: 0s\n", 6, 22, "connect-timeout: must be longer than 0s"),
        ("    connect-timeout: 1.5s\n", 6, 22, "use a smaller unit"),
        ("limits:\n  session-expiry: 5 days\n", 7, 19, "`5 days` is not a duration"),
        // Listeners.
        ("  - name: a\n    kind: tcp\n    bind: 0.0.0.0:1884\n", 6, 5, "duplicate listener name `a`"),
        ("  - name: ' '\n    kind: tcp\n    bind: 0.0.0.0:1\n", 6, 5, "`name` must not be empty"),
        ("  - name: s\n    kind: tls\n    bind: 0.0.0.0:1\n", 6, 5, "of kind `tls` needs a `tls` section"),
        ("  - name: s\n    kind: wss\n    bind: 0.0.0.0:1\n", 6, 5, "of kind `wss` needs a `tls` section"),
        ("  - name: w\n    kind: ws\n    bind: 0.0.0.0:1\n    tls: {cert: c, key: k}\n", 6, 5,
         "of kind `ws` takes no `tls` section"),
        ("    tls:\n      cert: c\n      key: k\n", 3, 5, "of kind `tcp` takes no `tls` section"),
        ("  - name: s\n    kind: tls\n    bind: 0.0.0.0:1\n    tls:\n      cert: c\n      key: k\n      require-client-cert: true\n",
         10, 7, "`require-client-cert: true` needs `client-ca`"),
        ("  - name: s\n    kind: tls\n    bind: 0.0.0.0:1\n    tls:\n      cert: ''\n      key: k\n", 10, 7,
         "`cert` must not be empty"),
        ("  - name: s\n    kind: tls\n    bind: 0.0.0.0:1\n    tls:\n      cert: c\n", 10, 7, "missing field `key`"),
        ("  - 5\n", 6, 5, "expected a listener mapping"),
        // Limits.
        ("limits:\n  max-packet-size: 63\n", 7, 20, "max-packet-size: must be between 64 and 268435460, got 63"),
        ("limits:\n  max-packet-size: 268435461\n", 7, 20, "must be between 64 and 268435460"),
        ("limits:\n  max-inflight: 0\n", 7, 17, "max-inflight: must be between 1 and 65535, got 0"),
        ("limits:\n  max-inflight: 65536\n", 7, 17, "must be between 1 and 65535, got 65536"),
        ("limits:\n  max-queued-messages: 0\n", 7, 24, "max-queued-messages: must be at least 1, got 0"),
        ("limits:\n  max-queued-messages: -3\n", 7, 24, "must be at least 1, got -3"),
        ("limits:\n  max-queued-messages: 99999999999999999999999\n", 7, 24, "must be at least 1"),
        // Plugin aliases.
        ("auth:\n  plugins:\n    - passwords\n", 8, 7,
         "auth.plugins[0]: plugin alias `passwords` is not defined under `plugins`"),
        ("topic-check:\n  enable: true\n  plugins: [acl]\n", 8, 13,
         "topic-check.plugins[0]: plugin alias `acl` is not defined"),
    ];
    for &(tail, line, column, reason) in cases {
        let text = format!("{HEAD}{tail}");
        let err = from_yaml(&text, "midge.yaml").expect_err(tail);
        assert_eq!(
            (err.line, err.column),
            (Some(line), Some(column)),
            "{tail:?}: {err}"
        );
        assert!(err.reason.contains(reason), "{tail:?}: {err}");
        assert!(
            !err.reason.contains(" at line "),
            "position left in reason: {err}"
        );
        assert_eq!(
            err.to_string(),
            format!("midge.yaml:{line}:{column}: {}", err.reason)
        );
    }
}

#[test]
fn listener_list_errors_point_at_the_list() {
    #[rustfmt::skip]
    let cases: &[(&str, usize, usize, &str)] = &[
        ("listeners: []\n", 1, 12, "at least one listener is required"),
        ("sys-interval: 1s\nlisteners:\n", 2, 11, "at least one listener is required"),
        ("listeners: tcp\n", 1, 12, "expected a list of listeners"),
    ];
    for &(text, line, column, reason) in cases {
        let err = from_yaml(text, "midge.yaml").expect_err(text);
        assert_eq!(
            (err.line, err.column),
            (Some(line), Some(column)),
            "{text:?}: {err}"
        );
        assert!(err.reason.contains(reason), "{text:?}: {err}");
    }
}

#[test]
fn load_reads_a_file_and_reports_its_path() {
    let dir = std::env::temp_dir().join(format!("midge-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let good = dir.join("good.yaml");
    std::fs::write(&good, DEFAULT_YAML).expect("write");
    assert_eq!(load(&good), Ok(Config::default()));

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "sys-interval: 10s\nlimits:\n  max-inflight: 0\n").expect("write");
    let err = load(&bad).expect_err("max-inflight 0");
    assert_eq!(err.path, bad);
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3:17: limits.max-inflight: must be between 1 and 65535, got 0",
            bad.display()
        )
    );

    let latin1 = dir.join("latin1.yaml");
    std::fs::write(&latin1, b"# ok\n# caf\xe9\n").expect("write");
    let err = load(&latin1).expect_err("invalid UTF-8");
    assert_eq!(
        (err.line, err.column, err.reason.as_str()),
        (Some(2), Some(6), "invalid UTF-8")
    );

    std::fs::remove_dir_all(&dir).expect("clean up");

    let missing = Path::new("/nonexistent/midge.yaml");
    let err = load(missing).expect_err("missing file");
    assert_eq!((err.line, err.column), (None, None));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/midge.yaml: cannot read config file: "),
        "{err}"
    );
}
