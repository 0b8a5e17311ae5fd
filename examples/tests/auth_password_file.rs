//! `auth-password-file` against the real broker: CONNACK codes for argon2 and sha512-crypt
//! users, unknown users, anonymous clients, and reloads (on change and on SIGHUP) after the
//! `passwd` subcommand changed the file.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{PluginEntry, PluginProcess, TempDir, TestBroker, broker_config, connack, opts};
use rumqttc::ConnectReturnCode::{NotAuthorized, Success};

const BIN: &str = env!("CARGO_BIN_EXE_auth-password-file");

/// A temp copy of the sample password file (alice: argon2id, bob: `$6$`, admin: argon2id).
fn sample_file(dir: &TempDir) -> std::path::PathBuf {
    let sample = common::examples_dir().join("configs/plugins/passwords");
    let text = std::fs::read_to_string(&sample).expect("reading the sample password file");
    dir.write("passwords", format!("{text}\nnot a valid line\n"))
}

/// Runs `auth-password-file passwd FILE USER` with `password` on stdin.
fn passwd(file: &std::path::Path, user: &str, password: &str) {
    let mut child = Command::new(BIN)
        .arg("passwd")
        .arg(file)
        .arg(user)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawning passwd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("writing the password");
    assert!(child.wait().expect("passwd").success(), "passwd failed");
}

/// The broker with the plugin as its only voter; the file comes through the broker's config.
async fn broker_for(plugin: &PluginProcess, config: &str) -> TestBroker {
    let entry = PluginEntry {
        alias: "passwords",
        endpoint: plugin.endpoint(),
        config,
    };
    TestBroker::start(&broker_config(None, &["passwords"], &[], &[entry])).await
}

#[tokio::test]
async fn argon2_and_sha512_users_wrong_passwords_unknown_and_anonymous() {
    let dir = TempDir::new();
    let file = sample_file(&dir);
    let plugin = PluginProcess::start(BIN, &[]);
    let config = format!("password-file: {}", file.display());
    let broker = broker_for(&plugin, &config).await;

    let cases = [
        (Some(("alice", "alice-secret")), Success),
        (Some(("alice", "alice-secreT")), NotAuthorized),
        (Some(("alice", "")), NotAuthorized),
        (Some(("bob", "bob-secret")), Success),
        (Some(("bob", "alice-secret")), NotAuthorized),
        (Some(("admin", "admin-secret")), Success),
        (Some(("mallory", "alice-secret")), NotAuthorized),
        // No user name: the plugin says IGNORE, nobody else votes, so the broker refuses.
        (None, NotAuthorized),
    ];
    for (n, (user, expected)) in cases.into_iter().enumerate() {
        let code = connack(opts(&broker, &format!("c{n}"), user)).await;
        assert_eq!(code, expected, "user {user:?}");
    }
    let output = plugin.output();
    assert!(
        output.contains("malformed"),
        "no warning about the bad line:\n{output}"
    );
}

#[tokio::test]
async fn anonymous_clients_pass_with_allow_anonymous_but_wrong_passwords_do_not() {
    let dir = TempDir::new();
    let file = sample_file(&dir);
    let plugin = PluginProcess::start(BIN, &["--password-file", file.to_str().expect("utf-8")]);
    let entry = PluginEntry {
        alias: "passwords",
        endpoint: plugin.endpoint(),
        config: "",
    };
    // allow-anonymous: true votes ALLOW for everyone; the plugin's DENY still wins.
    let yaml = broker_config(Some(true), &["passwords"], &[], &[entry]);
    let broker = TestBroker::start(&yaml).await;
    assert_eq!(connack(opts(&broker, "anon", None)).await, Success);
    assert_eq!(
        connack(opts(&broker, "bob", Some(("bob", "bob-secret")))).await,
        Success
    );
    assert_eq!(
        connack(opts(&broker, "bob2", Some(("bob", "nope")))).await,
        NotAuthorized
    );
}

#[tokio::test]
async fn passwd_changes_are_picked_up_by_polling() {
    let dir = TempDir::new();
    let file = sample_file(&dir);
    let plugin = PluginProcess::start(BIN, &["--poll-interval", "100ms"]);
    let broker = broker_for(&plugin, &format!("password-file: {}", file.display())).await;
    let carol = || opts(&broker, "carol", Some(("carol", "carol-secret")));
    assert_eq!(connack(carol()).await, NotAuthorized);

    passwd(&file, "carol", "carol-secret");
    common::eventually(
        "carol's new password is accepted",
        Duration::from_secs(10),
        || plugin.output().contains("\"users\":4").then_some(()),
    )
    .await;
    assert_eq!(connack(carol()).await, Success);
    // Replacing alice's hash: the old password stops working.
    passwd(&file, "alice", "changed");
    common::eventually("the second reload", Duration::from_secs(10), || {
        (plugin.output().matches("password file loaded").count() >= 3).then_some(())
    })
    .await;
    let alice = |pw| opts(&broker, "alice", Some(("alice", pw)));
    assert_eq!(connack(alice("alice-secret")).await, NotAuthorized);
    assert_eq!(connack(alice("changed")).await, Success);
}

#[tokio::test]
async fn sighup_reloads_the_file() {
    let dir = TempDir::new();
    let file = sample_file(&dir);
    // Polling practically off: only SIGHUP can reload.
    let plugin = PluginProcess::start(
        BIN,
        &[
            "--password-file",
            file.to_str().expect("utf-8"),
            "--poll-interval",
            "1h",
        ],
    );
    let broker = broker_for(&plugin, "").await;
    passwd(&file, "dave", "dave-secret");
    let dave = || opts(&broker, "dave", Some(("dave", "dave-secret")));
    assert_eq!(connack(dave()).await, NotAuthorized);
    plugin.signal("HUP");
    common::eventually("the reload after SIGHUP", Duration::from_secs(10), || {
        plugin.output().contains("\"users\":4").then_some(())
    })
    .await;
    assert_eq!(connack(dave()).await, Success);
}

#[tokio::test]
async fn a_missing_file_fails_the_start() {
    let dir = TempDir::new();
    let missing = dir.path().join("nope");
    let status = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--password-file"])
        .arg(&missing)
        .stderr(Stdio::null())
        .status()
        .expect("running the plugin");
    assert_eq!(status.code(), Some(1));
}
