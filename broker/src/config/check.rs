//! Building blocks for deserializers that validate while they read: a mapping checked as a
//! whole once read (errors at the mapping), and integers within bounds (errors at the number).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// Deserializes a mapping into `Raw`, then checks it with `check`, whose error is reported at
/// the mapping's position.
pub(super) fn checked_map<'de, D, Raw, T, F>(
    deserializer: D,
    expecting: &'static str,
    check: F,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    Raw: Deserialize<'de>,
    F: FnOnce(Raw) -> Result<T, String>,
{
    struct CheckedMap<Raw, F> {
        expecting: &'static str,
        check: F,
        raw: PhantomData<fn() -> Raw>,
    }

    impl<'de, Raw, T, F> Visitor<'de> for CheckedMap<Raw, F>
    where
        Raw: Deserialize<'de>,
        F: FnOnce(Raw) -> Result<T, String>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            let raw = Raw::deserialize(MapAccessDeserializer::new(map))?;
            (self.check)(raw).map_err(de::Error::custom)
        }
    }

    deserializer.deserialize_map(CheckedMap {
        expecting,
        check,
        raw: PhantomData,
    })
}

/// Deserializes an integer in `min..=max` (no upper bound but the type's when `max` is None).
pub(super) fn bounded<'de, D, T>(deserializer: D, min: u64, max: Option<u64>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct Bounded<T> {
        min: u64,
        max: Option<u64>,
        target: PhantomData<fn() -> T>,
    }

    impl<T> Bounded<T> {
        fn out_of_range<E: de::Error>(&self, value: impl fmt::Display) -> E {
            match self.max {
                Some(max) => E::custom(format_args!(
                    "must be between {} and {max}, got {value}",
                    self.min
                )),
                None => E::custom(format_args!("must be at least {}, got {value}", self.min)),
            }
        }
    }

    impl<T: TryFrom<u64>> Visitor<'_> for Bounded<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an integer of at least {}", self.min)
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
            if value < self.min || self.max.is_some_and(|max| value > max) {
                return Err(self.out_of_range(value));
            }
            T::try_from(value).map_err(|_| self.out_of_range(value))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
            match u64::try_from(value) {
                Ok(value) => self.visit_u64(value),
                Err(_) => Err(self.out_of_range(value)),
            }
        }

        fn visit_u128<E: de::Error>(self, value: u128) -> Result<T, E> {
            Err(self.out_of_range(value))
        }

        fn visit_i128<E: de::Error>(self, value: i128) -> Result<T, E> {
            Err(self.out_of_range(value))
        }
    }

    deserializer.deserialize_any(Bounded {
        min,
        max,
        target: PhantomData,
    })
}
