//! What every example binary does the same way: `--health-check` (exit 0 when the plugin at
//! ADDR is SERVING, 1 otherwise) and a graceful exit 0 on SIGTERM and SIGINT.

use midge_tests::examples as common;

use std::process::Command;
use std::time::Duration;

use common::PluginProcess;

const BINS: [&str; 5] = [
    env!("CARGO_BIN_EXE_auth-password-file"),
    env!("CARGO_BIN_EXE_topic-acl"),
    env!("CARGO_BIN_EXE_topic-taboo"),
    env!("CARGO_BIN_EXE_event-logger"),
    env!("CARGO_BIN_EXE_packet-logger"),
];

fn health_check(bin: &str, target: &str) -> Option<i32> {
    Command::new(bin)
        .args(["--health-check", target])
        .output()
        .expect("running --health-check")
        .status
        .code()
}

#[test]
fn health_check_then_graceful_shutdown() {
    for (n, bin) in BINS.into_iter().enumerate() {
        let mut plugin = PluginProcess::start(bin, &[]);
        // Any example can probe any other: the check is plain grpc.health.v1.
        let prober = BINS[(n + 1) % BINS.len()];
        assert_eq!(
            health_check(prober, &plugin.addr.to_string()),
            Some(0),
            "{bin}"
        );
        assert_eq!(health_check(bin, &plugin.endpoint()), Some(0), "{bin}");
        plugin.signal(if n % 2 == 0 { "TERM" } else { "INT" });
        let status = plugin.wait_exit(Duration::from_secs(15));
        assert_eq!(status.code(), Some(0), "{bin}:\n{}", plugin.output());
        assert_eq!(
            health_check(bin, &plugin.addr.to_string()),
            Some(1),
            "{bin}"
        );
    }
}
