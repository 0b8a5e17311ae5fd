//! Reading a config file into a [`Config`], with `path:line:column: reason` errors.
//!
//! This is the only place that calls serde_yaml (0.9, deprecated upstream), so replacing it
//! touches one file.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Config, aliases};

/// Why a config file could not be used, and where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", Origin(self))]
pub struct ConfigError {
    /// The file, as given to [`load`], or the origin label given to [`from_yaml`].
    pub path: PathBuf,
    /// 1-based line of the offending text; `None` when the file could not be read at all.
    pub line: Option<usize>,
    /// 1-based column of the offending text; `None` when the file could not be read at all.
    pub column: Option<usize>,
    /// What is wrong, for a human; it names the offending key and, when useful, the fix.
    pub reason: String,
}

/// Displays `path:line:column`, or just `path` when there is no position.
struct Origin<'a>(&'a ConfigError);

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ConfigError {
            path, line, column, ..
        } = self.0;
        write!(f, "{}", path.display())?;
        match (line, column) {
            (Some(line), Some(column)) => write!(f, ":{line}:{column}"),
            (Some(line), None) => write!(f, ":{line}"),
            _ => Ok(()),
        }
    }
}

/// Reads and validates the config file at `path`.
///
/// # Errors
///
/// A [`ConfigError`] naming `path` when the file cannot be read or is not valid UTF-8, and
/// with the line and column of the problem when it is not a valid configuration.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let error = |line, column, reason| ConfigError {
        path: path.to_owned(),
        line,
        column,
        reason,
    };
    let bytes = std::fs::read(path)
        .map_err(|err| error(None, None, format!("cannot read config file: {err}")))?;
    let text = String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        let (line, column) = end_position(&String::from_utf8_lossy(valid));
        error(Some(line), Some(column), "invalid UTF-8".to_owned())
    })?;
    parse(&text, path)
}

/// Parses and validates a configuration held in memory; `origin` names it in errors (a file
/// name, or a label such as `<embedded default>`).
///
/// # Errors
///
/// A [`ConfigError`] with the line and column of the first problem found.
pub fn from_yaml(text: &str, origin: &str) -> Result<Config, ConfigError> {
    parse(text, Path::new(origin))
}

/// Reads `text` in two passes: a lenient one that only collects the plugin aliases defined
/// under `plugins`, so that the real one can report an alias used in `auth` or `topic-check`
/// but not defined at the line where it is used, even when `plugins` comes later in the file.
/// If the first pass fails, the second reports the problem (or, should it somehow succeed,
/// still checks the aliases, reporting at the top of the file).
fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let scan = serde_yaml::from_str::<aliases::AliasScan>(text).ok();
    aliases::with_defined_aliases(scan, || serde_yaml::from_str(text)).map_err(|err| {
        let message = err.to_string();
        let (line, column, reason) = match err.location() {
            Some(at) => {
                let suffix = format!(" at line {} column {}", at.line(), at.column());
                (at.line(), at.column(), message.replacen(&suffix, "", 1))
            }
            // Errors about the stream as a whole come without a position: point at the
            // second document when there is one (the usual cause), else at the end.
            None => match second_document(text) {
                Some(line) => (line, 1, message),
                None => {
                    let (line, column) = end_position(text);
                    (line, column, message)
                }
            },
        };
        ConfigError {
            path: path.to_owned(),
            line: Some(line),
            column: Some(column),
            reason,
        }
    })
}

/// The 1-based line and column just after the end of `text`.
fn end_position(text: &str) -> (usize, usize) {
    let last_line = text.rsplit('\n').next().unwrap_or_default();
    (
        1 + text.matches('\n').count(),
        1 + last_line.chars().count(),
    )
}

/// The 1-based line of the `---` marker that starts a second YAML document, if any.
fn second_document(text: &str) -> Option<usize> {
    let mut in_document = false;
    for (index, line) in text.lines().enumerate() {
        let is_marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']));
        if is_marker && in_document {
            return Some(index + 1);
        }
        let trimmed = line.trim();
        let is_content = !trimmed.is_empty() && !trimmed.starts_with('#') && !line.starts_with('%');
        in_document |= is_marker || is_content;
    }
    None
}
