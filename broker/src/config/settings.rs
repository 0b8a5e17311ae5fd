//! A plugin's own `config:` section: any YAML mapping, read into a JSON object for `Describe`,
//! with unique keys and finite numbers checked where they are written.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Deserializes `config`: a mapping (or nothing, for an empty one), converted to a JSON
/// object. Keys must be unique and numbers finite, each checked where it is written.
pub(super) fn plugin_settings<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<serde_json::Value, D::Error> {
    struct Settings;

    impl<'de> Visitor<'de> for Settings {
        type Value = serde_json::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping of the plugin's own settings")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(empty_object())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(empty_object())
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            JsonValue.visit_map(map)
        }
    }

    deserializer.deserialize_any(Settings)
}

/// Any YAML value as JSON: a seed and its visitor.
struct JsonValue;

impl<'de> DeserializeSeed<'de> for JsonValue {
    type Value = serde_json::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonValue {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value that JSON can hold")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        serde_json::Number::from_f64(value)
            .map(serde_json::Value::Number)
            .ok_or_else(|| {
                E::custom(format_args!(
                    "`{value}` cannot be sent to a plugin: numbers must be finite"
                ))
            })
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(JsonValue)? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(NewKey(&object))? {
            let value = map.next_value_seed(JsonValue)?;
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// A key of a JSON object that must not be in it yet; checked in its own visitor so that a
/// duplicate key is reported where it is written.
struct NewKey<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl<'de> DeserializeSeed<'de> for NewKey<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for NewKey<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<String, E> {
        if self.0.contains_key(key) {
            return Err(E::custom(format_args!("duplicate key `{key}`")));
        }
        Ok(key.to_owned())
    }
}

/// An empty `config:` section.
pub(super) fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}
