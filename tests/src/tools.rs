//! Locating the external clients the tests drive: `mosquitto_pub`/`mosquitto_sub` and the
//! project's Python venv with `paho-mqtt`. `scripts/test-deps.sh` installs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The workspace root (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// Whether we run under CI (`CI=true`), where a missing tool is a failure, never a skip.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns the path of the executable `name` found on `PATH`.
///
/// When it is missing, returns `None` after printing a loud SKIPPING message, so the caller can
/// return early.
///
/// # Panics
///
/// When the tool is missing and `CI=true`: CI must run every test.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    match find_on_path(name) {
        Some(path) => Some(path),
        None => missing(&format!("`{name}` is not on PATH")),
    }
}

/// Returns `.venv/bin/python` at the repository root, once it is known to import `paho.mqtt`.
///
/// Missing venv or package: like [`require_tool`], `None` with a loud message, or a panic under
/// `CI=true`.
pub fn python() -> Option<PathBuf> {
    static PAHO_OK: OnceLock<bool> = OnceLock::new();
    let python = repo_root().join(".venv").join("bin").join("python");
    if !python.exists() {
        return missing(&format!("{} does not exist", python.display()));
    }
    let ok = *PAHO_OK.get_or_init(|| {
        Command::new(&python)
            .args(["-c", "import paho.mqtt.client"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !ok {
        return missing(&format!("{} cannot import paho.mqtt", python.display()));
    }
    Some(python)
}

fn missing(what: &str) -> Option<PathBuf> {
    let msg = format!("{what}; run scripts/test-deps.sh (scripts/test.sh runs it for you)");
    if is_ci() {
        panic!("{msg}. CI=true: a missing test tool fails the test instead of skipping it");
    }
    eprintln!("\n******** SKIPPING TEST: {msg} ********\n");
    None
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
