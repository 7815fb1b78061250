//! PostgreSQL's binary array format.

use serde_json::{Value, json};

use super::{Reader, is_array, scalar};
use crate::db::pg::types::Types;
use crate::db::values::{Render, text_or_base64};

/// PostgreSQL's binary array format, any dimension, elements decoded by the
/// element type the array header names.
pub(super) fn array(data: &[u8], render: Render, types: &Types) -> Option<Value> {
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
    // Every element takes at least its 4-byte length, so the element count is
    // bounded by the data before any loop runs.
    let count = lengths.iter().try_fold(1usize, |total, &length| {
        (length > 0).then(|| total.checked_mul(length)).flatten()
    })?;
    if count > reader.0.len() / 4 {
        return None;
    }
    let element = Element {
        oid: types.wire_oid(element),
        render,
        types,
    };
    nest(&mut reader, &lengths, &element)
}

struct Element<'a> {
    oid: u32,
    render: Render,
    types: &'a Types,
}

fn nest(reader: &mut Reader<'_>, lengths: &[usize], element: &Element<'_>) -> Option<Value> {
    let (&length, inner) = lengths.split_first()?;
    let mut items = Vec::with_capacity(length.min(reader.0.len() / 4));
    for _ in 0..length {
        items.push(if inner.is_empty() {
            let size = reader.i32()?;
            match usize::try_from(size) {
                Err(_) => Value::Null,
                Ok(size) => {
                    let data = reader.take(size)?;
                    // Arrays do not nest inside arrays: an element of array type
                    // is shown as text rather than recursed into.
                    match element.oid {
                        oid if is_array(oid, element.types) => text_or_base64(data),
                        oid => scalar(oid, data, element.render, element.types)
                            .unwrap_or_else(|| text_or_base64(data)),
                    }
                }
            }
        } else {
            nest(reader, inner, element)?
        });
    }
    Some(Value::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words32(w: &[i32]) -> Vec<u8> {
        w.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn hostile_array_headers_neither_allocate_nor_recurse_beyond_the_data() {
        let types = Types::default();
        let render = Render::default();
        assert_eq!(array(&words32(&[i32::MAX, 0, 25]), render, &types), None);
        assert_eq!(
            array(&words32(&[1, 0, 23, i32::MAX, 1]), render, &types),
            None
        );
        assert_eq!(
            array(&words32(&[2, 0, 23, i32::MAX, 1, 0, 1]), render, &types),
            None
        );
        assert_eq!(
            array(&words32(&[1, 0, 23, 1, 1, 4, 7]), render, &types),
            Some(json!([7]))
        );
    }
}
