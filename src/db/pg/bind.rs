//! A client's JSON parameters, bound in PostgreSQL's binary form.

use postgres_protocol::message::frontend;
use postgres_protocol::types as wire;
use serde_json::Value;

use crate::db::sql_error::SqlError;
use crate::error::ErrorCode;

/// Queues Bind of the unnamed statement to the unnamed portal: every parameter
/// (typed by [`param_type`] in Parse) and every result column in binary form.
pub(super) fn queue_bind(params: &[Value], out: &mut bytes::BytesMut) -> Result<(), SqlError> {
    frontend::bind(
        "",
        "",
        params.iter().map(|_| 1),
        params.iter(),
        |value, buf| {
            encode_param(value, buf);
            Ok(if value.is_null() {
                postgres_protocol::IsNull::Yes
            } else {
                postgres_protocol::IsNull::No
            })
        },
        [1],
        out,
    )
    .map_err(|_| SqlError::refused(ErrorCode::SqlError, "the parameters could not be encoded"))
}

/// The type each JSON parameter is bound as: boolean, bigint, double precision,
/// text (also for null and unsigned integers beyond bigint), jsonb for arrays and
/// objects.
pub(super) fn param_type(value: &Value) -> u32 {
    match value {
        Value::Bool(_) => 16,
        Value::Number(n) if n.as_i64().is_some() => 20,
        Value::Number(n) if n.is_f64() => 701,
        Value::Array(_) | Value::Object(_) => 3802,
        Value::Null | Value::Number(_) | Value::String(_) => 25,
    }
}

fn encode_param(value: &Value, buf: &mut bytes::BytesMut) {
    match value {
        Value::Null => {}
        Value::Bool(b) => wire::bool_to_sql(*b, buf),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => wire::int8_to_sql(i, buf),
            (None, Some(f)) if n.is_f64() => wire::float8_to_sql(f, buf),
            _ => wire::text_to_sql(&n.to_string(), buf),
        },
        Value::String(s) => wire::text_to_sql(s, buf),
        Value::Array(_) | Value::Object(_) => {
            buf.extend_from_slice(&[1]);
            buf.extend_from_slice(value.to_string().as_bytes());
        }
    }
}
