//! Tests of the whole config module: the embedded default, full files, and every error with
//! the line it is reported at.
//!
//! Why one file over 500 lines: one table-driven test per part of the config surface, all over
//! the same loader; they read best side by side.

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

    let config = from_yaml(
        "auth: {plugins: [a]}\nplugins: {a: {endpoint: 'http://h:1'}}\n",
        "t.yaml",
    )
    .expect("valid");
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
  max-queued-bytes: 2048
  queued-bytes-budget: 1048576
  queue-full-policy: drop-oldest
  slow-consumer-timeout: 2s
  session-expiry: 2h
  receive-maximum: 10
  topic-alias-maximum: 0
  max-keep-alive: 60
  max-session-expiry: 24h
  shared-subscriptions: false
sys-interval: 0s
auth:
  allow-anonymous: false
  plugins: []
topic-check:
  enable: false
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
            max_queued_bytes: 2048,
            queued_bytes_budget: 1 << 20,
            queue_full_policy: QueueFullPolicy::DropOldest,
            slow_consumer_timeout: Duration::from_secs(2),
            session_expiry: Duration::from_secs(7200),
            receive_maximum: 10,
            topic_alias_maximum: 0,
            max_keep_alive: 60,
            max_session_expiry: Duration::from_secs(86_400),
            shared_subscriptions: false,
        },
        sys_interval: Duration::ZERO,
        auth: AuthConfig {
            allow_anonymous: Some(false),
            plugins: vec![],
        },
        topic_check: TopicCheckConfig {
            enable: false,
            plugins: vec![],
        },
        plugins: IndexMap::new(),
        admin: AdminConfig::default(),
        metrics: MetricsConfig::default(),
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
        ("limits:\n  receive-maximum: 0\n", 7, 20, "receive-maximum: must be between 1 and 65535, got 0"),
        ("limits:\n  max-keep-alive: 70000\n", 7, 19, "max-keep-alive: must be between 1 and 65535, got 70000"),
        ("limits:\n  topic-alias-maximum: -1\n", 7, 24, "topic-alias-maximum"),
        ("limits:\n  max-queued-messages: -3\n", 7, 24, "must be at least 1, got -3"),
        ("limits:\n  max-queued-messages: 99999999999999999999999\n", 7, 24, "must be at least 1"),
        // Plugin aliases.
        ("auth:\n  plugins:\n    - passwords\n", 8, 7,
         "auth.plugins[0]: plugin alias `passwords` is not defined under `plugins`"),
        ("topic-check:\n  enable: true\n  plugins: [acl]\n", 8, 13,
         "topic-check.plugins[0]: plugin alias `acl` is not defined"),
        // ... whether `plugins` comes after the alias is used or before.
        ("auth:\n  plugins: [a, b]\nplugins:\n  a:\n    endpoint: http://h:1\n", 7, 16,
         "auth.plugins[1]: plugin alias `b` is not defined under `plugins`"),
        ("plugins:\n  a:\n    endpoint: http://h:1\ntopic-check:\n  plugins:\n    - a\n    - c\n", 12, 7,
         "topic-check.plugins[1]: plugin alias `c` is not defined under `plugins`"),
        ("plugins:\n  a: {endpoint: 'http://h:1'}\nauth:\n  plugins: [a, a]\n", 9, 16,
         "auth.plugins[1]: plugin alias `a` is listed twice"),
        // Plugin aliases.
        ("plugins:\n  a:\n    endpoint: http://h:1\n  a:\n    endpoint: http://h:2\n", 9, 3,
         "duplicate plugin alias `a`"),
        ("plugins:\n  my plugin:\n    endpoint: http://h:1\n", 7, 3,
         "plugin alias `my plugin` may contain only letters, digits, `-` and `_`"),
        ("plugins:\n  '': {endpoint: 'http://h:1'}\n", 7, 3, "a plugin alias must not be empty"),
        ("plugins: [a]\n", 6, 10, "expected a mapping from plugin aliases to plugins"),
        ("plugins:\n  a: http://h:1\n", 7, 6, "plugins.a: invalid type: string \"http://h:1\", expected a plugin mapping"),
        // Plugins.
        ("plugins:\n  a:\n    timeout: 1s\n", 8, 5, "plugins.a: missing field `endpoint`"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    colour: blue\n", 9, 5, "unknown field `colour`"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    timeout: 0s\n", 9, 14,
         "plugins.a.timeout: must be longer than 0s"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    timeout: 250\n", 9, 14, "`250` has no unit"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    startup-timeout: 0s\n", 9, 22,
         "plugins.a.startup-timeout: must be longer than 0s"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    events: [client_connected, client_exploded]\n", 9, 32,
         "plugins.a.events[1]: unknown event kind `client_exploded`, expected `all` or one of `broker_pre_start`"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    events: [client-connected]\n", 9, 14,
         "unknown event kind `client-connected`: write `client_connected`"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    events: [EVENT_KIND_PACKET_SENT]\n", 9, 14,
         "unknown event kind `EVENT_KIND_PACKET_SENT`: write `packet_sent`"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    topics: [a/b, 'a/#/b']\n", 9, 19,
         "plugins.a.topics[1]: `a/#/b` is not a valid MQTT topic filter"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    topics: ['a+']\n", 9, 14, "`a+` is not a valid MQTT topic filter"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    topics: []\n", 9, 13,
         "`topics` needs at least one topic filter"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    payload: sometimes\n", 9, 14, "expected a boolean"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    queue-size: 0\n", 9, 17,
         "plugins.a.queue-size: must be at least 1, got 0"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    overflow: drop-all\n", 9, 15,
         "expected `drop-oldest` or `drop-newest`"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    mandatory: 1\n", 9, 16, "expected a boolean"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    fallback:\n      on-timeout: maybe\n", 10, 19,
         "plugins.a.fallback.on-timeout: unknown variant `maybe`, expected one of `allow`, `deny`, `ignore`"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    fallback: {on-crash: allow}\n", 9, 16,
         "unknown field `on-crash`, expected one of `on-timeout`, `on-error`, `on-unavailable`"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    breaker:\n      failures: 0\n", 10, 17,
         "plugins.a.breaker.failures: must be between 1 and 4294967295, got 0"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    breaker:\n      cool-down: 0s\n", 10, 18,
         "plugins.a.breaker.cool-down: must be longer than 0s"),
        // Plugin TLS.
        ("plugins:\n  a:\n    endpoint: http://h:1\n    tls:\n      ca: ca.pem\n", 8, 5,
         "plugins.a: a `tls` section needs an `https://` endpoint, not `http://h:1`"),
        ("plugins:\n  a:\n    endpoint: https://h:1\n", 8, 5,
         "endpoint `https://h:1` needs `tls.ca`, the CAs to verify the plugin's certificate against"),
        ("plugins:\n  a:\n    endpoint: https://h:1\n    tls:\n      cert: c.pem\n      key: k.pem\n", 8, 5,
         "needs `tls.ca`"),
        ("plugins:\n  a:\n    endpoint: https://h:1\n    tls:\n      ca: ca.pem\n      cert: c.pem\n", 10, 7,
         "plugins.a.tls: `cert` needs `key`"),
        ("plugins:\n  a:\n    endpoint: https://h:1\n    tls:\n      ca: ca.pem\n      key: k.pem\n", 10, 7,
         "plugins.a.tls: `key` needs `cert`"),
        ("plugins:\n  a:\n    endpoint: https://h:1\n    tls:\n      ca: ''\n", 10, 7, "`ca` must not be empty"),
        ("plugins:\n  a:\n    endpoint: https://h:1\n    tls:\n      ca: ca.pem\n      crt: c.pem\n", 11, 7,
         "unknown field `crt`, expected one of `ca`, `cert`, `key`"),
        // Plugin config.
        ("plugins:\n  a:\n    endpoint: http://h:1\n    config: [1, 2]\n", 9, 13,
         "plugins.a.config: invalid type: sequence, expected a mapping of the plugin's own settings"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    config: text\n", 9, 13, "invalid type: string \"text\""),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    config: 5\n", 9, 13, "invalid type: integer `5`"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    config:\n      k: 1\n      k: 2\n", 11, 7,
         "plugins.a.config: duplicate key `k`"),
        ("plugins:\n  a:\n    endpoint: http://h:1\n    config:\n      deep: {list: [1, .nan]}\n", 10, 24,
         "`NaN` cannot be sent to a plugin: numbers must be finite"),
        // Admin and metrics.
        ("admin:\n  bind: localhost:50051\n", 7, 9, "admin.bind: `localhost:50051` is not an IP address and port"),
        ("admin:\n  port: 1\n", 7, 3, "admin: unknown field `port`, expected one of `enable`, `bind`, `token`"),
        ("admin:\n  enable: sure\n", 7, 11, "admin.enable: invalid type"),
        ("admin:\n  token: ''\n", 7, 10, "admin.token: the admin token must not be empty"),
        ("admin:\n  token: two words\n", 7, 10, "admin.token: the admin token may contain only visible ASCII"),
        ("admin:\n  token: abc\n  token-file: /t\n", 7, 3, "admin: give either `token` or `token-file`, not both"),
        ("admin:\n  token-file: ''\n", 7, 3, "admin: `token-file` must not be empty"),
        ("admin:\n  tls:\n    cert: c\n", 8, 5, "admin.tls: missing field `key`"),
        ("admin: 5\n", 6, 8, "expected an admin mapping"),
        ("metrics:\n  bind: 9090\n", 7, 9, "metrics.bind: `9090` is not an IP address and port"),
        ("metrics:\n  path: /m\n", 7, 3, "metrics: unknown field `path`, expected `enable` or `bind`"),
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

#[test]
fn endpoints_are_checked_where_they_are_written() {
    for good in [
        "http://127.0.0.1:50051",
        "https://plugins.internal:443",
        "http://[::1]:1",
        "http://auth_plugin:65535",
        "http://localhost:8080",
    ] {
        let tls = if good.starts_with("https") {
            "    tls: {ca: ca.pem}\n"
        } else {
            ""
        };
        let text = format!("plugins:\n  a:\n    endpoint: '{good}'\n{tls}");
        let config = from_yaml(&text, "midge.yaml").unwrap_or_else(|err| panic!("{good}: {err}"));
        assert_eq!(config.plugins["a"].endpoint, good);
    }
    #[rustfmt::skip]
    let bad = [
        ("localhost:50051", "endpoint `localhost:50051` has no scheme: expected `http://host:port` or `https://host:port`"),
        ("grpc://h:1", "endpoint `grpc://h:1` has scheme `grpc`: use `http` or `https`"),
        ("HTTP://h:1", "has scheme `HTTP`"),
        ("http://h", "endpoint `http://h` has no port: write it as in `http://host:50051`"),
        ("http://h:", "has no port"),
        ("http://h:0", "port `0` is not a number from 1 to 65535"),
        ("http://h:65536", "port `65536` is not a number from 1 to 65535"),
        ("http://h:+80", "port `+80` is not a number"),
        ("http://:1", "endpoint `http://:1` has no host"),
        ("http://h:1/", "has a path `/`"),
        ("http://h:1/v1/auth", "has a path `/v1/auth`"),
        ("http://user@h:1", "has user information"),
        ("http://::1:5", "write an IPv6 address in brackets, as in `http://[::1]:50051`"),
        ("http://[::1:5", "has no `]` after its IPv6 address"),
        ("http://[zz]:5", "`zz` is not an IPv6 address"),
        ("http://a b:1", "`a b` is not a host name or IP address"),
        ("http://a..b:1", "`a..b` is not a host name"),
        ("", "has no scheme"),
    ];
    for (endpoint, reason) in bad {
        let text = format!("plugins:\n  a:\n    endpoint: '{endpoint}'\n");
        let err = from_yaml(&text, "midge.yaml").expect_err(endpoint);
        assert_eq!(
            (err.line, err.column),
            (Some(3), Some(15)),
            "{endpoint}: {err}"
        );
        assert!(err.reason.starts_with("plugins.a.endpoint: "), "{err}");
        assert!(err.reason.contains(reason), "{endpoint}: {err}");
    }
}

#[test]
fn two_plugins_wired_into_auth_and_topic_check() {
    // `auth` and `topic-check` name the plugins before they are defined; `plugins` keeps the
    // order of the file, which is not alphabetical here.
    let text = "\
auth:
  allow-anonymous: false
  plugins: [passwords]
topic-check:
  enable: true
  plugins: [passwords, acl]
plugins:
  passwords:
    endpoint: http://127.0.0.1:50051
    config:
      file: /etc/midge/passwords
      rounds: 12
      ratio: 0.5
      hashes: [bcrypt, argon2]
      fallback: ~
      nested: {enabled: true}
  acl:
    endpoint: https://acl.internal:50052
    timeout: 1s
    fallback:
      on-timeout: allow
      on-unavailable: ignore
    events: [all, packet_received]
    topics: ['sensors/#', '+/status']
    payload: false
    queue-size: 5
    overflow: drop-newest
    mandatory: true
    startup-timeout: 30s
    breaker:
      failures: 3
      cool-down: 1m
    tls:
      ca: certs/ca.pem
      cert: certs/midge.pem
      key: certs/midge.key
";
    let config = from_yaml(text, "plugins.yaml").expect("valid");
    assert_eq!(
        config.auth,
        AuthConfig {
            allow_anonymous: Some(false),
            plugins: vec!["passwords".into()],
        }
    );
    assert_eq!(
        config.topic_check,
        TopicCheckConfig {
            enable: true,
            plugins: vec!["passwords".into(), "acl".into()],
        }
    );
    let aliases: Vec<&str> = config.plugins.keys().map(String::as_str).collect();
    assert_eq!(aliases, ["passwords", "acl"], "file order kept");

    let passwords = PluginConfig {
        config: serde_json::json!({
            "file": "/etc/midge/passwords",
            "rounds": 12,
            "ratio": 0.5,
            "hashes": ["bcrypt", "argon2"],
            "fallback": null,
            "nested": {"enabled": true},
        }),
        ..PluginConfig::new("http://127.0.0.1:50051")
    };
    assert_eq!(config.plugins.get("passwords"), Some(&passwords));
    assert_eq!(passwords.timeout, Duration::from_millis(250));
    assert_eq!(passwords.fallback.on_error, Fallback::Deny);
    assert_eq!(passwords.queue_size, 10_000);
    assert_eq!(passwords.overflow, Overflow::DropOldest);
    assert_eq!(passwords.startup_timeout, Duration::from_secs(10));
    assert_eq!(
        passwords.breaker,
        BreakerConfig {
            failures: 5,
            cool_down: Duration::from_secs(5),
        }
    );
    assert!(!passwords.is_https());
    assert_eq!(passwords.event_kinds(), None);

    let acl = PluginConfig {
        endpoint: "https://acl.internal:50052".into(),
        timeout: Duration::from_secs(1),
        fallback: FallbackConfig {
            on_timeout: Fallback::Allow,
            on_error: Fallback::Deny,
            on_unavailable: Fallback::Ignore,
        },
        events: Some(vec![EventKindName::All, EventKindName::PacketReceived]),
        topics: Some(vec!["sensors/#".into(), "+/status".into()]),
        payload: Some(false),
        queue_size: 5,
        overflow: Overflow::DropNewest,
        mandatory: true,
        startup_timeout: Duration::from_secs(30),
        breaker: BreakerConfig {
            failures: 3,
            cool_down: Duration::from_secs(60),
        },
        tls: Some(PluginTlsConfig {
            ca: Some(PathBuf::from("certs/ca.pem")),
            cert: Some(PathBuf::from("certs/midge.pem")),
            key: Some(PathBuf::from("certs/midge.key")),
        }),
        config: serde_json::json!({}),
    };
    assert_eq!(config.plugins.get("acl"), Some(&acl));
    assert!(acl.is_https());
    let mut expected_kinds = EventKindName::KINDS.to_vec();
    expected_kinds.retain(|kind| *kind != EventKindName::PacketSent);
    assert_eq!(acl.event_kinds(), Some(expected_kinds));

    // Everything else keeps its default.
    assert_eq!(config.listeners, Config::default().listeners);
    assert_eq!(config.limits, Limits::default());
}

#[test]
fn the_commented_plugins_example_of_the_default_file_parses() {
    // The block from `# plugins:` up to the live `plugins: {}` line, uncommented.
    let example: String = DEFAULT_YAML
        .lines()
        .skip_while(|line| *line != "# plugins:")
        .take_while(|line| line.starts_with('#'))
        .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or("")))
        .collect();
    assert!(example.starts_with("plugins:\n  passwords:\n"), "{example}");
    let text = format!(
        "{example}auth:\n  plugins: [passwords]\ntopic-check:\n  enable: true\n  plugins: [acl]\n"
    );
    let config = from_yaml(&text, "example.yaml").unwrap_or_else(|err| panic!("{err}\n{text}"));
    let aliases: Vec<&str> = config.plugins.keys().map(String::as_str).collect();
    assert_eq!(aliases, ["passwords", "acl"]);

    // The values the comments call defaults are the defaults.
    let passwords = &config.plugins["passwords"];
    assert_eq!(
        passwords,
        &PluginConfig {
            events: Some(vec![
                EventKindName::ClientConnected,
                EventKindName::ClientDisconnected
            ]),
            topics: Some(vec!["sensors/#".into()]),
            payload: Some(true),
            config: serde_json::json!({"password-file": "/etc/midge/passwords"}),
            ..PluginConfig::new("http://127.0.0.1:50061")
        }
    );
    assert_eq!(
        config.plugins["acl"],
        PluginConfig {
            tls: Some(PluginTlsConfig {
                ca: Some(PathBuf::from("/etc/midge/plugins-ca.pem")),
                cert: Some(PathBuf::from("/etc/midge/midge.crt")),
                key: Some(PathBuf::from("/etc/midge/midge.key")),
            }),
            ..PluginConfig::new("https://acl.internal:50052")
        }
    );
}

#[test]
fn plugins_section_forms() {
    for text in ["plugins:\n", "plugins: {}\n"] {
        let config = from_yaml(text, "t.yaml").expect(text);
        assert!(config.plugins.is_empty(), "{text:?}");
    }
    // `config` left empty or null is an empty object, like leaving it out.
    for config in ["", "    config:\n", "    config: ~\n", "    config: {}\n"] {
        let text = format!("plugins:\n  a:\n    endpoint: http://h:1\n{config}");
        let parsed = from_yaml(&text, "t.yaml").expect(config);
        assert_eq!(
            parsed.plugins["a"],
            PluginConfig::new("http://h:1"),
            "{config:?}"
        );
    }
    // Absent or null `events`, `topics` and `payload` are `None`; `events: []` is no events.
    let text = "plugins:\n  a:\n    endpoint: http://h:1\n    events: ~\n    topics: ~\n    payload: ~\n  b:\n    endpoint: http://h:2\n    events: []\n";
    let config = from_yaml(text, "t.yaml").expect("valid");
    assert_eq!(config.plugins["a"], PluginConfig::new("http://h:1"));
    assert_eq!(config.plugins["b"].events, Some(vec![]));
    assert_eq!(config.plugins["b"].event_kinds(), Some(vec![]));
    // Alias characters.
    let text = "plugins:\n  Auth_DB-2:\n    endpoint: http://h:1\nauth:\n  plugins: [Auth_DB-2]\n";
    let config = from_yaml(text, "t.yaml").expect("valid");
    assert_eq!(config.auth.plugins, ["Auth_DB-2"]);
}

#[test]
fn event_kind_names_match_the_proto() {
    let names: Vec<&str> = EventKindName::KINDS.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "broker_pre_start",
            "broker_post_start",
            "broker_pre_shutdown",
            "broker_post_shutdown",
            "client_connected",
            "client_disconnected",
            "client_subscribed",
            "client_unsubscribed",
            "message_received",
            "message_broadcast",
            "retained_stored",
            "retained_cleared",
            "packet_received",
            "packet_sent",
        ]
    );
    for kind in EventKindName::KINDS {
        assert_eq!(EventKindName::from_name(kind.as_str()), Some(kind));
        assert_eq!(kind.expand(), [kind]);
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert_eq!(EventKindName::from_name("all"), Some(EventKindName::All));
    let all = EventKindName::All.expand();
    assert_eq!(all.len(), 12);
    assert!(all.iter().all(|kind| !kind.is_packet()));
    assert!(EventKindName::PacketReceived.is_packet() && EventKindName::PacketSent.is_packet());
}

#[test]
fn deserializing_a_config_directly_still_checks_aliases() {
    // Without `load`/`from_yaml` the aliases are checked once the whole file is read, so a
    // forward reference works and an undefined alias is reported at the top of the mapping.
    let ok = "auth:\n  plugins: [a]\nplugins:\n  a: {endpoint: 'http://h:1'}\n";
    let config: Config = serde_yaml::from_str(ok).expect("forward reference");
    assert_eq!(config.auth.plugins, ["a"]);

    let bad = "sys-interval: 1s\ntopic-check:\n  enable: true\n  plugins: [a, b]\nplugins:\n  a: {endpoint: 'http://h:1'}\n";
    let err = serde_yaml::from_str::<Config>(bad).expect_err("undefined alias");
    assert_eq!(
        err.to_string(),
        "topic-check.plugins: plugin alias `b` is not defined under `plugins`"
    );
    let at = err.location().expect("a position");
    assert_eq!((at.line(), at.column()), (1, 1));
    // `from_yaml` points at the alias itself.
    let err = from_yaml(bad, "t.yaml").expect_err("undefined alias");
    assert_eq!(
        err.to_string(),
        "t.yaml:4:16: topic-check.plugins[1]: plugin alias `b` is not defined under `plugins`"
    );
}

#[test]
fn a_malformed_plugins_section_is_reported_in_file_order() {
    // The alias scan fails on this file; the real pass reports the first problem.
    let text = "auth:\n  plugins: [a]\nplugins: 5\n";
    let err = from_yaml(text, "t.yaml").expect_err("plugins not a mapping");
    assert_eq!((err.line, err.column), (Some(3), Some(10)), "{err}");
    assert!(
        err.reason
            .contains("expected a mapping from plugin aliases"),
        "{err}"
    );
}

#[test]
fn admin_and_metrics_default_to_loopback_and_are_explicit_when_written() {
    let config = Config::default();
    assert_eq!(config.admin.bind, addr("127.0.0.1:50051"));
    assert!(config.admin.enable && !config.admin.explicit);
    assert_eq!(config.metrics.bind, addr("127.0.0.1:9090"));
    assert!(config.metrics.enable && !config.metrics.explicit);

    let text = "\
admin:
  bind: 0.0.0.0:0
  token: s3cret
  tls: {cert: a.pem, key: a.key}
metrics:
  enable: false
";
    let config = from_yaml(text, "t.yaml").expect("valid");
    assert_eq!(
        config.admin,
        AdminConfig {
            enable: true,
            bind: addr("0.0.0.0:0"),
            token: Some(AdminToken::Inline("s3cret".into())),
            tls: Some(TlsConfig {
                cert: PathBuf::from("a.pem"),
                key: PathBuf::from("a.key"),
                client_ca: None,
                require_client_cert: false,
            }),
            explicit: true,
        }
    );
    assert_eq!(
        config.metrics,
        MetricsConfig {
            enable: false,
            explicit: true,
            ..MetricsConfig::default()
        }
    );
    assert!(
        !format!("{config:?}").contains("s3cret"),
        "Debug never shows the token"
    );

    let config = from_yaml("admin:\n  token-file: /run/token\n", "t.yaml").expect("valid");
    assert_eq!(
        config.admin.token,
        Some(AdminToken::File(PathBuf::from("/run/token")))
    );
    let config = from_yaml("admin: {}\nmetrics: {}\n", "t.yaml").expect("valid");
    assert_eq!(
        (config.admin.bind, config.admin.explicit),
        (addr("127.0.0.1:50051"), true)
    );
    assert_eq!(
        (config.metrics.bind, config.metrics.explicit),
        (addr("127.0.0.1:9090"), true)
    );
}

#[test]
fn the_commented_admin_and_metrics_sections_of_the_default_file_parse_to_the_defaults() {
    for (section, expected_lines) in [("# admin:", 11), ("# metrics:", 3)] {
        let block: String = DEFAULT_YAML
            .lines()
            .skip_while(|line| *line != section)
            .take_while(|line| line.starts_with('#') && *line != "#")
            .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or("")))
            .collect();
        assert_eq!(block.lines().count(), expected_lines, "{block}");
        let config =
            from_yaml(&block, "example.yaml").unwrap_or_else(|err| panic!("{err}\n{block}"));
        assert_eq!(config.admin.bind, DEFAULT_ADMIN_BIND);
        assert_eq!(config.metrics.bind, DEFAULT_METRICS_BIND);
        assert!(config.admin.enable && config.metrics.enable);
    }
    let block: String = DEFAULT_YAML
        .lines()
        .skip_while(|line| *line != "# admin:")
        .take_while(|line| line.starts_with('#') && *line != "#")
        .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or("")))
        .collect();
    let admin = from_yaml(&block, "example.yaml").expect("valid").admin;
    assert_eq!(admin.token, Some(AdminToken::Inline("s3cret".into())));
    assert!(admin.tls.is_some());
}

#[test]
fn auth_and_topic_check_that_would_fail_open_or_silently_are_refused() {
    let refused = |text: &str, line: usize, reason: &str| {
        let err = from_yaml(text, "c.yaml").expect_err(text);
        assert_eq!(err.line, Some(line), "{text}: {err}");
        assert!(err.reason.contains(reason), "{text}: {err}");
        assert!(
            err.to_string().starts_with(&format!("c.yaml:{line}:")),
            "{err}"
        );
    };
    let plugin = "plugins:\n  p: {endpoint: 'http://h:1'}\n";
    // Checks enabled with nobody to ask (and no authenticator that could grant topics).
    refused(
        "topic-check: {enable: true}\n",
        1,
        "`enable: true` with no plugins",
    );
    refused(
        "sys-interval: 1s\ntopic-check:\n  enable: true\n  plugins: []\n",
        3,
        "list topic-check plugins or set `enable: false`",
    );
    // Plugins that would never be asked.
    refused(
        &format!("topic-check:\n  plugins: [p]\n{plugin}"),
        2,
        "`enable` is false",
    );
    // An auth section that refuses every client.
    refused("auth: {}\n", 1, "neither `allow-anonymous` nor plugins");
    refused("auth:\n  plugins: []\n", 2, "every client would be refused");

    // Session grants alone: enabled with no topic plugins is fine when auth has plugins,
    // wherever `auth` is in the file.
    for text in [
        format!("auth: {{plugins: [p]}}\ntopic-check: {{enable: true}}\n{plugin}"),
        format!("topic-check: {{enable: true}}\n{plugin}auth: {{plugins: [p]}}\n"),
    ] {
        let config = from_yaml(&text, "c.yaml").expect(&text);
        assert!(config.topic_check.enable && config.topic_check.plugins.is_empty());
    }
    // Without `from_yaml`'s first pass the whole-config check still refuses it.
    let direct = serde_yaml::from_str::<Config>("sys-interval: 1s\ntopic-check: {enable: true}\n");
    assert!(direct.is_err(), "{direct:?}");
    let direct = serde_yaml::from_str::<Config>(&format!(
        "auth: {{plugins: [p]}}\ntopic-check: {{enable: true}}\n{plugin}"
    ));
    assert!(direct.is_ok(), "{direct:?}");
}
