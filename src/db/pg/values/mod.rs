//! PostgreSQL values in their binary form, to JSON (rules in [`crate::db::values`]).
//!
//! Every decoder reads raw bytes and never panics on hostile input: a value that
//! does not decode comes back as text or base64.

mod array;
mod datetime;

use std::net::IpAddr;

use postgres_protocol::types as wire;
use serde_json::{Value, json};

use super::types::Types;
use crate::db::values::{Render, bytes, float, int64, text_or_base64, time};
use array::array;
use datetime::{interval, temporal, time_of_day, time_with_zone};

/// One value of type `oid` (already mapped to its wire type), `None` being NULL.
pub(crate) fn value(oid: u32, raw: Option<&[u8]>, render: Render, types: &Types) -> Value {
    match raw {
        None => Value::Null,
        Some(data) => {
            scalar(types.wire_oid(oid), data, render, types).unwrap_or_else(|| text_or_base64(data))
        }
    }
}

/// Decodes by type; `None` when the bytes are not that type's binary form.
fn scalar(oid: u32, data: &[u8], render: Render, types: &Types) -> Option<Value> {
    Some(match oid {
        16 => json!(wire::bool_from_sql(data).ok()?),
        17 => bytes(data),
        18 => json!(char::from(wire::char_from_sql(data).ok()? as u8).to_string()),
        20 => int64(wire::int8_from_sql(data).ok()?, render),
        21 => json!(wire::int2_from_sql(data).ok()?),
        23 => json!(wire::int4_from_sql(data).ok()?),
        26 => json!(wire::oid_from_sql(data).ok()?),
        114 | 3802 => json_document(oid, data)?,
        700 => float(f64::from(wire::float4_from_sql(data).ok()?)),
        701 => float(wire::float8_from_sql(data).ok()?),
        790 => json!(money(wire::int8_from_sql(data).ok()?)),
        650 | 869 => json!(network(oid, data)?),
        1082 | 1114 | 1184 => temporal(oid, data)?,
        1083 => time(time_of_day(wire::time_from_sql(data).ok()?)?),
        1266 => json!(time_with_zone(data)?),
        1186 => json!(interval(data)?),
        1560 | 1562 => json!(bit_string(data)?),
        1700 => json!(numeric(data)?),
        2278 => Value::Null,
        2950 => json!(uuid(wire::uuid_from_sql(data).ok()?)),
        _ if is_array(oid, types) => array(data, render, types)?,
        _ => text_or_base64(data),
    })
}

/// Arrays are recognised by their binary header, whose element type says how to
/// decode the elements; only types known to be arrays are tried.
fn is_array(oid: u32, types: &Types) -> bool {
    types.display(oid).ends_with("[]")
}

/// `json` is text; `jsonb` is a version byte (1) and text.
fn json_document(oid: u32, data: &[u8]) -> Option<Value> {
    let text = if oid == 3802 {
        data.strip_prefix(&[1])?
    } else {
        data
    };
    serde_json::from_slice(text).ok()
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

/// NUMERIC's binary form as PostgreSQL prints it: every digit up to the value's
/// display scale, and `NaN`, `Infinity`, `-Infinity`.
fn numeric(data: &[u8]) -> Option<String> {
    let mut reader = Reader(data);
    let count = usize::from(reader.u16()?);
    let weight = i32::from(reader.u16()? as i16);
    let sign = reader.u16()?;
    let scale = usize::from(reader.u16()?);
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<u16> = (0..count).map(|_| reader.u16()).collect::<Option<_>>()?;
    let group = |index: i32| {
        usize::try_from(index)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0)
    };
    let mut out = String::new();
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&group(0).to_string());
        for index in 1..=weight.min(10_000) {
            out.push_str(&format!("{:04}", group(index)));
        }
    }
    if scale > 0 {
        let mut fraction = String::new();
        let mut index = weight + 1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", group(index)));
            index += 1;
        }
        fraction.truncate(scale);
        out.push('.');
        out.push_str(&fraction);
    }
    let is_zero = out.bytes().all(|b| b == b'0' || b == b'.');
    if sign == 0x4000 && !is_zero {
        out.insert(0, '-');
    }
    Some(out)
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

    #[test]
    fn numerics_keep_every_digit_of_their_scale() {
        let big = words16(&[8, 4, 0, 9, 1234, 5678, 9012, 3456, 7890, 1234, 5678, 9000]);
        assert_eq!(
            numeric(&big).as_deref(),
            Some("12345678901234567890.123456789")
        );
        assert_eq!(
            numeric(&words16(&[1, 0xFFFF, 0x4000, 4, 5])).as_deref(),
            Some("-0.0005")
        );
        assert_eq!(
            numeric(&words16(&[0, 0, 0xC000, 0])).as_deref(),
            Some("NaN")
        );
        assert_eq!(numeric(&words16(&[0, 0, 0, 2])).as_deref(), Some("0.00"));
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
