//! [`ConfigSlot`]: a plugin's typed config, from the broker's `Describe` or, for standalone
//! runs, from a YAML file.

use std::path::Path;
use std::sync::{Arc, RwLock};

use midge_plugin::{ConfigError, PluginConfig};
use serde::de::DeserializeOwned;

/// Reads a plugin config section from a YAML file (a mapping with the same keys as
/// `plugins.<alias>.config` in the broker's config).
///
/// # Errors
///
/// When the file cannot be read, is not YAML, or is not a mapping.
pub fn config_from_file(path: &Path) -> Result<PluginConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    PluginConfig::from_json(value).map_err(|e| format!("{}: {e}", path.display()))
}

/// The config in force. It starts as the *base*: the `--config FILE` of a standalone run, or
/// `T::default()`. Each `Describe` with a non-empty config section replaces it with that
/// section; an empty section brings the base back. So a plugin started with `--config` keeps
/// its file unless the broker's config says otherwise.
#[derive(Debug)]
pub struct ConfigSlot<T> {
    base: Arc<T>,
    current: RwLock<Arc<T>>,
}

impl<T: DeserializeOwned + Default> ConfigSlot<T> {
    /// The base config from `file` (when given) or the default.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or does not fit `T`.
    pub fn new(file: Option<&Path>) -> Result<Self, String> {
        let base = match file {
            Some(path) => config_from_file(path)?
                .parse::<T>()
                .map_err(|e| format!("{}: {e}", path.display()))?,
            None => T::default(),
        };
        let base = Arc::new(base);
        Ok(ConfigSlot {
            current: RwLock::new(Arc::clone(&base)),
            base,
        })
    }

    /// The config in force.
    pub fn get(&self) -> Arc<T> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Applies a `Describe`'s config section (see the type's doc). On error the config in force
    /// does not change.
    ///
    /// # Errors
    ///
    /// When the section does not fit `T` (the broker then sees INVALID_ARGUMENT).
    pub fn configure(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        let next = if config.is_empty() {
            Arc::clone(&self.base)
        } else {
            Arc::new(config.parse::<T>()?)
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        #[serde(default)]
        n: u32,
    }

    #[test]
    fn broker_section_replaces_the_base_until_it_is_empty() {
        let dir = std::env::temp_dir().join(format!("midge-examples-slot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("cfg.yaml");
        std::fs::write(&file, "n: 1\n").expect("write");
        let slot = ConfigSlot::<Cfg>::new(Some(&file)).expect("file");
        assert_eq!(slot.get().n, 1);
        let section = PluginConfig::from_json(serde_json::json!({"n": 2})).expect("map");
        slot.configure(&section).expect("fits");
        assert_eq!(slot.get().n, 2);
        let bad = PluginConfig::from_json(serde_json::json!({"m": 2})).expect("map");
        assert!(slot.configure(&bad).is_err());
        assert_eq!(slot.get().n, 2);
        slot.configure(&PluginConfig::default()).expect("empty");
        assert_eq!(slot.get().n, 1);
        std::fs::write(&file, "n: [1]\n").expect("write");
        assert!(ConfigSlot::<Cfg>::new(Some(&file)).is_err());
        assert_eq!(ConfigSlot::<Cfg>::new(None).expect("default").get().n, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
