//! Transformed records in the table's column order, ready for the Arrow
//! builders: a flat list of cells plus the records' text. A [`Row`] holds
//! any number of records one after the other: a transform job's records
//! share one, so they cost two allocations per job rather than a tree of
//! maps and strings (or even two allocations) per record.
//!
//! A record's top-level columns are `cells[top..top + columns.len()]` (see
//! [`RowRef`]). A struct's members and a list's items sit further on in the
//! same list (see [`Cell`]); every position is absolute within the `Row`.
//!
//! Both transform paths end here: the compiled one (`compiled`) fills a row
//! while it parses, the general one converts its `serde_json::Value` with
//! [`Row::from_value`]. Conversion rules (what becomes null, how numbers
//! become text) are defined once, here, and the compiled path is tested to
//! produce the same rows.

use serde_json::Value;

use crate::schema::{Column, ColumnType};
use crate::transform::timestamp::push_padded;

/// One value of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    /// Integers, and timestamps as epoch milliseconds.
    Int(i64),
    Float(f64),
    /// Text at `row.text[start..start + len]`.
    Str {
        start: u32,
        len: u32,
    },
    /// A present struct whose members are `cells[start..start + members]`.
    Struct {
        start: u32,
    },
    /// A present list whose items are `cells[start..start + len]`.
    List {
        start: u32,
        len: u32,
    },
}

/// Records in column order, one after the other.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub cells: Vec<Cell>,
    pub text: String,
}

impl Row {
    /// An empty row with room for `cells` cells and `text` bytes of text.
    pub fn with_capacity(cells: usize, text: usize) -> Row {
        Row {
            cells: Vec::with_capacity(cells),
            text: String::with_capacity(text),
        }
    }

    /// Append text; returns its cell.
    pub fn push_str(&mut self, s: &str) -> Cell {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Cell::Str {
            start,
            len: s.len() as u32,
        }
    }

    /// Append an integer's decimal text (as `i64`'s `Display` writes it)
    /// without an allocation; returns its cell.
    pub fn push_int(&mut self, i: i64) -> Cell {
        let start = self.text.len() as u32;
        if i < 0 {
            self.text.push('-');
        }
        push_padded(&mut self.text, i.unsigned_abs(), 1);
        Cell::Str {
            start,
            len: self.text.len() as u32 - start,
        }
    }

    /// The text of a [`Cell::Str`].
    pub fn str(&self, start: u32, len: u32) -> &str {
        &self.text[start as usize..(start + len) as usize]
    }

    /// Reserve `n` null cells at the end; returns the first one's index.
    pub fn reserve_block(&mut self, n: usize) -> u32 {
        let start = self.cells.len() as u32;
        self.cells.resize(self.cells.len() + n, Cell::Null);
        start
    }

    /// The JSON text of a scalar cell as `Value`'s `Display` writes it
    /// (strings unquoted): what partition values and record ids are made
    /// of. None for nulls and containers.
    pub fn scalar_text(&self, cell: Cell) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match cell {
            Cell::Str { start, len } => Some(Cow::Borrowed(self.str(start, len))),
            Cell::Int(i) => Some(Cow::Owned(i.to_string())),
            Cell::Float(f) => Some(Cow::Owned(float_text(f))),
            Cell::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
            Cell::Null | Cell::Struct { .. } | Cell::List { .. } => None,
        }
    }

    /// A row of `columns` holding one transformed record (timestamps
    /// already epoch millis, source tag added, masks applied), at top 0.
    pub fn from_value(columns: &[Column], record: &Value) -> Row {
        let mut row = Row::with_capacity(columns.len() + 8, 256);
        row.push_value(columns, record);
        row
    }

    /// Append a transformed record as a row of `columns`; returns where
    /// its top-level cells start.
    pub fn push_value(&mut self, columns: &[Column], record: &Value) -> u32 {
        let start = self.reserve_block(columns.len());
        let obj = record.as_object();
        for (i, c) in columns.iter().enumerate() {
            let cell = self.cell_of(&c.ty, obj.and_then(|o| o.get(&c.source)));
            self.cells[start as usize + i] = cell;
        }
        start
    }

    /// Rough cells a record of `columns` takes (lists counted as a few
    /// items), to size a [`Row`] for many records at once.
    pub fn cells_per_record(columns: &[Column]) -> usize {
        columns
            .iter()
            .map(|c| match &c.ty {
                ColumnType::Struct(m) => 1 + Row::cells_per_record(m),
                ColumnType::List(_) => 5,
                _ => 1,
            })
            .sum()
    }

    /// Drop everything from `cells` cells and `text` bytes on: what a
    /// record abandoned half-way left behind.
    pub fn truncate(&mut self, cells: usize, text: usize) {
        self.cells.truncate(cells);
        self.text.truncate(text);
    }

    /// The cell for one value of a column of type `ty`. A value of another
    /// JSON type than the column's becomes null (the validator has rejected
    /// such records already wherever the schema declares a type).
    pub fn cell_of(&mut self, ty: &ColumnType, v: Option<&Value>) -> Cell {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Cell::Null;
        };
        match ty {
            ColumnType::Boolean => v.as_bool().map_or(Cell::Null, Cell::Bool),
            // Converted timestamps are always integers.
            ColumnType::Timestamp => v.as_i64().map_or(Cell::Null, Cell::Int),
            ColumnType::Int64 => match v {
                Value::Number(n) => match n.as_i64() {
                    Some(i) => Cell::Int(i),
                    None => n.as_f64().and_then(integral).map_or(Cell::Null, Cell::Int),
                },
                _ => Cell::Null,
            },
            ColumnType::Float64 => v.as_f64().map_or(Cell::Null, Cell::Float),
            ColumnType::Utf8 | ColumnType::JsonText => match v {
                Value::String(s) => self.push_str(s),
                other => self.push_str(&other.to_string()),
            },
            ColumnType::Struct(cols) => {
                let Some(obj) = v.as_object() else {
                    return Cell::Null;
                };
                let start = self.reserve_block(cols.len());
                for (i, c) in cols.iter().enumerate() {
                    let cell = self.cell_of(&c.ty, obj.get(&c.source));
                    self.cells[start as usize + i] = cell;
                }
                Cell::Struct { start }
            }
            ColumnType::List(item) => {
                let Some(items) = v.as_array() else {
                    return Cell::Null;
                };
                // Items are contiguous: reserve them first, fill after, so
                // blocks of nested structs go after the items.
                let start = self.reserve_block(items.len());
                for (i, it) in items.iter().enumerate() {
                    let cell = self.cell_of(item, Some(it));
                    self.cells[start as usize + i] = cell;
                }
                Cell::List {
                    start,
                    len: items.len() as u32,
                }
            }
        }
    }
}

/// One record of a [`Row`]: its top-level cells start at `top`.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    pub row: &'a Row,
    pub top: u32,
}

impl<'a> RowRef<'a> {
    /// The record of a row that holds only it.
    pub fn only(row: &'a Row) -> RowRef<'a> {
        RowRef { row, top: 0 }
    }

    /// Top-level cell `i`.
    pub fn cell(&self, i: usize) -> Cell {
        self.row.cells[self.top as usize + i]
    }

    /// The cell at a dotted path of column sources through structs (Null
    /// when absent).
    pub fn at(&self, columns: &[Column], path: &str) -> Cell {
        let (mut cols, mut start) = (columns, self.top as usize);
        let mut segs = path.split('.').peekable();
        while let Some(seg) = segs.next() {
            let Some(i) = cols.iter().position(|c| c.source == seg) else {
                return Cell::Null;
            };
            let cell = self.row.cells[start + i];
            if segs.peek().is_none() {
                return cell;
            }
            match (cell, &cols[i].ty) {
                (Cell::Struct { start: s }, ColumnType::Struct(members)) => {
                    cols = members;
                    start = s as usize;
                }
                _ => return Cell::Null,
            }
        }
        Cell::Null
    }
}

/// JSON Schema's "integer" admits 2.0: such a float is kept as an integer
/// rather than nulled (within the range where floats are exact).
pub fn integral(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// A float's JSON text exactly as `serde_json::Value` prints it.
pub fn float_text(f: f64) -> String {
    serde_json::Number::from_f64(f).map_or_else(|| "null".to_owned(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn push_int_writes_what_display_writes() {
        let mut row = Row::default();
        for i in [0i64, 7, -7, 10, 1234567890, i64::MAX, i64::MIN] {
            let Cell::Str { start, len } = row.push_int(i) else {
                panic!("not text")
            };
            assert_eq!(row.str(start, len), i.to_string());
        }
    }

    use super::*;
    use crate::schema::TableSchema;
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn from_value_table() {
        let s = json!({"type": "object", "properties": {
            "n": {"type": "integer"},
            "f": {"type": "number"},
            "b": {"type": "boolean"},
            "o": {"type": "object", "properties": {"a": {"type": "string"}}},
            "l": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}}},
            "j": {"type": ["string", "integer"]}
        }, "x-lakehose": {}});
        let t = TableSchema::from_value(s, "t", Path::new("t.json")).unwrap();
        let cases: Vec<(Value, Vec<Option<String>>)> = vec![
            (
                json!({"n": 1, "f": 2, "b": true, "o": {"a": "x"}, "l": [{"x": 1}], "j": 5, "source": "s"}),
                vec![
                    Some("1".into()),
                    Some("2.0".into()),
                    Some("true".into()),
                    None,
                    None,
                    Some("5".into()),
                    Some("s".into()),
                ],
            ),
            // 2.0 is a JSON Schema integer; a float column widens integers
            (
                json!({"n": 2.0, "f": 1.5, "j": "t"}),
                vec![
                    Some("2".into()),
                    Some("1.5".into()),
                    None,
                    None,
                    None,
                    Some("t".into()),
                    None,
                ],
            ),
            // a value of the wrong type becomes null
            (
                json!({"n": "x", "f": "y", "b": 1, "o": 3, "l": {}}),
                vec![None; 7],
            ),
        ];
        for (v, want) in cases {
            let row = Row::from_value(&t.columns, &v);
            let got: Vec<Option<String>> = row.cells[..t.columns.len()]
                .iter()
                .map(|c| row.scalar_text(*c).map(|s| s.into_owned()))
                .collect();
            assert_eq!(got, want, "{v}");
        }
        // nested blocks: the struct's member and the list's struct item
        let row = Row::from_value(&t.columns, &json!({"o": {"a": "x"}, "l": [{"x": 7}, {}]}));
        let Cell::Struct { start } = row.cells[3] else {
            panic!("struct")
        };
        assert_eq!(row.scalar_text(row.cells[start as usize]).unwrap(), "x");
        let Cell::List { start, len: 2 } = row.cells[4] else {
            panic!("list")
        };
        let Cell::Struct { start: s0 } = row.cells[start as usize] else {
            panic!("item")
        };
        assert_eq!(row.cells[s0 as usize], Cell::Int(7));
        let Cell::Struct { start: s1 } = row.cells[start as usize + 1] else {
            panic!("item")
        };
        assert_eq!(row.cells[s1 as usize], Cell::Null);
    }
}
