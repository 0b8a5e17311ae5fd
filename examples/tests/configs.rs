//! Every broker config example we show loads, and every plugin `config:` in them is accepted by
//! the real plugin it is meant for.
//!
//! The examples: every ```` ```yaml ```` block of `README.md`, `docs/*.md`, `examples/README.md`
//! and `examples/*/README.md`; `broker/src/config/default.yaml` and each commented-out example
//! section in it (`# plugins:`, `  # - name: ...`), uncommented; and `examples/configs/*.yaml`.
//! A block that is deliberately not a whole config is tagged ```` ```yaml fragment ```` and
//! skipped, if listed in [`FRAGMENTS`] (empty today: every block is a whole config).
//!
//! Each example must pass `midge --check-config`. Each plugin section whose endpoint uses the
//! port of one of our Rust plugins (50061 auth-password-file, 50062 topic-acl, 50063
//! topic-taboo, 50064 event-logger, 50065 packet-logger; failing that, whose alias is the one the
//! docs use for it) is sent, config and alias, to that plugin's real binary in `Describe`,
//! which must accept it. So is each plugin config file of `examples/configs/plugins/`.

use midge_tests::examples as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{PluginProcess, TempDir};
use midge_plugin::{PluginConfig, pb};

/// The ```` ```yaml fragment ```` blocks that may be skipped, as `path:line`.
const FRAGMENTS: &[&str] = &[];

/// One config example: where it is, and its YAML.
#[derive(Debug)]
struct Example {
    origin: String,
    yaml: String,
}

fn repo_root() -> PathBuf {
    midge_tests::tools::repo_root()
}

/// `path` relative to the repository, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The ```` ```yaml ```` blocks of a Markdown file; returns where the ones tagged `fragment` are.
fn markdown_blocks(path: &Path, out: &mut Vec<Example>) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut fragments = Vec::new();
    let mut block: Option<(usize, bool, String)> = None;
    for (index, line) in text.lines().enumerate() {
        match block.as_mut() {
            None => {
                let info = line.trim_start().strip_prefix("```").map(str::trim);
                match info {
                    Some("yaml" | "yml") => block = Some((index + 1, false, String::new())),
                    Some("yaml fragment" | "yml fragment") => {
                        block = Some((index + 1, true, String::new()));
                    }
                    _ => {}
                }
            }
            Some((start, fragment, yaml)) => {
                if line.trim_start().starts_with("```") {
                    if *fragment {
                        fragments.push(format!("{}:{start}", shown(path)));
                    } else {
                        out.push(Example {
                            origin: format!("{}:{start}", shown(path)),
                            yaml: std::mem::take(yaml),
                        });
                    }
                    block = None;
                } else {
                    yaml.push_str(line);
                    yaml.push('\n');
                }
            }
        }
    }
    assert!(
        block.is_none(),
        "{}: unclosed ```yaml block",
        path.display()
    );
    fragments
}

/// The commented-out examples of a YAML file: a line `# key:` (or `  # - name:` inside a
/// list) and the lines after it that continue it with `#` and more indentation, uncommented.
/// An indented block is a list item of `listeners`, the only list with commented examples.
fn commented_blocks(path: &Path, out: &mut Vec<Example>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        let starts = line[indent..].strip_prefix("# ").is_some_and(|rest| {
            rest.starts_with("- name:")
                || rest.split_once(':').is_some_and(|(key, after)| {
                    !key.is_empty()
                        && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                        && (after.is_empty() || after.starts_with(' '))
                })
        });
        if !starts {
            i += 1;
            continue;
        }
        let prefix = format!("{}#  ", &line[..indent]);
        let mut yaml = if indent > 0 {
            String::from("listeners:\n")
        } else {
            String::new()
        };
        let start = i + 1;
        let uncomment = |l: &str| format!("{}{}\n", &l[..indent], &l[indent + 2..]);
        yaml.push_str(&uncomment(line));
        i += 1;
        while i < lines.len() && lines[i].starts_with(&prefix) {
            yaml.push_str(&uncomment(lines[i]));
            i += 1;
        }
        out.push(Example {
            origin: format!("{}:{start} (commented out)", shown(path)),
            yaml,
        });
    }
}

/// The files of `dir` whose names end with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found
}

/// Every example, in a fixed order.
fn examples() -> Vec<Example> {
    let root = repo_root();
    let mut out = Vec::new();
    let mut markdown = vec![root.join("README.md"), root.join("examples/README.md")];
    markdown.extend(files(&root.join("docs"), ".md"));
    let mut plugin_dirs: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .expect("examples/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("README.md").is_file())
        .collect();
    plugin_dirs.sort();
    markdown.extend(plugin_dirs.into_iter().map(|d| d.join("README.md")));
    for md in &markdown {
        for fragment in markdown_blocks(md, &mut out) {
            assert!(
                FRAGMENTS.contains(&fragment.as_str()),
                "{fragment}: a ```yaml fragment block not listed in FRAGMENTS"
            );
        }
    }

    let default = root.join("broker/src/config/default.yaml");
    out.push(Example {
        origin: shown(&default),
        yaml: std::fs::read_to_string(&default).expect("default.yaml"),
    });
    commented_blocks(&default, &mut out);
    for path in files(&root.join("examples/configs"), ".yaml") {
        out.push(Example {
            origin: shown(&path),
            yaml: std::fs::read_to_string(&path).expect("example config"),
        });
    }
    out
}

#[test]
fn every_config_example_loads() {
    let examples = examples();
    let dir = TempDir::new();
    let mut failures = Vec::new();
    for (n, example) in examples.iter().enumerate() {
        let path = dir.write(&format!("example-{n}.yaml"), &example.yaml);
        let out = Command::new(midge_tests::broker::midge_bin())
            .arg("--check-config")
            .arg(&path)
            .output()
            .expect("running midge --check-config");
        if !out.status.success() {
            failures.push(format!(
                "{}: {}{}\n{}",
                example.origin,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                example.yaml
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The walk found what is there: 8 Markdown blocks, default.yaml and its 6 commented
    // sections, and 4 files in examples/configs/ when this was written.
    let origins: Vec<&str> = examples.iter().map(|e| e.origin.as_str()).collect();
    assert!(examples.len() >= 19, "only {origins:#?}");
    for expected in [
        "README.md:",
        "docs/plugins.md:",
        "examples/auth-password-file/README.md:",
        "broker/src/config/default.yaml:",
        "examples/configs/full.yaml",
    ] {
        assert!(
            origins.iter().any(|o| o.starts_with(expected)),
            "no example from {expected} in {origins:#?}"
        );
    }
    assert!(
        origins
            .iter()
            .any(|o| o.starts_with("broker/src/config/default.yaml:")
                && o.ends_with("(commented out)")),
        "no commented-out example of default.yaml in {origins:#?}"
    );
}

/// Our Rust plugins: binary, default port, and the aliases the docs give it.
const PLUGINS: [(&str, u16, &[&str]); 5] = [
    (
        env!("CARGO_BIN_EXE_auth-password-file"),
        50061,
        &["passwords"],
    ),
    (env!("CARGO_BIN_EXE_topic-acl"), 50062, &["acl"]),
    (env!("CARGO_BIN_EXE_topic-taboo"), 50063, &["taboo"]),
    (
        env!("CARGO_BIN_EXE_event-logger"),
        50064,
        &["events", "logger"],
    ),
    (env!("CARGO_BIN_EXE_packet-logger"), 50065, &["packets"]),
];

/// The Python plugin's port: its config keys are checked by `python_event_logger.rs` (it needs a
/// Python environment).
const PYTHON_PORT: u16 = 50066;

/// The port of an `http(s)://host:port` endpoint.
fn port(endpoint: &str) -> Option<u16> {
    endpoint
        .rsplit_once(':')
        .and_then(|(_, p)| p.trim_end_matches('/').parse().ok())
}

/// A plugin config to check: where, which plugin (index into [`PLUGINS`]), alias, config.
#[derive(Debug)]
struct PluginCheck {
    origin: String,
    plugin: usize,
    alias: String,
    config: serde_json::Value,
}

/// `password-file` paths outside the repository (`/etc/midge/passwords`, a path in a container)
/// exist only where the example is deployed: they are replaced with the sample file. Relative
/// paths are the plugin's, run here from the repository root: they must exist.
fn localize(config: &mut serde_json::Value, sample: &Path) {
    for key in ["password-file", "password_file"] {
        if let Some(value) = config.get_mut(key)
            && value.as_str().is_some_and(|p| Path::new(p).is_absolute())
        {
            *value = serde_json::Value::String(sample.display().to_string());
        }
    }
}

/// Every plugin section of the examples that belongs to one of [`PLUGINS`], and the plugin
/// config files of `examples/configs/plugins/`.
fn plugin_checks() -> Vec<PluginCheck> {
    let mut checks = Vec::new();
    let mut unknown = Vec::new();
    for example in examples() {
        let yaml: serde_yaml::Value = serde_yaml::from_str(&example.yaml)
            .unwrap_or_else(|e| panic!("{}: {e}", example.origin));
        let Some(plugins) = yaml.get("plugins").and_then(|p| p.as_mapping()) else {
            continue;
        };
        for (alias, section) in plugins {
            let alias = alias.as_str().expect("aliases are strings").to_owned();
            let endpoint_port = section
                .get("endpoint")
                .and_then(|e| e.as_str())
                .and_then(port);
            let config = section
                .get("config")
                .map(|c| serde_json::to_value(c).expect("YAML to JSON"))
                .unwrap_or(serde_json::Value::Null);
            let plugin = PLUGINS
                .iter()
                .position(|(_, p, _)| Some(*p) == endpoint_port)
                .or_else(|| {
                    PLUGINS
                        .iter()
                        .position(|(_, _, aliases)| aliases.contains(&alias.as_str()))
                });
            match plugin {
                Some(plugin) => checks.push(PluginCheck {
                    origin: example.origin.clone(),
                    plugin,
                    alias,
                    config,
                }),
                None if config.is_null() || endpoint_port == Some(PYTHON_PORT) => {}
                None => unknown.push(format!("{}: plugins.{alias}", example.origin)),
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "config sections for a plugin this test does not know: {unknown:#?}"
    );
    for (file, plugin) in [("acl.yaml", 1), ("taboo.yaml", 2)] {
        let path = common::examples_dir().join("configs/plugins").join(file);
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).expect("plugin config"))
                .expect("YAML");
        checks.push(PluginCheck {
            origin: shown(&path),
            plugin,
            alias: file.trim_end_matches(".yaml").to_owned(),
            config: serde_json::to_value(yaml).expect("YAML to JSON"),
        });
    }
    checks
}

#[tokio::test]
async fn every_plugin_config_shown_is_accepted_by_its_plugin() {
    let mut checks = plugin_checks();
    let sample = common::examples_dir().join("configs/plugins/passwords");
    for check in &mut checks {
        localize(&mut check.config, &sample);
    }
    // Each plugin once, from the repository root (relative paths in the examples are written
    // from there).
    let mut processes = Vec::new();
    for (bin, _, _) in PLUGINS {
        let mut cmd = Command::new(bin);
        cmd.current_dir(repo_root())
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"]);
        processes.push(PluginProcess::sdk_command(cmd));
    }
    let mut failures = Vec::new();
    let mut checked = [0usize; PLUGINS.len()];
    for check in &checks {
        let process = &processes[check.plugin];
        let channel = tonic::transport::Endpoint::from_shared(process.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connecting to the plugin");
        let config = match &check.config {
            serde_json::Value::Null => None,
            json => Some(
                PluginConfig::from_json(json.clone())
                    .unwrap_or_else(|e| panic!("{}: {e}", check.origin))
                    .section()
                    .clone(),
            ),
        };
        let answer = pb::plugin_client::PluginClient::new(channel)
            .describe(pb::DescribeRequest {
                broker_version: "examples-test".to_owned(),
                alias: check.alias.clone(),
                config,
            })
            .await;
        checked[check.plugin] += 1;
        if let Err(status) = answer {
            failures.push(format!(
                "{}: plugins.{} refused by {}: {status:?}\nconfig: {}",
                check.origin,
                check.alias,
                shown(Path::new(PLUGINS[check.plugin].0)),
                check.config
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        checked.iter().all(|&n| n > 0),
        "a plugin no example uses: {checked:?} for {:?}",
        PLUGINS.map(|(bin, _, _)| shown(Path::new(bin)))
    );
}
