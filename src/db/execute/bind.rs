//! Binding the client's JSON parameters.

use serde_json::Value;
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{Database, Encode, Type};

/// Binds each parameter by its JSON type: null, boolean, 64-bit integer (unsigned
/// beyond `i64` as text), float, text; arrays and objects as JSON.
pub fn all<'q, DB>(
    mut query: Query<'q, DB, <DB as Database>::Arguments>,
    params: &[Value],
) -> Query<'q, DB, <DB as Database>::Arguments>
where
    DB: Database,
    bool: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    f64: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    Json<Value>: Encode<'q, DB> + Type<DB>,
{
    for param in params {
        query = match param {
            Value::Null => query.bind(None::<String>),
            Value::Bool(b) => query.bind(*b),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => query.bind(i),
                (None, _) if n.is_u64() => query.bind(n.to_string()),
                (None, Some(f)) => query.bind(f),
                (None, None) => query.bind(n.to_string()),
            },
            Value::String(s) => query.bind(s.clone()),
            Value::Array(_) | Value::Object(_) => query.bind(Json(param.clone())),
        };
    }
    query
}
