//! Every broker config in `examples/configs/` passes `midge --check-config`.

mod common;

use std::process::Command;

#[test]
fn every_example_config_is_valid() {
    let dir = common::examples_dir().join("configs");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("examples/configs") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let out = Command::new(midge_tests::broker::midge_bin())
            .arg("--check-config")
            .arg(&path)
            .output()
            .expect("running midge --check-config");
        assert!(
            out.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked.push(path);
    }
    assert!(checked.len() >= 4, "only {checked:?}");
}
