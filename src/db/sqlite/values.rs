//! SQLite values, by each value's storage class, to JSON (rules in
//! [`crate::db::values`]).

use rusqlite::types::{Value as Lite, ValueRef};
use serde_json::Value;

use crate::db::budget::{Budget, OverBudget};
use crate::db::values::{Render, charged_bytes, charged_text, float, int64};

/// One value, charged to `budget` for what it becomes before it is built.
pub(crate) fn value(
    raw: ValueRef<'_>,
    render: Render,
    budget: &mut Budget,
) -> Result<Value, OverBudget> {
    match raw {
        ValueRef::Null => budget.node(0).map(|()| Value::Null),
        ValueRef::Integer(i) => budget.node(24).map(|()| int64(i, render)),
        ValueRef::Real(f) => budget.node(24).map(|()| float(f)),
        ValueRef::Text(text) => charged_text(text, budget),
        ValueRef::Blob(blob) => charged_bytes(blob, budget),
    }
}

/// The storage class of a non-null value, naming a column that has no declared
/// type (an expression).
pub(crate) fn storage_class(raw: ValueRef<'_>) -> Option<&'static str> {
    match raw {
        ValueRef::Null => None,
        ValueRef::Integer(_) => Some("INTEGER"),
        ValueRef::Real(_) => Some("REAL"),
        ValueRef::Text(_) => Some("TEXT"),
        ValueRef::Blob(_) => Some("BLOB"),
    }
}

/// A client's JSON parameter: booleans as 0/1, numbers as integers or reals,
/// arrays and objects as their JSON text.
pub(crate) fn param(value: &Value) -> Lite {
    match value {
        Value::Null => Lite::Null,
        Value::Bool(b) => Lite::Integer(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Lite::Integer(i),
            (None, Some(f)) if n.is_f64() => Lite::Real(f),
            _ => Lite::Text(n.to_string()),
        },
        Value::String(s) => Lite::Text(s.clone()),
        Value::Array(_) | Value::Object(_) => Lite::Text(value.to_string()),
    }
}
