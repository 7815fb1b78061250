//! The bytes of a result in each format: JSON (objects or arrays), CSV and
//! NDJSON, written a row at a time.
//!
//! The JSON writer produces exactly the bytes of serializing [`super::ExecuteAnswer`]
//! with `serde_json`, so a result is the same whether it was streamed or not.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::db::execute::Delivery;
use crate::db::rows::Column;
use crate::error::AppError;

/// How rows are laid out in a JSON answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `data`: one object per row, keyed by column name.
    Objects,
    /// `rows`: one array per row (duplicate column names survive).
    Arrays,
}

/// What a CSV cell that a spreadsheet would read as a formula becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cells {
    /// Neutralised (the default, OWASP's rule for CSV injection): a text value or
    /// column name that starts with `=`, `+`, `-`, `@`, a tab or a carriage
    /// return gets a leading `'`, so that a value one user stored in a shared
    /// database cannot run as a formula in another's spreadsheet. Numbers are
    /// numbers and are left alone, and so is text that is a plain number (`-2`,
    /// `+1.5`, a 64-bit integer sent as a string): a spreadsheet reads it as
    /// that number.
    Safe,
    /// As the database has it (`?csv=raw`), for programs rather than spreadsheets.
    Raw,
}

/// The media type of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `application/json`.
    Json(Layout),
    /// `text/csv`: a header line, then one line per row.
    Csv(Cells),
    /// `application/x-ndjson`: the columns, one array per row, then the end.
    Ndjson,
}

impl Format {
    /// The format an `Accept` header asks for (CSV and NDJSON by name; anything
    /// else is JSON).
    pub(crate) fn from_accept(accept: Option<&str>, layout: Layout, cells: Cells) -> Self {
        let accept = accept.unwrap_or_default().to_ascii_lowercase();
        if accept.contains("application/x-ndjson") || accept.contains("application/ndjson") {
            Self::Ndjson
        } else if accept.contains("text/csv") {
            Self::Csv(cells)
        } else {
            Self::Json(layout)
        }
    }

    /// How an answer in this format leaves: JSON whole, CSV and NDJSON as exports.
    pub(crate) fn delivery(self) -> Delivery {
        match self {
            Self::Json(_) => Delivery::Answer,
            Self::Csv(_) | Self::Ndjson => Delivery::Export,
        }
    }

    /// The `Content-Type` of the answer.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Json(_) => "application/json",
            Self::Csv(_) => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
        }
    }
}

/// The message of CSV's `#querygate-truncated` record.
const TRUNCATED: &str = "more rows exist than this result returns: it stopped at its row limit \
     (the x-row-limit header) or at the server's size limit for one result";

/// How a result ended, written in its closing part.
pub(super) struct Ending<'a> {
    pub row_count: usize,
    pub truncated: bool,
    pub executed_at: &'a str,
    pub elapsed_ms: f64,
    /// The failure that cut the result short after rows had been sent.
    pub error: Option<&'a AppError>,
}

/// The columns, with each distinct name's last position for object rows (a
/// repeated name keeps its first place and its last value, as a JSON object
/// built column by column would).
pub(super) struct Columns {
    pub columns: Vec<Column>,
    object_keys: Vec<(String, usize)>,
}

impl Columns {
    /// Each distinct name and the position of its last column.
    pub(super) fn object_keys(&self) -> &[(String, usize)] {
        &self.object_keys
    }

    pub(super) fn new(columns: Vec<Column>) -> Self {
        let mut object_keys: Vec<(String, usize)> = Vec::new();
        for (index, column) in columns.iter().enumerate() {
            match object_keys
                .iter_mut()
                .find(|(name, _)| *name == column.name)
            {
                Some(entry) => entry.1 = index,
                None => object_keys.push((column.name.clone(), index)),
            }
        }
        Self {
            columns,
            object_keys,
        }
    }
}

/// One row as a JSON object.
pub(super) struct RowObject<'a> {
    pub keys: &'a [(String, usize)],
    pub values: &'a [Value],
}

impl Serialize for RowObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.keys.len()))?;
        for (name, index) in self.keys {
            map.serialize_entry(name, self.values.get(*index).unwrap_or(&Value::Null))?;
        }
        map.end()
    }
}

#[derive(serde::Serialize)]
struct ColumnType<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    type_name: &'a str,
}

/// Writes one format.
pub(super) struct Writer {
    format: Format,
    columns: Columns,
    rows: usize,
}

fn json_into(out: &mut Vec<u8>, value: &impl Serialize) {
    // Serializing owned JSON values and strings into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

impl Writer {
    pub(super) fn new(format: Format, columns: Vec<Column>) -> Self {
        Self {
            format,
            columns: Columns::new(columns),
            rows: 0,
        }
    }

    fn names(&self) -> Vec<&str> {
        self.columns
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect()
    }

    fn types(&self) -> Vec<ColumnType<'_>> {
        self.columns
            .columns
            .iter()
            .map(|c| ColumnType {
                name: &c.name,
                type_name: &c.type_name,
            })
            .collect()
    }

    /// The opening: JSON up to the first row, CSV's header line, NDJSON's columns.
    pub(super) fn head(&self, out: &mut Vec<u8>) {
        match self.format {
            Format::Json(layout) => {
                out.extend_from_slice(br#"{"success":true,"columns":"#);
                json_into(out, &self.names());
                out.extend_from_slice(br#","columnTypes":"#);
                json_into(out, &self.types());
                out.extend_from_slice(match layout {
                    Layout::Objects => br#","data":["#,
                    Layout::Arrays => br#","rows":["#,
                });
            }
            Format::Csv(cells) => csv_record(
                out,
                self.columns
                    .columns
                    .iter()
                    .map(|c| csv_text(c.name.clone(), cells)),
            ),
            Format::Ndjson => {
                out.extend_from_slice(br#"{"columns":"#);
                json_into(out, &self.names());
                out.extend_from_slice(br#","columnTypes":"#);
                json_into(out, &self.types());
                out.extend_from_slice(b"}\n");
            }
        }
    }

    /// One row.
    pub(super) fn row(&mut self, values: &[Value], out: &mut Vec<u8>) {
        match self.format {
            Format::Json(layout) => {
                if self.rows > 0 {
                    out.push(b',');
                }
                match layout {
                    Layout::Objects => json_into(
                        out,
                        &RowObject {
                            keys: &self.columns.object_keys,
                            values,
                        },
                    ),
                    Layout::Arrays => json_into(out, &values),
                }
            }
            Format::Csv(cells) => csv_record(out, values.iter().map(|v| csv_field(v, cells))),
            Format::Ndjson => {
                json_into(out, &values);
                out.push(b'\n');
            }
        }
        self.rows += 1;
    }

    /// The closing part: for JSON the counts and times (and `error` when a failure
    /// cut the result short); for NDJSON the same as a last line; for CSV a last
    /// record `#querygate-error,<code>,<message>` when it failed, or
    /// `#querygate-truncated,<rows>,<message>` when a cap cut it short.
    pub(super) fn tail(&self, ending: &Ending<'_>, out: &mut Vec<u8>) {
        match self.format {
            Format::Json(_) => {
                out.push(b']');
                out.extend_from_slice(br#","rowCount":"#);
                Self::ending_fields(ending, out);
                out.push(b'}');
            }
            Format::Ndjson => {
                out.extend_from_slice(br#"{"rowCount":"#);
                Self::ending_fields(ending, out);
                out.extend_from_slice(b"}\n");
            }
            Format::Csv(_) => {
                if let Some(error) = ending.error {
                    csv_record(
                        out,
                        [
                            "#querygate-error",
                            error.code.as_str(),
                            error.message.as_str(),
                        ]
                        .into_iter(),
                    );
                } else if ending.truncated {
                    let rows = ending.row_count.to_string();
                    csv_record(out, ["#querygate-truncated", &rows, TRUNCATED].into_iter());
                }
            }
        }
    }

    fn ending_fields(ending: &Ending<'_>, out: &mut Vec<u8>) {
        json_into(out, &ending.row_count);
        out.extend_from_slice(br#","truncated":"#);
        json_into(out, &ending.truncated);
        out.extend_from_slice(br#","executedAt":"#);
        json_into(out, &ending.executed_at);
        out.extend_from_slice(br#","elapsedMs":"#);
        json_into(out, &ending.elapsed_ms);
        if let Some(error) = ending.error {
            out.extend_from_slice(br#","error":"#);
            json_into(out, &error.envelope());
        }
    }
}

fn csv_field(value: &Value, cells: Cells) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => csv_text(s.clone(), cells),
        other => other.to_string(),
    }
}

/// Text as a CSV cell: with [`Cells::Safe`], a leading `'` before what a
/// spreadsheet would start a formula with.
fn csv_text(text: String, cells: Cells) -> String {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']) && !is_plain_number(&text);
    if cells == Cells::Safe && formula {
        format!("'{text}")
    } else {
        text
    }
}

/// One CSV record (RFC 4180 quoting, `\n` line ends).
fn csv_record<S: AsRef<str>>(out: &mut Vec<u8>, fields: impl Iterator<Item = S>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\n', '\r']) {
            out.push(b'"');
            out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(field.as_bytes());
        }
    }
    out.push(b'\n');
}

/// `[+-]digits[.digits]`: text a spreadsheet reads as a number, never a formula.
fn is_plain_number(text: &str) -> bool {
    let digits = text.trim_start_matches(['+', '-']);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    text.len() - digits.len() == 1
        && !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn column(name: &str) -> Column {
        Column {
            name: name.into(),
            type_name: "int4".into(),
        }
    }

    #[test]
    fn repeated_names_keep_their_first_place_and_last_value_in_objects() {
        let columns = Columns::new(vec![column("a"), column("b"), column("a")]);
        let row = serde_json::to_string(&RowObject {
            keys: &columns.object_keys,
            values: &[json!(1), json!(2), json!(3)],
        })
        .expect("json");
        assert_eq!(row, r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn csv_cells_that_would_be_formulas_are_neutralised_unless_raw_is_asked() {
        for text in [
            "=1+1",
            "+1+1",
            "-2-cmd",
            "-",
            "+.5",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "=HYPERLINK(\"http://x\")",
        ] {
            assert_eq!(csv_field(&json!(text), Cells::Safe), format!("'{text}"));
            assert_eq!(csv_field(&json!(text), Cells::Raw), text);
        }
        assert_eq!(csv_field(&json!("a=1"), Cells::Safe), "a=1");
        assert_eq!(
            csv_field(&json!(-5), Cells::Safe),
            "-5",
            "numbers are numbers"
        );
        for number in ["-2", "+1", "-9223372036854775808", "-1.25"] {
            assert_eq!(
                csv_field(&json!(number), Cells::Safe),
                number,
                "plain numbers"
            );
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut out = Vec::new();
        csv_record(&mut out, ["1", "a,b \"c\"", "", "{\"k\":1}"].into_iter());
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "1,\"a,b \"\"c\"\"\",,\"{\"\"k\"\":1}\"\n"
        );
    }
}
