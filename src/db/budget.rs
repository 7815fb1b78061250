//! What decoding a result may allocate.
//!
//! A database decides what it sends, and a few bytes on the wire can stand for a
//! great deal of memory: a 14-byte `numeric` for 131,072 digits, an array header
//! for millions of nulls, a JSON document of nested empty arrays for a tree of
//! nodes. So every engine's decoders charge each value for what it *becomes* —
//! the memory of its JSON node plus the text it holds — to a [`Budget`] before
//! they build it. A row that would cost more than `MAX_ROW_BYTES` ends the result
//! with the row-size error; one that would cost more than `MAX_RESULT_BYTES` can
//! never be written, so the result ends `truncated` before it. Either way no
//! allocation is larger than the budget, whatever the server sends.

use serde_json::Value;

use crate::db::sql_error::SqlError;
use crate::error::ErrorCode;

/// The memory of one JSON node, charged for every value besides its text.
pub(crate) const NODE_BYTES: usize = std::mem::size_of::<Value>();

/// The deepest JSON document decoded into a value. Deeper documents are refused
/// with a clear error (select them `::text` to receive their text): building,
/// writing and dropping a value recurse once per level, on a task's stack.
pub(crate) const MAX_JSON_DEPTH: usize = 512;

/// The server's limits on a decoded result (settings, fixed at start).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecodeLimits {
    /// `MAX_ROW_BYTES`: one row, decoded.
    pub row_bytes: usize,
    /// `MAX_RESULT_BYTES`: a whole answer.
    pub result_bytes: usize,
}

/// Which limit a value would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverBudget {
    /// The row would be larger than `MAX_ROW_BYTES` once decoded.
    Row {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The row alone would be larger than `MAX_RESULT_BYTES`: the result ends
    /// before it, truncated.
    Result {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A JSON document nests deeper than [`MAX_JSON_DEPTH`].
    Depth {
        /// The limit, in levels.
        limit: usize,
    },
}

impl OverBudget {
    /// How a result ends when a value would break a limit: `Ok(true)`
    /// (truncated) before a row that no answer could hold, else the limit's
    /// error.
    pub(crate) fn outcome(self) -> Result<bool, SqlError> {
        match self {
            Self::Result { .. } => Ok(true),
            Self::Row { limit } => Err(SqlError::row_too_large(limit)),
            Self::Depth { limit } => Err(SqlError::refused(
                ErrorCode::SqlError,
                format!(
                    "a JSON value of the result nests deeper than {limit} levels, the deepest \
                     querygate returns as JSON; select it as text (`::text`) instead"
                ),
            )),
        }
    }
}

/// The budget of the row being decoded.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    limits: DecodeLimits,
    row: usize,
}

impl Budget {
    /// A budget under `limits`, at the start of a row.
    pub(crate) fn new(limits: DecodeLimits) -> Self {
        Self { limits, row: 0 }
    }

    /// Starts the next row.
    pub(crate) fn start_row(&mut self) {
        self.row = 0;
    }

    /// What the row decoded so far costs.
    pub(crate) fn row_bytes(&self) -> usize {
        self.row
    }

    /// Charges `bytes` to the row before they are allocated.
    pub(crate) fn charge(&mut self, bytes: usize) -> Result<(), OverBudget> {
        let row = self.row.saturating_add(bytes);
        if row > self.limits.row_bytes {
            return Err(OverBudget::Row {
                limit: self.limits.row_bytes,
            });
        }
        if row > self.limits.result_bytes {
            return Err(OverBudget::Result {
                limit: self.limits.result_bytes,
            });
        }
        self.row = row;
        Ok(())
    }

    /// Charges one JSON node holding `text` bytes of its own.
    pub(crate) fn node(&mut self, text: usize) -> Result<(), OverBudget> {
        self.charge(NODE_BYTES.saturating_add(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(row_bytes: usize, result_bytes: usize) -> Budget {
        Budget::new(DecodeLimits {
            row_bytes,
            result_bytes,
        })
    }

    #[test]
    fn a_row_is_refused_at_its_limit_and_the_next_row_starts_afresh() {
        let mut budget = budget(100, 1_000);
        assert_eq!(budget.charge(60), Ok(()));
        assert_eq!(budget.charge(41), Err(OverBudget::Row { limit: 100 }));
        assert_eq!(budget.row_bytes(), 60, "a refused charge is not spent");
        budget.start_row();
        assert_eq!(budget.charge(100), Ok(()));
    }

    #[test]
    fn a_row_larger_than_the_result_limit_truncates_instead_of_failing() {
        let mut budget = budget(1_000, 100);
        assert_eq!(budget.charge(101), Err(OverBudget::Result { limit: 100 }));
    }

    #[test]
    fn a_charge_near_usize_max_saturates_instead_of_wrapping() {
        let mut budget = budget(100, 100);
        assert_eq!(budget.charge(50), Ok(()));
        assert_eq!(
            budget.charge(usize::MAX),
            Err(OverBudget::Row { limit: 100 })
        );
    }
}
