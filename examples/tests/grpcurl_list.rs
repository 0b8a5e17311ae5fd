//! `grpcurl list` on every example plugin, with the real grpcurl binary (installed into `.venv`
//! by `scripts/test-deps.sh`): each shows the services it implements plus health and
//! reflection, with no `.proto` file given.

use midge_tests::examples as common;

use std::process::{Command, Stdio};

use common::PluginProcess;
use midge_tests::tools::{is_ci, repo_root};

/// (binary, the `midge.plugin.v1` services it must list besides `Plugin`).
const PLUGINS: [(&str, &[&str]); 5] = [
    (
        env!("CARGO_BIN_EXE_auth-password-file"),
        &["midge.plugin.v1.Authenticator"],
    ),
    (
        env!("CARGO_BIN_EXE_topic-acl"),
        &["midge.plugin.v1.TopicFilter"],
    ),
    (
        env!("CARGO_BIN_EXE_topic-taboo"),
        &["midge.plugin.v1.TopicFilter"],
    ),
    (
        env!("CARGO_BIN_EXE_event-logger"),
        &["midge.plugin.v1.EventSink"],
    ),
    (
        env!("CARGO_BIN_EXE_packet-logger"),
        &["midge.plugin.v1.EventSink"],
    ),
];

fn grpcurl() -> Option<std::path::PathBuf> {
    let bin = repo_root().join(".venv").join("bin").join("grpcurl");
    if bin.exists() {
        return Some(bin);
    }
    let msg = format!("{} does not exist; run scripts/test-deps.sh", bin.display());
    assert!(
        !is_ci(),
        "{msg}. CI=true: a missing test tool fails the test"
    );
    eprintln!("\n******** SKIPPING TEST: {msg} ********\n");
    None
}

#[test]
fn grpcurl_lists_each_plugins_services_with_health_and_reflection() {
    let Some(grpcurl) = grpcurl() else { return };
    let passwords = common::examples_dir().join("configs/plugins/passwords");
    for (bin, services) in PLUGINS {
        let args: Vec<&str> = if bin.ends_with("auth-password-file") {
            vec!["--password-file", passwords.to_str().expect("utf-8 path")]
        } else {
            Vec::new()
        };
        let plugin = PluginProcess::start(bin, &args);
        let output = Command::new(&grpcurl)
            .args(["-plaintext", &plugin.addr.to_string(), "list"])
            .stdin(Stdio::null())
            .output()
            .expect("running grpcurl");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{bin}: grpcurl list failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listed: Vec<&str> = stdout.lines().map(str::trim).collect();
        let expected = services
            .iter()
            .copied()
            .chain(["midge.plugin.v1.Plugin", "grpc.health.v1.Health"]);
        for service in expected {
            assert!(
                listed.contains(&service),
                "{bin}: {service} not in {listed:?}"
            );
        }
        assert!(
            listed.iter().any(|s| s.starts_with("grpc.reflection.")),
            "{bin}: no reflection service in {listed:?}"
        );
    }
}

#[test]
fn grpcurl_lists_the_python_plugins_services_with_health_and_reflection() {
    let Some(grpcurl) = grpcurl() else { return };
    if !common::python_setup() {
        return;
    }
    let plugin = common::start_python(&[]);
    let output = Command::new(&grpcurl)
        .args(["-plaintext", &plugin.addr.to_string(), "list"])
        .stdin(Stdio::null())
        .output()
        .expect("running grpcurl");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "grpcurl list failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Vec<&str> = stdout.lines().map(str::trim).collect();
    for service in [
        "midge.plugin.v1.Plugin",
        "midge.plugin.v1.EventSink",
        "midge.plugin.v1.Authenticator",
        "grpc.health.v1.Health",
    ] {
        assert!(listed.contains(&service), "{service} not in {listed:?}");
    }
    assert!(
        listed.iter().any(|s| s.starts_with("grpc.reflection.")),
        "no reflection service in {listed:?}"
    );
}
