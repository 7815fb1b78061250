//! Type names and decoders for the OIDs a result describes.
//!
//! Built-in types come from `postgres-types`' catalogue. User-defined types
//! (enums, domains, ranges, extension types such as `citext`) are read once per
//! pool, in the same round trip as connect's check, with `format_type` so that a
//! name is schema-qualified exactly when it is not on the search path. A type
//! created after that is shown as `unknown` until the next connect, and its
//! values come back as text (or base64).

use std::collections::HashMap;
use std::sync::RwLock;

use postgres_types::{Kind, Type};

/// A user-defined type.
#[derive(Debug, Clone)]
struct UserType {
    name: String,
    /// For a domain: the type whose binary form its values have.
    base: Option<u32>,
}

/// The user-defined types of one database.
#[derive(Debug, Default)]
pub(crate) struct Types {
    known: RwLock<HashMap<u32, UserType>>,
}

/// The catalogue query whose rows [`Types::load`] takes: every user-defined type
/// that can be a column's value (never the row types of tables, which are many),
/// and arrays of them.
pub(crate) const USER_TYPES: &str = "SELECT t.oid::int8, format_type(t.oid, NULL), \
     CASE WHEN t.typtype = 'd' THEN t.typbasetype::int8 END \
     FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' \
     WHERE t.oid >= 16384 AND t.typtype IN ('b', 'e', 'd', 'r', 'm') \
     AND (e.oid IS NULL OR e.typtype <> 'c') ORDER BY 1 LIMIT 20000";

impl Types {
    /// Replaces the known user types with `rows` of [`USER_TYPES`].
    pub(crate) fn load(&self, rows: impl IntoIterator<Item = (u32, String, Option<u32>)>) {
        let known = rows
            .into_iter()
            .map(|(oid, name, base)| (oid, UserType { name, base }))
            .collect();
        if let Ok(mut guard) = self.known.write() {
            *guard = known;
        }
    }

    /// The name clients see: `int4`, `int4[]`, `timestamptz`, `qg.mood`.
    pub(crate) fn display(&self, oid: u32) -> String {
        if let Some(builtin) = Type::from_oid(oid) {
            return match builtin.kind() {
                Kind::Array(element) => format!("{}[]", element.name()),
                _ => builtin.name().to_owned(),
            };
        }
        self.known
            .read()
            .ok()
            .and_then(|known| known.get(&oid).map(|t| t.name.clone()))
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// The OID whose binary form a value of `oid` has: a domain's base type
    /// (through domains over domains), else the type itself.
    pub(crate) fn wire_oid(&self, oid: u32) -> u32 {
        let Ok(known) = self.known.read() else {
            return oid;
        };
        let mut current = oid;
        for _ in 0..8 {
            match known.get(&current).and_then(|t| t.base) {
                Some(base) => current = base,
                None => break,
            }
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_are_lower_case_with_array_brackets() {
        let types = Types::default();
        assert_eq!(types.display(23), "int4");
        assert_eq!(types.display(1007), "int4[]");
        assert_eq!(types.display(1184), "timestamptz");
        assert_eq!(types.display(99_999), "unknown");
    }

    #[test]
    fn domains_decode_as_their_base_type() {
        let types = Types::default();
        types.load([
            (20_000, "positive".to_owned(), Some(20_001)),
            (20_001, "small".to_owned(), Some(23)),
        ]);
        assert_eq!(types.wire_oid(20_000), 23);
        assert_eq!(types.display(20_000), "positive");
    }
}
