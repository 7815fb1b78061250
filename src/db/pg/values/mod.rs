//! PostgreSQL values in their binary form, to JSON (rules in [`crate::db::values`]).
//!
//! Every decoder reads raw bytes and never panics on hostile input: a value that
//! does not decode comes back as text or base64. Every value is charged to the
//! row's [`Budget`] for what it becomes before it is built (see
//! [`crate::db::budget`]): a 14-byte `numeric` may stand for 131,072 digits, an
//! array header for millions of elements.

mod array;
mod datetime;

use std::net::IpAddr;

use postgres_protocol::types as wire;
use serde_json::{Value, json};

use super::types::Types;
use crate::db::budget::{Budget, OverBudget};
use crate::db::values::{Render, charged_bytes, charged_text, float, int64, json_document, time};
use array::array;
use datetime::{interval, temporal, time_of_day, time_with_zone};

/// What a fixed-size value (a number, a date, a uuid) becomes at most.
const SMALL_VALUE: usize = 64;

/// One value of type `oid` (already mapped to its wire type), `None` being NULL.
pub(crate) fn value(
    oid: u32,
    raw: Option<&[u8]>,
    render: Render,
    types: &Types,
    budget: &mut Budget,
) -> Result<Value, OverBudget> {
    match raw {
        None => {
            budget.node(0)?;
            Ok(Value::Null)
        }
        Some(data) => match scalar(types.wire_oid(oid), data, render, types, budget)? {
            Some(value) => Ok(value),
            None => charged_text(data, budget),
        },
    }
}

/// Decodes by type; `Ok(None)` when the bytes are not that type's binary form.
fn scalar(
    oid: u32,
    data: &[u8],
    render: Render,
    types: &Types,
    budget: &mut Budget,
) -> Result<Option<Value>, OverBudget> {
    Ok(match oid {
        17 => Some(charged_bytes(data, budget)?),
        114 | 3802 => match json_text(oid, data) {
            Some(text) => json_document(text, budget)?,
            // A jsonb of a format version other than 1: its bytes, never as text.
            None => Some(charged_bytes(data, budget)?),
        },
        1560 | 1562 => {
            budget.node(data.len().saturating_mul(8))?;
            bit_string(data).map(Value::from)
        }
        1700 => numeric(data, budget)?.map(Value::from),
        // Text types first: they are common and need no lookup.
        25 | 1042 | 1043 | 19 => None,
        _ if fixed(oid) => {
            budget.node(SMALL_VALUE)?;
            fixed_size(oid, data, render)
        }
        _ if is_array(oid, types) => array(data, render, types, budget)?,
        _ => None,
    })
}

/// Types whose values have a small, bounded text whatever their bytes.
fn fixed(oid: u32) -> bool {
    matches!(
        oid,
        16 | 18
            | 20
            | 21
            | 23
            | 26
            | 700
            | 701
            | 790
            | 650
            | 869
            | 1082
            | 1114
            | 1184
            | 1083
            | 1266
            | 1186
            | 2278
            | 2950
    )
}

fn fixed_size(oid: u32, data: &[u8], render: Render) -> Option<Value> {
    Some(match oid {
        16 => json!(wire::bool_from_sql(data).ok()?),
        18 => json!(char::from(wire::char_from_sql(data).ok()? as u8).to_string()),
        20 => int64(wire::int8_from_sql(data).ok()?, render),
        21 => json!(wire::int2_from_sql(data).ok()?),
        23 => json!(wire::int4_from_sql(data).ok()?),
        26 => json!(wire::oid_from_sql(data).ok()?),
        700 => float(f64::from(wire::float4_from_sql(data).ok()?)),
        701 => float(wire::float8_from_sql(data).ok()?),
        790 => json!(money(wire::int8_from_sql(data).ok()?)),
        650 | 869 => json!(network(oid, data)?),
        1082 | 1114 | 1184 => temporal(oid, data)?,
        1083 => time(time_of_day(wire::time_from_sql(data).ok()?)?),
        1266 => json!(time_with_zone(data)?),
        1186 => json!(interval(data)?),
        2278 => Value::Null,
        2950 => json!(uuid(wire::uuid_from_sql(data).ok()?)),
        _ => return None,
    })
}

/// Arrays are recognised by their binary header, whose element type says how to
/// decode the elements; only types known to be arrays are tried.
fn is_array(oid: u32, types: &Types) -> bool {
    types.display(oid).ends_with("[]")
}

/// The text of a `json` value, or of a `jsonb` value after its format version
/// byte (1); `None` for a jsonb version this reader does not know.
fn json_text(oid: u32, data: &[u8]) -> Option<&[u8]> {
    if oid == 3802 {
        data.strip_prefix(&[1])
    } else {
        Some(data)
    }
}

/// MONEY is an integer count of cents (the usual two-decimal locales).
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let magnitude = cents.unsigned_abs();
    format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100)
}

/// INET shows a host address without its prefix; CIDR always with it.
fn network(oid: u32, data: &[u8]) -> Option<String> {
    let inet = wire::inet_from_sql(data).ok()?;
    let full = match inet.addr() {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    Some(if oid == 869 && inet.netmask() == full {
        inet.addr().to_string()
    } else {
        format!("{}/{}", inet.addr(), inet.netmask())
    })
}

fn bit_string(data: &[u8]) -> Option<String> {
    let bits = wire::varbit_from_sql(data).ok()?;
    Some(
        (0..bits.len())
            .map(|i| {
                let byte = bits.bytes().get(i / 8).copied().unwrap_or(0);
                if byte & (0x80 >> (i % 8)) == 0 {
                    '0'
                } else {
                    '1'
                }
            })
            .collect(),
    )
}

fn uuid(b: [u8; 16]) -> String {
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// NUMERIC's binary form exactly as PostgreSQL prints it (`numeric_out`): every
/// digit of the integer part, whatever the weight, and every digit up to the
/// value's display scale; `NaN`, `Infinity`, `-Infinity`. The text's length is
/// known from the header, so it is charged before a digit is written. `Ok(None)`
/// when the bytes are not a numeric (a digit group over 9999, a short body).
fn numeric(data: &[u8], budget: &mut Budget) -> Result<Option<String>, OverBudget> {
    let Some(header) = NumericHeader::read(data) else {
        return Ok(None);
    };
    match header.sign {
        0xC000 => return Ok(Some("NaN".into())),
        0xD000 => return Ok(Some("Infinity".into())),
        0xF000 => return Ok(Some("-Infinity".into())),
        0x0000 | 0x4000 => {}
        _ => return Ok(None),
    }
    if header.digits.iter().any(|&group| group > 9999) {
        return Ok(None);
    }
    let group = |index: i64| {
        usize::try_from(index)
            .ok()
            .and_then(|i| header.digits.get(i))
            .copied()
            .unwrap_or(0)
    };
    let weight = i64::from(header.weight);
    let integer_digits = if weight < 0 {
        1
    } else {
        decimal_digits(group(0)) + 4 * usize::try_from(weight).unwrap_or(0)
    };
    let scale = usize::from(header.scale);
    let length = 1 + integer_digits + if scale > 0 { 1 + scale } else { 0 };
    budget.node(length)?;
    let mut out = String::with_capacity(length);
    if weight < 0 {
        out.push('0');
    } else {
        push_group(&mut out, group(0), decimal_digits(group(0)));
        for index in 1..=weight {
            push_group(&mut out, group(index), 4);
        }
    }
    if scale > 0 {
        out.push('.');
        let mut index = weight + 1;
        let mut left = scale;
        while left > 0 {
            let take = left.min(4);
            let digits = group(index) / [1, 1000, 100, 10, 1][take];
            push_group(&mut out, digits, take);
            left -= take;
            index += 1;
        }
    }
    let is_zero = out.bytes().all(|b| b == b'0' || b == b'.');
    if header.sign == 0x4000 && !is_zero {
        out.insert(0, '-');
    }
    Ok(Some(out))
}

/// The fixed part of a NUMERIC and its base-10000 digit groups.
struct NumericHeader {
    weight: i16,
    sign: u16,
    scale: u16,
    digits: Vec<u16>,
}

impl NumericHeader {
    fn read(data: &[u8]) -> Option<Self> {
        let mut reader = Reader(data);
        let count = usize::from(reader.u16()?);
        let weight = reader.u16()? as i16;
        let sign = reader.u16()?;
        let scale = reader.u16()?;
        // Every group is two bytes of the body: the count cannot size a larger
        // allocation than the data.
        if reader.0.len() != count * 2 {
            return None;
        }
        let digits = (0..count).map(|_| reader.u16()).collect::<Option<_>>()?;
        Some(Self {
            weight,
            sign,
            scale,
            digits,
        })
    }
}

/// Decimal digits of a group without its leading zeros (at least one).
fn decimal_digits(group: u16) -> usize {
    match group {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        _ => 4,
    }
}

/// Writes the last `width` decimal digits of `value`, zero-padded.
fn push_group(out: &mut String, value: u16, width: usize) {
    let digits = [
        value / 1000 % 10,
        value / 100 % 10,
        value / 10 % 10,
        value % 10,
    ];
    for &digit in digits.iter().skip(4 - width) {
        out.push(char::from_digit(u32::from(digit), 10).unwrap_or('0'));
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words16(w: &[u16]) -> Vec<u8> {
        w.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    fn budget(row_bytes: usize) -> Budget {
        Budget::new(crate::db::budget::DecodeLimits {
            row_bytes,
            result_bytes: usize::MAX,
        })
    }

    fn text(data: &[u8]) -> Option<String> {
        numeric(data, &mut budget(usize::MAX)).ok().flatten()
    }

    #[test]
    fn numerics_keep_every_digit_of_their_scale() {
        let big = words16(&[8, 4, 0, 9, 1234, 5678, 9012, 3456, 7890, 1234, 5678, 9000]);
        assert_eq!(
            text(&big).as_deref(),
            Some("12345678901234567890.123456789")
        );
        assert_eq!(
            text(&words16(&[1, 0xFFFF, 0x4000, 4, 5])).as_deref(),
            Some("-0.0005")
        );
        assert_eq!(text(&words16(&[0, 0, 0xC000, 0])).as_deref(), Some("NaN"));
        assert_eq!(text(&words16(&[0, 0, 0, 2])).as_deref(), Some("0.00"));
        assert_eq!(text(&words16(&[1, 0, 0, 0, 7])).as_deref(), Some("7"));
    }

    #[test]
    fn a_numeric_of_any_weight_is_written_whole() {
        // 1e50000: one group of 1 at weight 12,500 — 50,001 characters.
        let value = text(&words16(&[1, 12_500, 0, 0, 1])).unwrap_or_default();
        assert_eq!(value.len(), 50_001);
        assert!(value.starts_with("10000") && value.bytes().skip(1).all(|b| b == b'0'));
        // The largest weight the header can carry.
        let value = text(&words16(&[1, 0x7FFF, 0, 0, 9999])).unwrap_or_default();
        assert_eq!(value.len(), 4 + 4 * 32_767);
    }

    #[test]
    fn a_numeric_is_charged_for_its_digits_before_they_are_written() {
        let huge = words16(&[1, 0x7FFF, 0, 0, 1]);
        assert_eq!(
            numeric(&huge, &mut budget(100_000)),
            Err(OverBudget::Row { limit: 100_000 })
        );
        let wide_scale = words16(&[0, 0, 0, 0xFFFF]);
        assert_eq!(
            numeric(&wide_scale, &mut budget(1_000)),
            Err(OverBudget::Row { limit: 1_000 })
        );
    }

    #[test]
    fn bytes_that_are_not_a_numeric_are_not_decoded_as_one() {
        // A digit group over 9999, a count that disagrees with the body, a
        // sign that is none of PostgreSQL's.
        assert_eq!(text(&words16(&[1, 0, 0, 0, 10_000])), None);
        assert_eq!(text(&words16(&[5, 0, 0, 0, 1])), None);
        assert_eq!(text(&words16(&[0, 0, 0x1234, 0])), None);
    }

    #[test]
    fn money_and_uuid_are_written_out() {
        assert_eq!(money(1234), "12.34");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(
            uuid([
                0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
                0x0a, 0x11
            ]),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::db::budget::{DecodeLimits, NODE_BYTES};
    use proptest::prelude::*;

    /// What a decoded value holds in memory: its nodes and its text.
    fn memory(value: &Value) -> usize {
        NODE_BYTES
            + match value {
                Value::String(text) => text.len(),
                Value::Array(items) => items.iter().map(memory).sum(),
                Value::Object(map) => map.iter().map(|(k, v)| k.len() + memory(v)).sum(),
                Value::Null | Value::Bool(_) | Value::Number(_) => 0,
            }
    }

    /// Every type with a decoder of its own, arrays of some of them, and one
    /// without.
    const OIDS: [u32; 30] = [
        16, 17, 18, 20, 21, 23, 26, 114, 3802, 700, 701, 790, 650, 869, 1082, 1114, 1184, 1083,
        1266, 1186, 1560, 1562, 1700, 2278, 2950, 1007, 1231, 199, 3807, 25,
    ];

    const LIMIT: usize = 4096;

    fn decode(oid: u32, bytes: &[u8]) -> Result<Value, OverBudget> {
        let mut budget = Budget::new(DecodeLimits {
            row_bytes: LIMIT,
            result_bytes: usize::MAX,
        });
        value(
            oid,
            Some(bytes),
            Render::default(),
            &Types::default(),
            &mut budget,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]

        /// Whatever the bytes, a value decodes within its budget or is refused
        /// by it — never a panic, never more memory than the budget allows.
        #[test]
        fn random_values_stay_within_the_budget(
            oid in proptest::sample::select(&OIDS[..]),
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            if let Ok(value) = decode(oid, &bytes) {
                prop_assert!(memory(&value) <= LIMIT, "{} bytes for oid {oid}", memory(&value));
            }
        }

        /// Array and numeric headers with hostile counts, weights and scales.
        #[test]
        fn hostile_headers_stay_within_the_budget(
            words in proptest::collection::vec(any::<i16>(), 0..24),
            oid in proptest::sample::select(&[1700_u32, 1007, 1231, 199, 3807][..]),
        ) {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            if let Ok(value) = decode(oid, &bytes) {
                prop_assert!(memory(&value) <= LIMIT, "{} bytes for oid {oid}", memory(&value));
            }
        }
    }
}
