//! MySQL / MariaDB result columns and values (binary protocol) to JSON (rules in
//! [`crate::db::values`]).

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::{Column as MyColumn, Value as MyValue};
use serde_json::{Value, json};

use crate::db::budget::{Budget, OverBudget};
use crate::db::rows::Column;
use crate::db::values::{
    Render, charged_bytes, charged_text, display_type, float, int64, json_document,
    local_timestamp, uint64, utc_timestamp,
};

/// What a fixed-size value (a number, a date, a time) becomes at most.
const SMALL_VALUE: usize = 64;

/// The collation that means "bytes, not text".
const BINARY_COLLATION: u16 = 63;

/// How one column's values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Boolean,
    Signed,
    BigSigned,
    Unsigned,
    BigUnsigned,
    Float,
    Decimal,
    Date,
    Time,
    DateTime,
    Timestamp,
    Bits,
    Json,
    Binary,
    Text,
}

/// A result column: its name, the type name clients see, and its kind.
pub(crate) fn column(column: &MyColumn) -> (Column, Kind) {
    let (name, kind) = type_of(column);
    (
        Column {
            name: column.name_str().into_owned(),
            type_name: display_type(&name),
        },
        kind,
    )
}

fn type_of(column: &MyColumn) -> (String, Kind) {
    let flags = column.flags();
    let unsigned = flags.contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = column.character_set() == BINARY_COLLATION;
    let suffix = if unsigned { " UNSIGNED" } else { "" };
    let integer = |name: &str, big: bool| {
        let kind = match (unsigned, big) {
            (false, false) => Kind::Signed,
            (false, true) => Kind::BigSigned,
            (true, false) => Kind::Unsigned,
            (true, true) => Kind::BigUnsigned,
        };
        (format!("{name}{suffix}"), kind)
    };
    use ColumnType as T;
    match column.column_type() {
        T::MYSQL_TYPE_TINY if column.column_length() == 1 && !unsigned => {
            ("BOOLEAN".into(), Kind::Boolean)
        }
        T::MYSQL_TYPE_TINY => integer("TINYINT", false),
        T::MYSQL_TYPE_SHORT => integer("SMALLINT", false),
        T::MYSQL_TYPE_INT24 => integer("MEDIUMINT", false),
        T::MYSQL_TYPE_LONG => integer("INT", false),
        T::MYSQL_TYPE_LONGLONG => integer("BIGINT", true),
        T::MYSQL_TYPE_YEAR => ("YEAR".into(), Kind::Unsigned),
        T::MYSQL_TYPE_FLOAT => ("FLOAT".into(), Kind::Float),
        T::MYSQL_TYPE_DOUBLE => ("DOUBLE".into(), Kind::Float),
        T::MYSQL_TYPE_DECIMAL | T::MYSQL_TYPE_NEWDECIMAL => ("DECIMAL".into(), Kind::Decimal),
        T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE => ("DATE".into(), Kind::Date),
        T::MYSQL_TYPE_TIME | T::MYSQL_TYPE_TIME2 => ("TIME".into(), Kind::Time),
        T::MYSQL_TYPE_DATETIME | T::MYSQL_TYPE_DATETIME2 => ("DATETIME".into(), Kind::DateTime),
        T::MYSQL_TYPE_TIMESTAMP | T::MYSQL_TYPE_TIMESTAMP2 => ("TIMESTAMP".into(), Kind::Timestamp),
        T::MYSQL_TYPE_BIT => ("BIT".into(), Kind::Bits),
        T::MYSQL_TYPE_JSON => ("JSON".into(), Kind::Json),
        T::MYSQL_TYPE_GEOMETRY => ("GEOMETRY".into(), Kind::Binary),
        T::MYSQL_TYPE_NULL => ("NULL".into(), Kind::Text),
        T::MYSQL_TYPE_STRING if flags.contains(ColumnFlags::ENUM_FLAG) => {
            ("ENUM".into(), Kind::Text)
        }
        T::MYSQL_TYPE_STRING if flags.contains(ColumnFlags::SET_FLAG) => ("SET".into(), Kind::Text),
        T::MYSQL_TYPE_STRING | T::MYSQL_TYPE_VAR_STRING | T::MYSQL_TYPE_VARCHAR => {
            let fixed = column.column_type() == T::MYSQL_TYPE_STRING;
            match (binary, fixed) {
                (true, true) => ("BINARY".into(), Kind::Binary),
                (true, false) => ("VARBINARY".into(), Kind::Binary),
                (false, true) => ("CHAR".into(), Kind::Text),
                (false, false) => ("VARCHAR".into(), Kind::Text),
            }
        }
        T::MYSQL_TYPE_TINY_BLOB
        | T::MYSQL_TYPE_BLOB
        | T::MYSQL_TYPE_MEDIUM_BLOB
        | T::MYSQL_TYPE_LONG_BLOB => blob_type(column.column_length(), binary),
        _ => ("TEXT".into(), Kind::Text),
    }
}

/// The BLOB/TEXT family by length (MariaDB's JSON is a LONGTEXT).
fn blob_type(length: u32, binary: bool) -> (String, Kind) {
    let size = match length {
        0..=255 => "TINY",
        256..=65_535 => "",
        65_536..=16_777_215 => "MEDIUM",
        _ => "LONG",
    };
    if binary {
        (format!("{size}BLOB"), Kind::Binary)
    } else {
        (format!("{size}TEXT"), Kind::Text)
    }
}

/// One value of a column of `kind`, charged to `budget` for what it becomes
/// before it is built.
pub(crate) fn value(
    value: MyValue,
    kind: Kind,
    render: Render,
    budget: &mut Budget,
) -> Result<Value, OverBudget> {
    let raw = match value {
        MyValue::Bytes(raw) => raw,
        fixed => {
            budget.node(SMALL_VALUE)?;
            return Ok(fixed_size(fixed, kind, render));
        }
    };
    match kind {
        Kind::Bits => {
            budget.node(SMALL_VALUE)?;
            Ok(json!(
                raw.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
            ))
        }
        Kind::Json => match json_document(&raw, budget)? {
            Some(document) => Ok(document),
            None => charged_text(&raw, budget),
        },
        Kind::Binary => charged_bytes(&raw, budget),
        _ => charged_text(&raw, budget),
    }
}

/// A value the protocol sends in a fixed-size binary form.
fn fixed_size(value: MyValue, kind: Kind, render: Render) -> Value {
    match (kind, value) {
        (_, MyValue::NULL | MyValue::Bytes(_)) => Value::Null,
        (Kind::Boolean, MyValue::Int(i)) => json!(i != 0),
        (Kind::BigSigned, MyValue::Int(i)) => int64(i, render),
        (Kind::BigUnsigned, MyValue::UInt(u)) => uint64(u, render),
        (_, MyValue::Int(i)) => json!(i),
        (_, MyValue::UInt(u)) => json!(u),
        (_, MyValue::Float(f)) => float(f64::from(f)),
        (_, MyValue::Double(f)) => float(f),
        (_, MyValue::Date(year, month, day, hour, minute, second, micros)) => date_time(
            kind,
            [
                year,
                month.into(),
                day.into(),
                hour.into(),
                minute.into(),
                second.into(),
            ],
            micros,
        ),
        (_, MyValue::Time(negative, days, hours, minutes, seconds, micros)) => {
            json!(time(negative, days, hours, minutes, seconds, micros))
        }
    }
}

/// DATE, DATETIME and TIMESTAMP. The zero date is no date (null); a partial one
/// (`2024-00-00`, as `ALLOW_INVALID_DATES` keeps) is written out as it is.
/// TIMESTAMP is in UTC: every session runs with `time_zone = '+00:00'`.
fn date_time(kind: Kind, parts: [u16; 6], micros: u32) -> Value {
    let [year, month, day, hour, minute, second] = parts;
    if parts[..3] == [0, 0, 0] {
        return Value::Null;
    }
    let at = NaiveDate::from_ymd_opt(year.into(), month.into(), day.into()).and_then(|date| {
        NaiveTime::from_hms_micro_opt(hour.into(), minute.into(), second.into(), micros)
            .map(|time| NaiveDateTime::new(date, time))
    });
    match (kind, at) {
        (Kind::Date, Some(at)) => json!(at.date().format("%Y-%m-%d").to_string()),
        (Kind::Timestamp, Some(at)) => utc_timestamp(at.and_utc()),
        (_, Some(at)) => local_timestamp(at),
        (Kind::Date, None) => json!(format!("{year:04}-{month:02}-{day:02}")),
        (_, None) => json!(format!(
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
        )),
    }
}

/// TIME: a signed duration up to 838 hours, e.g. `-838:59:59`, `12:00:00.5`.
fn time(negative: bool, days: u32, hours: u8, minutes: u8, seconds: u8, micros: u32) -> String {
    let sign = if negative { "-" } else { "" };
    let hours = days * 24 + u32::from(hours);
    let fraction = if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}").trim_end_matches('0').to_owned()
    };
    format!("{sign}{hours:02}:{minutes:02}:{seconds:02}{fraction}")
}

/// A client's JSON parameter as a MySQL value: booleans as 0/1, integers and
/// floats as numbers, arrays and objects as their JSON text.
pub(crate) fn param(value: &Value) -> MyValue {
    match value {
        Value::Null => MyValue::NULL,
        Value::Bool(b) => MyValue::Int(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => MyValue::Int(i),
            (None, Some(u), _) => MyValue::UInt(u),
            (None, None, Some(f)) => MyValue::Double(f),
            _ => MyValue::Bytes(n.to_string().into_bytes()),
        },
        Value::String(s) => MyValue::Bytes(s.clone().into_bytes()),
        Value::Array(_) | Value::Object(_) => MyValue::Bytes(value.to_string().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keeps_hours_beyond_a_day_and_the_sign() {
        assert_eq!(time(true, 34, 22, 59, 59, 0), "-838:59:59");
        assert_eq!(time(false, 0, 12, 0, 0, 500_000), "12:00:00.5");
    }

    #[test]
    fn zero_dates_are_null_and_partial_dates_are_kept() {
        assert_eq!(date_time(Kind::Date, [0, 0, 0, 0, 0, 0], 0), Value::Null);
        assert_eq!(
            date_time(Kind::Date, [2024, 0, 0, 0, 0, 0], 0),
            json!("2024-00-00")
        );
        assert_eq!(
            date_time(Kind::DateTime, [2024, 2, 29, 13, 45, 6], 123_000),
            json!("2024-02-29T13:45:06.123")
        );
        assert_eq!(
            date_time(Kind::Timestamp, [2024, 2, 29, 13, 45, 6], 0),
            json!("2024-02-29T13:45:06Z")
        );
    }
}
