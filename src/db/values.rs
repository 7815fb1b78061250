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
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::db::budget::{Budget, MAX_JSON_DEPTH, NODE_BYTES, OverBudget};

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

/// Text (or, when it is not UTF-8, base64), charged to `budget` first.
pub(crate) fn charged_text(raw: &[u8], budget: &mut Budget) -> Result<Value, OverBudget> {
    match std::str::from_utf8(raw) {
        Ok(text) => {
            budget.node(text.len())?;
            Ok(json!(text))
        }
        Err(_) => charged_bytes(raw, budget),
    }
}

/// Binary data as base64, charged to `budget` first.
pub(crate) fn charged_bytes(raw: &[u8], budget: &mut Budget) -> Result<Value, OverBudget> {
    budget.node(raw.len().div_ceil(3).saturating_mul(4))?;
    Ok(bytes(raw))
}

/// A JSON document sent as text, as the JSON value it is: charged for the tree it
/// becomes before it is built, refused past [`MAX_JSON_DEPTH`] levels, and
/// `Ok(None)` when the text is not JSON at all (the caller shows it as text).
pub(crate) fn json_document(text: &[u8], budget: &mut Budget) -> Result<Option<Value>, OverBudget> {
    let shape = JsonShape::of(text);
    if shape.depth > MAX_JSON_DEPTH {
        return Err(OverBudget::Depth {
            limit: MAX_JSON_DEPTH,
        });
    }
    budget.charge(
        shape
            .nodes
            .saturating_mul(NODE_BYTES)
            .saturating_add(text.len()),
    )?;
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    // The depth was checked above; serde_json's own limit (128) is lower.
    deserializer.disable_recursion_limit();
    let parsed = Value::deserialize(&mut deserializer).and_then(|value| {
        deserializer.end()?;
        Ok(value)
    });
    Ok(parsed.ok())
}

/// An upper bound of the nodes of a JSON text and its depth, read in one pass
/// without recursion: every value begins the text, follows an opening bracket, a
/// comma or a colon.
#[derive(Debug, PartialEq, Eq)]
struct JsonShape {
    nodes: usize,
    depth: usize,
}

impl JsonShape {
    fn of(text: &[u8]) -> Self {
        let (mut nodes, mut depth, mut deepest) = (1usize, 0usize, 0usize);
        let (mut in_string, mut escaped) = (false, false);
        for &byte in text {
            if in_string {
                match byte {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                    nodes += 1;
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                b',' | b':' => nodes += 1,
                _ => {}
            }
        }
        Self {
            nodes,
            depth: deepest,
        }
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

    fn budget(row_bytes: usize) -> Budget {
        Budget::new(crate::db::budget::DecodeLimits {
            row_bytes,
            result_bytes: usize::MAX,
        })
    }

    #[test]
    fn json_shape_counts_nodes_and_depth_outside_strings_only() {
        assert_eq!(
            JsonShape::of(br#"{"a":[1,2,"[[,"],"b\"[":{}}"#),
            JsonShape { nodes: 9, depth: 2 }
        );
        assert_eq!(JsonShape::of(b"7"), JsonShape { nodes: 1, depth: 0 });
    }

    #[test]
    fn json_documents_are_charged_for_their_tree_before_it_is_built() {
        let text = format!("[{}[]]", "[],".repeat(10_000));
        assert_eq!(
            json_document(text.as_bytes(), &mut budget(100_000)),
            Err(OverBudget::Row { limit: 100_000 })
        );
        let parsed = json_document(text.as_bytes(), &mut budget(10_000_000));
        assert_eq!(
            parsed
                .ok()
                .flatten()
                .and_then(|v| v.as_array().map(Vec::len)),
            Some(10_001)
        );
    }

    #[test]
    fn json_deeper_than_serde_default_decodes_and_past_the_limit_is_refused() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let deep = nested(MAX_JSON_DEPTH);
        // Decoded, written and dropped on a thread with a task's stack size.
        let worker = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let value = json_document(deep.as_bytes(), &mut budget(usize::MAX));
                let value = value.ok().flatten().map(|v| v.to_string());
                value == Some(deep)
            });
        assert!(worker.is_ok_and(|w| w.join().unwrap_or(false)));
        assert_eq!(
            json_document(
                nested(MAX_JSON_DEPTH + 1).as_bytes(),
                &mut budget(usize::MAX)
            ),
            Err(OverBudget::Depth {
                limit: MAX_JSON_DEPTH
            })
        );
    }

    #[test]
    fn text_that_is_not_json_is_not_a_document() {
        assert_eq!(json_document(b"[1,", &mut budget(1_000)), Ok(None));
        assert_eq!(json_document(b"[1] x", &mut budget(1_000)), Ok(None));
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

#[cfg(test)]
mod properties {
    use super::*;
    use crate::db::budget::DecodeLimits;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Random text and JSON-like text: decoded within the budget, refused by
        /// it, or not JSON — never a panic.
        #[test]
        fn json_documents_never_panic(text in "[\\[\\]{}\":,0-9a-z\\\\ ]{0,300}") {
            let mut budget = Budget::new(DecodeLimits { row_bytes: 2_000, result_bytes: usize::MAX });
            let _ = json_document(text.as_bytes(), &mut budget);
            prop_assert!(budget.row_bytes() <= 2_000);
        }
    }
}
