//! PostgreSQL's binary array format.

use serde_json::{Value, json};

use super::{Reader, is_array, scalar};
use crate::db::budget::{Budget, OverBudget};
use crate::db::pg::types::Types;
use crate::db::values::{Render, charged_text};

/// PostgreSQL's binary array format, any dimension, elements decoded by the
/// element type the array header names; `Ok(None)` when the bytes are not an
/// array. Every sub-array and element is charged to `budget` as it is built.
pub(super) fn array(
    data: &[u8],
    render: Render,
    types: &Types,
    budget: &mut Budget,
) -> Result<Option<Value>, OverBudget> {
    let Some((lengths, element, mut reader)) = header(data) else {
        return Ok(None);
    };
    budget.node(0)?;
    if lengths.is_empty() {
        return Ok(Some(json!([])));
    }
    let element = Element {
        oid: types.wire_oid(element),
        render,
        types,
    };
    nest(&mut reader, &lengths, &element, budget)
}

/// The dimensions' lengths and the element type, with the reader at the first
/// element.
fn header(data: &[u8]) -> Option<(Vec<usize>, u32, Reader<'_>)> {
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
    if !lengths.is_empty() {
        // Every element takes at least its 4-byte length, so the element count
        // is bounded by the data before any loop runs.
        let count = lengths.iter().try_fold(1usize, |total, &length| {
            (length > 0).then(|| total.checked_mul(length)).flatten()
        })?;
        if count > reader.0.len() / 4 {
            return None;
        }
    }
    Some((lengths, element, reader))
}

struct Element<'a> {
    oid: u32,
    render: Render,
    types: &'a Types,
}

fn nest(
    reader: &mut Reader<'_>,
    lengths: &[usize],
    element: &Element<'_>,
    budget: &mut Budget,
) -> Result<Option<Value>, OverBudget> {
    let Some((&length, inner)) = lengths.split_first() else {
        return Ok(None);
    };
    let mut items = Vec::with_capacity(length.min(reader.0.len() / 4));
    for _ in 0..length {
        let item = if inner.is_empty() {
            let Some(size) = reader.i32() else {
                return Ok(None);
            };
            match usize::try_from(size) {
                Err(_) => {
                    budget.node(0)?;
                    Value::Null
                }
                Ok(size) => {
                    let Some(data) = reader.take(size) else {
                        return Ok(None);
                    };
                    decode_element(data, element, budget)?
                }
            }
        } else {
            budget.node(0)?;
            match nest(reader, inner, element, budget)? {
                Some(value) => value,
                None => return Ok(None),
            }
        };
        items.push(item);
    }
    Ok(Some(Value::Array(items)))
}

/// One element. Arrays do not nest inside arrays: an element of array type is
/// shown as text rather than recursed into.
fn decode_element(
    data: &[u8],
    element: &Element<'_>,
    budget: &mut Budget,
) -> Result<Value, OverBudget> {
    if is_array(element.oid, element.types) {
        return charged_text(data, budget);
    }
    match scalar(element.oid, data, element.render, element.types, budget)? {
        Some(value) => Ok(value),
        None => charged_text(data, budget),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words32(w: &[i32]) -> Vec<u8> {
        w.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    fn decode(data: &[u8], row_bytes: usize) -> Result<Option<Value>, OverBudget> {
        let mut budget = Budget::new(crate::db::budget::DecodeLimits {
            row_bytes,
            result_bytes: usize::MAX,
        });
        array(data, Render::default(), &Types::default(), &mut budget)
    }

    #[test]
    fn hostile_array_headers_neither_allocate_nor_recurse_beyond_the_data() {
        assert_eq!(decode(&words32(&[i32::MAX, 0, 25]), usize::MAX), Ok(None));
        assert_eq!(
            decode(&words32(&[1, 0, 23, i32::MAX, 1]), usize::MAX),
            Ok(None)
        );
        assert_eq!(
            decode(&words32(&[2, 0, 23, i32::MAX, 1, 0, 1]), usize::MAX),
            Ok(None)
        );
        assert_eq!(
            decode(&words32(&[1, 0, 23, 1, 1, 4, 7]), usize::MAX),
            Ok(Some(json!([7])))
        );
    }

    #[test]
    fn every_element_is_charged_so_a_null_flood_stops_at_the_row_budget() {
        // 10,000 NULL int4 elements: 40 KB of lengths, 10,000 nodes decoded.
        let mut nulls = vec![1, 1, 23, 10_000, 1];
        nulls.extend(std::iter::repeat_n(-1, 10_000));
        let node = crate::db::budget::NODE_BYTES;
        assert_eq!(
            decode(&words32(&nulls), 1_000 * node),
            Err(OverBudget::Row {
                limit: 1_000 * node
            })
        );
        let whole = decode(&words32(&nulls), 10_001 * node);
        assert_eq!(
            whole
                .ok()
                .flatten()
                .and_then(|v| v.as_array().map(Vec::len)),
            Some(10_000)
        );
    }
}
