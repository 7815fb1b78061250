//! Engine values to JSON, keeping their meaning: the rules every engine shares.
//!
//! Integers up to 64 bits are exact JSON numbers (or strings when the client asks,
//! for JavaScript), exact decimals are strings with every digit, floats are numbers
//! with `NaN`/`Infinity` as strings, temporal values are ISO 8601 / RFC 3339, binary
//! is base64, JSON is JSON, NULL is null. A value of a type without a decoder comes
//! back as its text (or, when it is not text, base64), never as an error. Each
//! engine's module (`pg::values`, `mysql::values`, `sqlite::values`) maps its wire
//! format onto these.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// How to render values.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Render {
    /// 64-bit integers as strings.
    pub bigint_as_string: bool,
}

/// A float as JSON: numbers, and `"NaN"`, `"Infinity"`, `"-Infinity"` as strings.
pub(crate) fn float(value: f64) -> Value {
    if value.is_nan() {
        json!("NaN")
    } else if value.is_infinite() {
        json!(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(value)
    }
}

/// A signed 64-bit integer, as a string when the client asks.
pub(crate) fn int64(value: i64, render: Render) -> Value {
    if render.bigint_as_string {
        json!(value.to_string())
    } else {
        json!(value)
    }
}

/// An unsigned 64-bit integer, as a string when the client asks.
pub(crate) fn uint64(value: u64, render: Render) -> Value {
    if render.bigint_as_string {
        json!(value.to_string())
    } else {
        json!(value)
    }
}

/// `YYYY-MM-DD`.
pub(crate) fn date(value: NaiveDate) -> Value {
    json!(value.format("%Y-%m-%d").to_string())
}

/// `HH:MM:SS` with the fraction when there is one.
pub(crate) fn time(value: NaiveTime) -> Value {
    json!(value.format("%H:%M:%S%.f").to_string())
}

/// A timestamp without time zone: ISO 8601 without an offset.
pub(crate) fn local_timestamp(value: NaiveDateTime) -> Value {
    json!(value.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
}

/// A point in time: RFC 3339 in UTC.
pub(crate) fn utc_timestamp(value: DateTime<Utc>) -> Value {
    json!(value.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// Binary data as standard base64.
pub(crate) fn bytes(value: &[u8]) -> Value {
    json!(STANDARD.encode(value))
}

/// Text when the raw value is UTF-8, base64 otherwise.
pub(crate) fn text_or_base64(raw: &[u8]) -> Value {
    match std::str::from_utf8(raw) {
        Ok(text) => json!(text),
        Err(_) => bytes(raw),
    }
}

/// The engine type name as clients see it: built-in upper-case names in lower case,
/// user-defined names (enums, domains) as they are.
pub(crate) fn display_type(name: &str) -> String {
    if name.bytes().any(|b| b.is_ascii_lowercase()) {
        name.to_owned()
    } else {
        name.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_floats_become_strings() {
        assert_eq!(float(f64::NAN), json!("NaN"));
        assert_eq!(float(f64::INFINITY), json!("Infinity"));
        assert_eq!(float(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(float(1.5), json!(1.5));
    }

    #[test]
    fn big_integers_become_strings_only_when_asked() {
        let strings = Render {
            bigint_as_string: true,
        };
        assert_eq!(int64(i64::MAX, Render::default()), json!(i64::MAX));
        assert_eq!(int64(i64::MAX, strings), json!("9223372036854775807"));
        assert_eq!(uint64(u64::MAX, strings), json!("18446744073709551615"));
    }
}
