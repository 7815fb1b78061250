//! Engine values to JSON, keeping their meaning.
//!
//! Integers up to 64 bits are exact JSON numbers (or strings when the client asks,
//! for JavaScript), exact decimals are strings with every digit, floats are numbers
//! with `NaN`/`Infinity` as strings, temporal values are ISO 8601 / RFC 3339, binary
//! is base64, JSON is JSON, NULL is null. A value of a type without a decoder comes
//! back as its text (or, when it is not text, base64), never as an error.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sqlx::{Decode, Row, Type, ValueRef};

/// How to render values.
#[derive(Debug, Clone, Copy)]
pub struct Render {
    /// 64-bit integers as strings.
    pub bigint_as_string: bool,
}

/// A float as JSON: numbers, and `"NaN"`, `"Infinity"`, `"-Infinity"` as strings.
pub fn float(value: f64) -> Value {
    if value.is_nan() {
        json!("NaN")
    } else if value.is_infinite() {
        json!(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(value)
    }
}

fn int64(value: i64, render: Render) -> Value {
    if render.bigint_as_string {
        json!(value.to_string())
    } else {
        json!(value)
    }
}

fn uint64(value: u64, render: Render) -> Value {
    if render.bigint_as_string {
        json!(value.to_string())
    } else {
        json!(value)
    }
}

fn date(value: NaiveDate) -> Value {
    json!(value.format("%Y-%m-%d").to_string())
}

fn time(value: NaiveTime) -> Value {
    json!(value.format("%H:%M:%S%.f").to_string())
}

/// A timestamp without time zone: ISO 8601 without an offset.
fn local_timestamp(value: NaiveDateTime) -> Value {
    json!(value.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
}

fn utc_timestamp(value: DateTime<Utc>) -> Value {
    json!(value.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn bytes(value: &[u8]) -> Value {
    json!(STANDARD.encode(value))
}

/// Text when the raw value is UTF-8, base64 otherwise.
fn text_or_base64(raw: &[u8]) -> Value {
    match std::str::from_utf8(raw) {
        Ok(text) => json!(text),
        Err(_) => bytes(raw),
    }
}

/// Decodes column `index` as `T`, mapped to JSON; `None` when `T` does not fit.
fn get<'r, R, T>(row: &'r R, index: usize, map: impl FnOnce(T) -> Value) -> Option<Value>
where
    R: Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    row.try_get_unchecked::<T, _>(index).ok().map(map)
}

pub mod postgres {
    //! PostgreSQL values (binary protocol).

    use sqlx::postgres::types::{PgInterval, PgMoney, PgTimeTz};
    use sqlx::postgres::{PgRow, PgValueRef};

    use super::*;

    /// Every column of `row`, by the column's type name.
    pub fn row(row: &PgRow, types: &[String], render: Render) -> Vec<Value> {
        types
            .iter()
            .enumerate()
            .map(|(i, t)| value(row, i, t, render))
            .collect()
    }

    fn value(row: &PgRow, i: usize, type_name: &str, render: Render) -> Value {
        let Ok(raw) = row.try_get_raw(i) else {
            return Value::Null;
        };
        if raw.is_null() {
            return Value::Null;
        }
        let decoded = match type_name {
            "BOOL" => get(row, i, |v: bool| json!(v)),
            "INT2" => get(row, i, |v: i16| json!(v)),
            "INT4" => get(row, i, |v: i32| json!(v)),
            "INT8" => get(row, i, |v: i64| int64(v, render)),
            "OID" => get(row, i, |v: sqlx::postgres::types::Oid| json!(v.0)),
            "FLOAT4" => get(row, i, |v: f32| float(f64::from(v))),
            "FLOAT8" => get(row, i, float),
            "NUMERIC" => raw.as_bytes().ok().and_then(numeric).map(Value::String),
            "MONEY" => get(row, i, |v: PgMoney| {
                json!(v.to_bigdecimal(2).to_plain_string())
            }),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" | "UNKNOWN" => {
                get(row, i, |v: String| json!(v))
            }
            "\"CHAR\"" | "CHAR" => get(row, i, |v: i8| json!(char::from(v as u8).to_string())),
            "UUID" => get(row, i, |v: sqlx::types::Uuid| json!(v.to_string())),
            "JSON" | "JSONB" => get(row, i, |v: Value| v),
            "BYTEA" => get(row, i, |v: Vec<u8>| bytes(&v)),
            // Decoded here, not by sqlx, whose chrono conversion panics on dates
            // beyond chrono's range (PostgreSQL reaches year 5874897).
            "DATE" | "TIMESTAMP" | "TIMESTAMPTZ" => raw
                .as_bytes()
                .ok()
                .and_then(|data| temporal(type_name, data)),
            "TIME" => get(row, i, time),
            "TIMETZ" => get(row, i, |v: PgTimeTz| {
                json!(format!("{}{}", v.time.format("%H:%M:%S%.f"), v.offset))
            }),
            "INTERVAL" => get(row, i, |v: PgInterval| json!(iso_interval(&v))),
            "INET" | "CIDR" => get(row, i, |v: sqlx::types::ipnet::IpNet| {
                let full = v.prefix_len() == v.max_prefix_len();
                json!(if full && type_name == "INET" {
                    v.addr().to_string()
                } else {
                    v.to_string()
                })
            }),
            "BIT" | "VARBIT" => get(row, i, |v: sqlx::types::BitVec| {
                json!(
                    v.iter()
                        .map(|b| if b { '1' } else { '0' })
                        .collect::<String>()
                )
            }),
            "UUID[]" => get(row, i, |v: Vec<Option<sqlx::types::Uuid>>| {
                json!(
                    v.iter()
                        .map(|u| u.map(|u| u.to_string()))
                        .collect::<Vec<_>>()
                )
            }),
            "VOID" => Some(Value::Null),
            _ => None,
        };
        decoded.unwrap_or_else(|| fallback(&raw, type_name))
    }

    /// Values without a decoder above: special numerics and dates, arrays of any
    /// dimension, enums and other text-like types.
    fn fallback(raw: &PgValueRef<'_>, type_name: &str) -> Value {
        let Ok(data) = raw.as_bytes() else {
            return Value::Null;
        };
        if raw.format() == sqlx::postgres::PgValueFormat::Text {
            return text_or_base64(data);
        }
        match type_name {
            name if name.ends_with("[]") || name.starts_with('_') => {
                array(data).unwrap_or_else(|| bytes(data))
            }
            _ => text_or_base64(data),
        }
    }

    /// NUMERIC's binary form as PostgreSQL prints it: every digit up to the value's
    /// display scale, and `NaN`, `Infinity`, `-Infinity`.
    pub fn numeric(data: &[u8]) -> Option<String> {
        let mut reader = Reader(data);
        let word = |r: &mut Reader<'_>| {
            r.take(2)
                .and_then(|b| b.try_into().ok())
                .map(u16::from_be_bytes)
        };
        let count = usize::from(word(&mut reader)?);
        let weight = i32::from(word(&mut reader)? as i16);
        let sign = word(&mut reader)?;
        let scale = usize::from(word(&mut reader)?);
        match sign {
            0xC000 => return Some("NaN".into()),
            0xD000 => return Some("Infinity".into()),
            0xF000 => return Some("-Infinity".into()),
            _ => {}
        }
        let digits: Vec<u16> = (0..count)
            .map(|_| word(&mut reader))
            .collect::<Option<_>>()?;
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
            for index in 1..=weight {
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

    /// A date (days) or timestamp (microseconds) since 2000-01-01 in binary form;
    /// the extreme integers are `infinity` and `-infinity`, values beyond chrono's
    /// range come back as their offset.
    fn temporal(type_name: &str, data: &[u8]) -> Option<Value> {
        let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)?;
        if type_name == "DATE" {
            let days = i32::from_be_bytes(data.try_into().ok()?);
            return Some(match days {
                i32::MAX => json!("infinity"),
                i32::MIN => json!("-infinity"),
                _ => epoch
                    .checked_add_signed(chrono::TimeDelta::days(i64::from(days)))
                    .map_or_else(|| json!(format!("{days} days from 2000-01-01")), date),
            });
        }
        let micros = i64::from_be_bytes(data.try_into().ok()?);
        let start = epoch.and_hms_opt(0, 0, 0)?;
        Some(match micros {
            i64::MAX => json!("infinity"),
            i64::MIN => json!("-infinity"),
            _ => match start.checked_add_signed(chrono::TimeDelta::microseconds(micros)) {
                Some(at) if type_name == "TIMESTAMPTZ" => utc_timestamp(at.and_utc()),
                Some(at) => local_timestamp(at),
                None => json!(format!("{micros} microseconds from 2000-01-01")),
            },
        })
    }

    /// ISO 8601 duration, e.g. `P1Y2M3DT4H5M6.5S`.
    pub fn iso_interval(v: &PgInterval) -> String {
        let (years, months) = (v.months / 12, v.months % 12);
        let micros = v.microseconds;
        let (hours, rest) = (micros / 3_600_000_000, micros % 3_600_000_000);
        let (minutes, rest) = (rest / 60_000_000, rest % 60_000_000);
        let seconds = rest as f64 / 1_000_000.0;
        let mut out = String::from("P");
        for (amount, unit) in [
            (i64::from(years), 'Y'),
            (i64::from(months), 'M'),
            (i64::from(v.days), 'D'),
        ] {
            if amount != 0 {
                out.push_str(&format!("{amount}{unit}"));
            }
        }
        if micros != 0 {
            out.push('T');
            for (amount, unit) in [(hours, 'H'), (minutes, 'M')] {
                if amount != 0 {
                    out.push_str(&format!("{amount}{unit}"));
                }
            }
            if rest != 0 {
                out.push_str(&format!("{seconds}S"));
            }
        }
        if out == "P" { "PT0S".to_owned() } else { out }
    }

    /// PostgreSQL's binary array format, any dimension; elements of the common
    /// scalar types are decoded, others shown as text.
    pub(super) fn array(data: &[u8]) -> Option<Value> {
        let mut reader = Reader(data);
        let dimensions = usize::try_from(reader.i32()?).ok()?;
        // PostgreSQL allows at most 6; anything else is not an array we understand,
        // and must not size an allocation or a recursion.
        if dimensions > 6 {
            return None;
        }
        let _has_nulls = reader.i32()?;
        let element = reader.u32()?;
        let mut lengths = Vec::with_capacity(dimensions);
        for _ in 0..dimensions {
            lengths.push(usize::try_from(reader.i32()?).ok()?);
            let _lower_bound = reader.i32()?;
        }
        if lengths.is_empty() {
            return Some(json!([]));
        }
        // PostgreSQL sends an empty array with no dimensions: a zero length is not
        // its format. Every element takes at least 4 bytes, so the element count is
        // bounded by the data before any loop runs.
        let count = lengths.iter().try_fold(1usize, |total, &length| {
            (length > 0).then(|| total.checked_mul(length)).flatten()
        })?;
        if count > reader.0.len() / 4 {
            return None;
        }
        nest(&mut reader, &lengths, element)
    }

    fn nest(reader: &mut Reader<'_>, lengths: &[usize], element: u32) -> Option<Value> {
        let (&length, inner) = lengths.split_first()?;
        // Every element takes at least its 4-byte length: never reserve more than
        // the data can hold.
        let mut items = Vec::with_capacity(length.min(reader.0.len() / 4));
        for _ in 0..length {
            items.push(if inner.is_empty() {
                scalar(reader, element)?
            } else {
                nest(reader, inner, element)?
            });
        }
        Some(Value::Array(items))
    }

    fn scalar(reader: &mut Reader<'_>, element: u32) -> Option<Value> {
        let length = reader.i32()?;
        if length < 0 {
            return Some(Value::Null);
        }
        let data = reader.take(usize::try_from(length).ok()?)?;
        let be = |n: usize| data.get(..n);
        Some(match element {
            16 => json!(data.first().is_some_and(|&b| b != 0)),
            21 => json!(i16::from_be_bytes(be(2)?.try_into().ok()?)),
            23 => json!(i32::from_be_bytes(be(4)?.try_into().ok()?)),
            20 => json!(i64::from_be_bytes(be(8)?.try_into().ok()?)),
            700 => float(f64::from(f32::from_be_bytes(be(4)?.try_into().ok()?))),
            701 => float(f64::from_be_bytes(be(8)?.try_into().ok()?)),
            1700 => json!(numeric(data)?),
            1082 => temporal("DATE", data)?,
            1114 => temporal("TIMESTAMP", data)?,
            1184 => temporal("TIMESTAMPTZ", data)?,
            _ => text_or_base64(data),
        })
    }

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
            self.0 = tail;
            Some(head)
        }
        fn i32(&mut self) -> Option<i32> {
            Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
        }
        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
        }
    }
}

pub mod mysql {
    //! MySQL / MariaDB values (binary protocol).

    use sqlx::mysql::MySqlRow;
    use sqlx::mysql::types::MySqlTime;

    use super::*;

    /// A date chrono cannot hold, from the binary protocol's bytes: the zero date
    /// (an empty payload) is null; a partial one (`2024-00-00`, as
    /// `ALLOW_INVALID_DATES` keeps) is written out as it is.
    fn invalid_date(raw: &[u8]) -> Value {
        match raw {
            [] => Value::Null,
            [y0, y1, month, day, rest @ ..] => {
                let year = u16::from_le_bytes([*y0, *y1]);
                let mut text = format!("{year:04}-{month:02}-{day:02}");
                if let [hour, minute, second, ..] = rest {
                    text.push_str(&format!("T{hour:02}:{minute:02}:{second:02}"));
                }
                json!(text)
            }
            _ => Value::Null,
        }
    }

    /// Every column of `row`, by the column's type name.
    pub fn row(row: &MySqlRow, types: &[String], render: Render) -> Vec<Value> {
        types
            .iter()
            .enumerate()
            .map(|(i, t)| value(row, i, t, render))
            .collect()
    }

    fn value(row: &MySqlRow, i: usize, type_name: &str, render: Render) -> Value {
        let Ok(raw) = row.try_get_raw(i) else {
            return Value::Null;
        };
        if raw.is_null() {
            return Value::Null;
        }
        let decoded = match type_name {
            "BOOLEAN" => get(row, i, |v: bool| json!(v)),
            "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" => get(row, i, |v: i64| json!(v)),
            "BIGINT" => get(row, i, |v: i64| int64(v, render)),
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" => {
                get(row, i, |v: u64| json!(v))
            }
            "BIGINT UNSIGNED" => get(row, i, |v: u64| uint64(v, render)),
            "YEAR" => get(row, i, |v: u16| json!(v)),
            "FLOAT" => get(row, i, |v: f32| float(f64::from(v))),
            "DOUBLE" => get(row, i, float),
            "DECIMAL" => get(row, i, |v: sqlx::types::BigDecimal| {
                json!(v.to_plain_string())
            }),
            "DATE" => get(row, i, date).or_else(|| get(row, i, |raw: Vec<u8>| invalid_date(&raw))),
            "TIME" => get(row, i, |v: MySqlTime| json!(v.to_string())),
            "DATETIME" => get(row, i, local_timestamp)
                .or_else(|| get(row, i, |raw: Vec<u8>| invalid_date(&raw))),
            "TIMESTAMP" => get(row, i, utc_timestamp)
                .or_else(|| get(row, i, |raw: Vec<u8>| invalid_date(&raw))),
            "JSON" => get(row, i, |v: Value| v),
            "BIT" => get(row, i, |v: Vec<u8>| {
                json!(v.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
            }),
            "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB"
            | "GEOMETRY" => get(row, i, |v: Vec<u8>| bytes(&v)),
            _ => None,
        };
        decoded
            .or_else(|| get(row, i, |v: String| json!(v)))
            .or_else(|| get(row, i, |v: Vec<u8>| bytes(&v)))
            .unwrap_or(Value::Null)
    }
}

pub mod sqlite {
    //! SQLite values, by each value's storage class.

    use sqlx::sqlite::SqliteRow;

    use super::*;

    /// Every column of `row`.
    pub fn row(row: &SqliteRow, count: usize, render: Render) -> Vec<Value> {
        (0..count).map(|i| value(row, i, render)).collect()
    }

    fn value(row: &SqliteRow, i: usize, render: Render) -> Value {
        let Ok(raw) = row.try_get_raw(i) else {
            return Value::Null;
        };
        if raw.is_null() {
            return Value::Null;
        }
        let storage = raw.type_info().to_string();
        let decoded = match storage.as_str() {
            "INTEGER" | "BOOLEAN" | "INT8" => get(row, i, |v: i64| int64(v, render)),
            "REAL" => get(row, i, float),
            "BLOB" => get(row, i, |v: Vec<u8>| bytes(&v)),
            _ => get(row, i, |v: String| json!(v)),
        };
        decoded.unwrap_or(Value::Null)
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
    fn numerics_keep_every_digit_of_their_scale() {
        // 12345678901234567890.123456789: weight 4, scale 9, groups of four digits.
        let words = |w: &[u16]| w.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
        let big = words(&[8, 4, 0, 9, 1234, 5678, 9012, 3456, 7890, 1234, 5678, 9000]);
        assert_eq!(
            postgres::numeric(&big).as_deref(),
            Some("12345678901234567890.123456789")
        );
        let negative = words(&[1, 0xFFFF, 0x4000, 4, 5]);
        assert_eq!(postgres::numeric(&negative).as_deref(), Some("-0.0005"));
        assert_eq!(
            postgres::numeric(&words(&[0, 0, 0xC000, 0])).as_deref(),
            Some("NaN")
        );
        assert_eq!(
            postgres::numeric(&words(&[0, 0, 0, 2])).as_deref(),
            Some("0.00")
        );
    }

    #[test]
    fn hostile_array_headers_neither_allocate_nor_recurse_beyond_the_data() {
        let words = |w: &[i32]| w.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
        // 2^31-1 dimensions.
        assert_eq!(postgres::array(&words(&[i32::MAX, 0, 25])), None);
        // One dimension claiming 2^31-1 elements with none present.
        assert_eq!(postgres::array(&words(&[1, 0, 23, i32::MAX, 1])), None);
        // An outer dimension of 2^31-1 around empty inner ones.
        assert_eq!(
            postgres::array(&words(&[2, 0, 23, i32::MAX, 1, 0, 1])),
            None
        );
        // A real one: {7}.
        assert_eq!(
            postgres::array(&words(&[1, 0, 23, 1, 1, 4, 7])),
            Some(json!([7]))
        );
    }

    #[test]
    fn intervals_are_iso_8601_durations() {
        use sqlx::postgres::types::PgInterval;
        let interval = PgInterval {
            months: 14,
            days: 3,
            microseconds: 4 * 3_600_000_000 + 5 * 60_000_000 + 6_500_000,
        };
        assert_eq!(postgres::iso_interval(&interval), "P1Y2M3DT4H5M6.5S");
        assert_eq!(
            postgres::iso_interval(&PgInterval {
                months: 0,
                days: 0,
                microseconds: 0
            }),
            "PT0S"
        );
    }
}
