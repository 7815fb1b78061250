//! Dates, times, timestamps and intervals in PostgreSQL's binary form.

use chrono::{NaiveDate, NaiveTime, TimeDelta};
use postgres_protocol::types as wire;
use serde_json::{Value, json};

use crate::db::values::{date, local_timestamp, utc_timestamp};

/// A date (days) or timestamp (microseconds) since 2000-01-01; the extreme
/// integers are `infinity` and `-infinity`, values beyond chrono's range come back
/// as their offset.
pub(super) fn temporal(oid: u32, data: &[u8]) -> Option<Value> {
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)?;
    if oid == 1082 {
        let days = wire::date_from_sql(data).ok()?;
        return Some(match days {
            i32::MAX => json!("infinity"),
            i32::MIN => json!("-infinity"),
            _ => epoch
                .checked_add_signed(TimeDelta::days(i64::from(days)))
                .map_or_else(|| json!(format!("{days} days from 2000-01-01")), date),
        });
    }
    let micros = wire::timestamp_from_sql(data).ok()?;
    let start = epoch.and_hms_opt(0, 0, 0)?;
    Some(match micros {
        i64::MAX => json!("infinity"),
        i64::MIN => json!("-infinity"),
        _ => match start.checked_add_signed(TimeDelta::microseconds(micros)) {
            Some(at) if oid == 1184 => utc_timestamp(at.and_utc()),
            Some(at) => local_timestamp(at),
            None => json!(format!("{micros} microseconds from 2000-01-01")),
        },
    })
}

pub(super) fn time_of_day(micros: i64) -> Option<NaiveTime> {
    NaiveTime::MIN
        .overflowing_add_signed(TimeDelta::microseconds(micros))
        .0
        .into()
}

/// TIMETZ: microseconds of the day and the zone's offset in seconds *west* of UTC.
pub(super) fn time_with_zone(data: &[u8]) -> Option<String> {
    let micros = i64::from_be_bytes(data.get(..8)?.try_into().ok()?);
    let west = i32::from_be_bytes(data.get(8..12)?.try_into().ok()?);
    let east = -west;
    let sign = if east < 0 { '-' } else { '+' };
    let (hours, minutes) = (east.abs() / 3600, (east.abs() % 3600) / 60);
    let clock = time_of_day(micros)?.format("%H:%M:%S%.f");
    Some(format!("{clock}{sign}{hours:02}:{minutes:02}"))
}

/// ISO 8601 duration, e.g. `P1Y2M3DT4H5M6.5S`, from INTERVAL's binary form
/// (microseconds, days, months).
pub(super) fn interval(data: &[u8]) -> Option<String> {
    let micros = i64::from_be_bytes(data.get(..8)?.try_into().ok()?);
    let days = i32::from_be_bytes(data.get(8..12)?.try_into().ok()?);
    let months = i32::from_be_bytes(data.get(12..16)?.try_into().ok()?);
    Some(iso_interval(months, days, micros))
}

fn iso_interval(months: i32, days: i32, micros: i64) -> String {
    let (years, months) = (months / 12, months % 12);
    let (hours, rest) = (micros / 3_600_000_000, micros % 3_600_000_000);
    let (minutes, rest) = (rest / 60_000_000, rest % 60_000_000);
    let seconds = rest as f64 / 1_000_000.0;
    let mut out = String::from("P");
    for (amount, unit) in [
        (i64::from(years), 'Y'),
        (i64::from(months), 'M'),
        (i64::from(days), 'D'),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_iso_8601_durations() {
        let micros = 4 * 3_600_000_000 + 5 * 60_000_000 + 6_500_000;
        assert_eq!(iso_interval(14, 3, micros), "P1Y2M3DT4H5M6.5S");
        assert_eq!(iso_interval(0, 0, 0), "PT0S");
    }
}
