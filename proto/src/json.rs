//! Conversions between `google.protobuf.Struct` (how `DescribeRequest.config` travels) and
//! `serde_json::Value` (how Rust code reads it with serde). Enabled by the `json` feature.
//!
//! Protobuf has a single number type (`double`). Going to JSON, a number with no fractional part
//! that fits an `i64` becomes a JSON integer, so `u32` or `u64` config fields deserialize as
//! users expect; non-finite numbers become `null`. Going to a `Struct`, every number becomes a
//! `double` (integers beyond 2^53 lose precision, as in any protobuf JSON mapping).

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Number, Value as Json};

/// A `Struct` as a JSON object.
pub fn struct_to_json(s: &Struct) -> Json {
    Json::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// A protobuf `Value` as JSON. An unset kind is `null`.
pub fn value_to_json(v: &Value) -> Json {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => number_to_json(*n),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(value_to_json).collect()),
        Some(Kind::StructValue(s)) => struct_to_json(s),
    }
}

/// The largest magnitude below which every integer is exact in an `f64` (2^53).
const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0;

fn number_to_json(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() <= EXACT_INT_LIMIT {
        // Exact: |n| <= 2^53, so the cast neither truncates nor saturates.
        #[allow(clippy::cast_possible_truncation)]
        return Json::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Json::Null, Json::Number)
}

/// A JSON value as a protobuf `Value`.
pub fn json_to_value(j: &Json) -> Value {
    let kind = match j {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        Json::Object(o) => Kind::StructValue(object_to_struct(o)),
    };
    Value { kind: Some(kind) }
}

/// A JSON object as a `Struct`.
pub fn object_to_struct(o: &Map<String, Json>) -> Struct {
    Struct {
        fields: o
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

/// A JSON value as a `Struct`: an object maps field by field, `null` is the empty `Struct`, and
/// anything else (a config section that is a bare list or scalar) is `None`.
pub fn json_to_struct(j: &Json) -> Option<Struct> {
    match j {
        Json::Object(o) => Some(object_to_struct(o)),
        Json::Null => Some(Struct::default()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_config_shapes() {
        let config = json!({
            "password-file": "/etc/midge/passwd",
            "acl": { "alice": ["a/#", "b/+"], "anonymous": [] },
            "retries": 3,
            "ratio": 0.5,
            "negative": -7,
            "enabled": true,
            "nothing": null,
        });
        let s = json_to_struct(&config).expect("object");
        assert_eq!(struct_to_json(&s), config);
    }

    #[test]
    fn integral_doubles_become_integers() {
        assert_eq!(number_to_json(3.0), json!(3));
        assert_eq!(number_to_json(-0.0), json!(0));
        assert_eq!(number_to_json(2.5), json!(2.5));
        assert_eq!(number_to_json(f64::NAN), Json::Null);
        assert_eq!(number_to_json(1e300), json!(1e300));
    }

    #[test]
    fn only_objects_and_null_are_structs() {
        assert_eq!(json_to_struct(&Json::Null), Some(Struct::default()));
        assert_eq!(json_to_struct(&json!([1, 2])), None);
        assert_eq!(json_to_struct(&json!("x")), None);
    }
}
