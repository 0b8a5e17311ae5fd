//! Plugin aliases across sections: every alias in `auth.plugins` and `topic-check.plugins` must
//! be defined under `plugins`, which may come later in the file. [`super::load`] first collects
//! the defined aliases (and whether `auth` lists plugins) in a quick, lenient pass
//! ([`AliasScan`]) and makes them known to the visitors of the real pass
//! ([`with_defined_aliases`]), so that a problem is reported where it is written.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The first, lenient pass over a config file: only the aliases defined under `plugins`.
/// Every other section is skipped unread; a malformed `plugins` section fails this pass, and
/// the real pass then reports the problem.
/// It also notes whether `auth` lists plugins, which decides whether `topic-check` may be
/// enabled without plugins of its own (session grants from authenticators are then the
/// only source of topic permissions).
#[derive(Deserialize)]
pub(super) struct AliasScan {
    #[serde(default, deserialize_with = "alias_keys")]
    plugins: HashSet<String>,
    #[serde(default)]
    auth: AuthScan,
}

/// The lenient view of `auth` in [`AliasScan`]: only whether it lists plugins.
#[derive(Deserialize, Default)]
struct AuthScan {
    #[serde(default)]
    plugins: Vec<IgnoredAny>,
}

thread_local! {
    /// Whether `auth.plugins` of the file being read is non-empty, when known in advance; set
    /// only for the duration of [`with_defined_aliases`].
    static AUTH_HAS_PLUGINS: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Whether `auth` lists plugins; `None` when that is not known yet.
pub(super) fn auth_has_plugins() -> Option<bool> {
    AUTH_HAS_PLUGINS.with(std::cell::Cell::get)
}

/// Deserializes the keys of a mapping, skipping the values.
fn alias_keys<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HashSet<String>, D::Error> {
    struct Keys;

    impl<'de> Visitor<'de> for Keys {
        type Value = HashSet<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut keys = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.insert(key);
            }
            Ok(keys)
        }
    }

    deserializer.deserialize_map(Keys)
}

thread_local! {
    /// The aliases defined under `plugins` of the file being read, when known in advance;
    /// set only for the duration of [`with_defined_aliases`].
    static DEFINED_ALIASES: RefCell<Option<HashSet<String>>> = const { RefCell::new(None) };
}

/// Runs `read` with `aliases` as the plugin aliases the alias visitors accept (`None`: not
/// known, leave the check to the end of the mapping), then restores what was there before,
/// even if `read` panics.
pub(super) fn with_defined_aliases<T>(scan: Option<AliasScan>, read: impl FnOnce() -> T) -> T {
    struct Restore(Option<HashSet<String>>, Option<bool>);

    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            DEFINED_ALIASES.with(|defined| *defined.borrow_mut() = previous);
            AUTH_HAS_PLUGINS.with(|auth| auth.set(self.1));
        }
    }

    let (aliases, auth) = match scan {
        Some(scan) => (Some(scan.plugins), Some(!scan.auth.plugins.is_empty())),
        None => (None, None),
    };
    let _restore = Restore(
        DEFINED_ALIASES.with(|defined| defined.replace(aliases)),
        AUTH_HAS_PLUGINS.with(|cell| cell.replace(auth)),
    );
    read()
}

/// Whether `alias` is defined under `plugins`; `None` when that is not known yet.
fn is_defined(alias: &str) -> Option<bool> {
    DEFINED_ALIASES.with(|defined| {
        defined
            .borrow()
            .as_ref()
            .map(|aliases| aliases.contains(alias))
    })
}

/// Deserializes a list of plugin aliases, each listed once and defined under `plugins`.
///
/// Whether an alias is defined is checked here, pointing at the alias, when the defined
/// aliases are known in advance (see [`with_defined_aliases`]); otherwise [`RawConfig`]
/// checks it once the whole configuration is read.
pub(super) fn plugin_aliases<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    struct Aliases;

    impl<'de> Visitor<'de> for Aliases {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of plugin aliases")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut aliases = Vec::new();
            while let Some(alias) = seq.next_element_seed(DefinedAlias(&aliases))? {
                aliases.push(alias);
            }
            Ok(aliases)
        }
    }

    /// One alias, not among those listed before it; checked inside its own visitor so that
    /// the error points at it.
    struct DefinedAlias<'a>(&'a [String]);

    impl<'de> DeserializeSeed<'de> for DefinedAlias<'_> {
        type Value = String;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
            deserializer.deserialize_str(self)
        }
    }

    impl Visitor<'_> for DefinedAlias<'_> {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a plugin alias")
        }

        fn visit_str<E: de::Error>(self, alias: &str) -> Result<String, E> {
            if is_defined(alias) == Some(false) {
                return Err(E::custom(format_args!(
                    "plugin alias `{alias}` is not defined under `plugins`"
                )));
            }
            if self.0.iter().any(|listed| listed == alias) {
                return Err(E::custom(format_args!(
                    "plugin alias `{alias}` is listed twice"
                )));
            }
            Ok(alias.to_owned())
        }
    }

    deserializer.deserialize_seq(Aliases)
}
