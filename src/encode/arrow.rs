//! Rows ([`Row`]) -> Arrow arrays, built directly from the column model
//! (no intermediate serialisation).

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::SchemaRef;

use crate::schema::columns::{list_item_field, struct_fields};
use crate::schema::{Column, ColumnType};
use crate::transform::row::{Cell, Row, RowRef};

/// Appends JSON values of one column. Builders start empty (arrow's default
/// is room for 1024 values per column): with hundreds of open partitions the
/// preallocation alone would cost tens of MiB.
enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    JsonText(StringBuilder),
    Timestamp(TimestampMillisecondBuilder),
    Struct {
        cols: Vec<Column>,
        children: Vec<ColumnBuilder>,
        nulls: NullBufferBuilder,
    },
    List {
        item: ColumnType,
        child: Box<ColumnBuilder>,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
    },
}

impl ColumnBuilder {
    fn new(ty: &ColumnType) -> Self {
        match ty {
            ColumnType::Boolean => Self::Boolean(BooleanBuilder::with_capacity(0)),
            ColumnType::Int64 => Self::Int64(Int64Builder::with_capacity(0)),
            ColumnType::Float64 => Self::Float64(Float64Builder::with_capacity(0)),
            ColumnType::Utf8 => Self::Utf8(StringBuilder::with_capacity(0, 0)),
            ColumnType::JsonText => Self::JsonText(StringBuilder::with_capacity(0, 0)),
            ColumnType::Timestamp => {
                Self::Timestamp(TimestampMillisecondBuilder::with_capacity(0).with_timezone("UTC"))
            }
            ColumnType::Struct(cols) => Self::Struct {
                cols: cols.clone(),
                children: cols.iter().map(|c| ColumnBuilder::new(&c.ty)).collect(),
                nulls: NullBufferBuilder::new(0),
            },
            ColumnType::List(item) => Self::List {
                item: (**item).clone(),
                child: Box::new(ColumnBuilder::new(item)),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
            },
        }
    }

    /// Append cell `i` of every row. The flat kinds are matched once per
    /// column rather than once per cell: the per-cell loop is then a tight
    /// one over the rows.
    fn append_column(&mut self, rows: &[RowRef], i: usize) {
        match self {
            Self::Int64(b) => {
                for row in rows {
                    match row.cell(i) {
                        Cell::Int(v) => b.append_value(v),
                        _ => b.append_null(),
                    }
                }
            }
            Self::Timestamp(b) => {
                for row in rows {
                    match row.cell(i) {
                        Cell::Int(v) => b.append_value(v),
                        _ => b.append_null(),
                    }
                }
            }
            Self::Float64(b) => {
                for row in rows {
                    match row.cell(i) {
                        Cell::Float(v) => b.append_value(v),
                        _ => b.append_null(),
                    }
                }
            }
            Self::Utf8(b) | Self::JsonText(b) => {
                for row in rows {
                    match row.cell(i) {
                        Cell::Str { start, len } => b.append_value(row.row.str(start, len)),
                        _ => b.append_null(),
                    }
                }
            }
            _ => {
                for row in rows {
                    self.append(row.row, row.cell(i));
                }
            }
        }
    }

    /// Append one cell of `row` (cells of another kind than the column's
    /// are null; `Row` never makes them).
    fn append(&mut self, row: &Row, cell: Cell) {
        match self {
            Self::Boolean(b) => match cell {
                Cell::Bool(v) => b.append_value(v),
                _ => b.append_null(),
            },
            Self::Int64(b) => match cell {
                Cell::Int(v) => b.append_value(v),
                _ => b.append_null(),
            },
            Self::Timestamp(b) => match cell {
                Cell::Int(v) => b.append_value(v),
                _ => b.append_null(),
            },
            Self::Float64(b) => match cell {
                Cell::Float(v) => b.append_value(v),
                _ => b.append_null(),
            },
            Self::Utf8(b) | Self::JsonText(b) => match cell {
                Cell::Str { start, len } => b.append_value(row.str(start, len)),
                _ => b.append_null(),
            },
            Self::Struct {
                children, nulls, ..
            } => match cell {
                Cell::Struct { start } => {
                    for (i, child) in children.iter_mut().enumerate() {
                        child.append(row, row.cells[start as usize + i]);
                    }
                    nulls.append_non_null();
                }
                _ => {
                    for child in children.iter_mut() {
                        child.append(row, Cell::Null);
                    }
                    nulls.append_null();
                }
            },
            Self::List {
                child,
                offsets,
                nulls,
                ..
            } => {
                let last = *offsets.last().unwrap_or(&0);
                match cell {
                    Cell::List { start, len } => {
                        for c in &row.cells[start as usize..(start + len) as usize] {
                            child.append(row, *c);
                        }
                        offsets.push(last + len as i32);
                        nulls.append_non_null();
                    }
                    _ => {
                        offsets.push(last);
                        nulls.append_null();
                    }
                }
            }
        }
    }

    /// Ask for the cache lines the next appends write to (see
    /// [`BatchBuilder::prefetch_tails`]).
    fn prefetch_tail(&self) {
        fn tail<T>(s: &[T]) {
            crate::prefetch::bytes(s.as_ptr_range().end.cast(), TAIL_BYTES);
        }
        match self {
            Self::Boolean(b) => tail(b.values_slice()),
            Self::Int64(b) => tail(b.values_slice()),
            Self::Float64(b) => tail(b.values_slice()),
            Self::Timestamp(b) => tail(b.values_slice()),
            Self::Utf8(b) | Self::JsonText(b) => {
                tail(b.values_slice());
                tail(b.offsets_slice());
            }
            Self::Struct { children, .. } => children.iter().for_each(Self::prefetch_tail),
            Self::List { child, offsets, .. } => {
                tail(offsets);
                child.prefetch_tail();
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Utf8(b) | Self::JsonText(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
            Self::Struct {
                cols,
                children,
                nulls,
            } => {
                let arrays: Vec<ArrayRef> =
                    children.iter_mut().map(ColumnBuilder::finish).collect();
                let fields = struct_fields(cols);
                let len = nulls.len();
                if fields.is_empty() {
                    return Arc::new(StructArray::new_empty_fields(len, nulls.finish()));
                }
                Arc::new(StructArray::new(fields, arrays, nulls.finish()))
            }
            Self::List {
                item,
                child,
                offsets,
                nulls,
            } => {
                let values = child.finish();
                let offs = std::mem::replace(offsets, vec![0]);
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offs));
                Arc::new(ListArray::new(
                    Arc::new(list_item_field(item)),
                    offsets,
                    values,
                    nulls.finish(),
                ))
            }
        }
    }
}

/// Bytes asked for at the end of each column (see
/// [`BatchBuilder::prefetch_tails`]): about what a chunk appends to one.
const TAIL_BYTES: usize = 128;

/// Rows appended per step (a few KiB of cells: well within L1).
const PREFETCH_ROWS: usize = 16;

/// Ask for the cache lines of these rows' top-level cells. The rows were
/// made on other cores, and a partition's rows are spread over the
/// chunk's: read one after the other, every line is a cache miss waited
/// for in turn; asked for together, the misses overlap.
fn prefetch(rows: &[RowRef], columns: usize) {
    for r in rows {
        let cells = top_cells(r, columns);
        crate::prefetch::bytes(cells.as_ptr().cast(), std::mem::size_of_val(cells));
    }
}

/// A row's top-level cells (fewer at the end of a row that holds less).
fn top_cells<'a>(r: &RowRef<'a>, columns: usize) -> &'a [Cell] {
    let top = &r.row.cells[r.top as usize..];
    &top[..columns.min(top.len())]
}

/// Bytes of a record's text asked for from its first string on: the
/// taxi events' strings (id, hashed email, masked card, tags) take about
/// 170.
const TEXT_BYTES: usize = 192;

/// Ask for the text of these rows (their cells are in cache by now: asked
/// for a step before). A record's strings sit together in its row's text,
/// from its first one on; appended after the fixed-width columns, they
/// have arrived by then instead of stalling the copies one by one.
fn prefetch_text(rows: &[RowRef], columns: usize) {
    for r in rows {
        let first = top_cells(r, columns)
            .iter()
            .filter_map(|c| match c {
                Cell::Str { start, .. } => Some(*start as usize),
                _ => None,
            })
            .min();
        if let Some(start) = first {
            let text = &r.row.text.as_bytes()[start..];
            crate::prefetch::bytes(text.as_ptr(), TEXT_BYTES.min(text.len()));
        }
    }
}

/// Accumulates rows of one table into a RecordBatch.
pub struct BatchBuilder {
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    /// Column indices in append order: fixed-width columns first, so the
    /// text the others copy has arrived by their turn (see
    /// [`prefetch_text`]).
    order: Vec<usize>,
    rows: usize,
}

impl BatchBuilder {
    pub fn new(schema: SchemaRef, columns: &[Column]) -> Self {
        BatchBuilder {
            schema,
            builders: columns.iter().map(|c| ColumnBuilder::new(&c.ty)).collect(),
            order: {
                let mut order: Vec<usize> = (0..columns.len()).collect();
                order.sort_by_key(|&i| {
                    !matches!(
                        columns[i].ty,
                        ColumnType::Boolean
                            | ColumnType::Int64
                            | ColumnType::Float64
                            | ColumnType::Timestamp
                    )
                });
                order
            },
            rows: 0,
        }
    }

    /// Append a row that holds one record.
    pub fn append(&mut self, row: &Row) {
        self.append_all(&[RowRef::only(row)]);
    }

    /// Append rows column by column: one builder at a time keeps its
    /// buffers in cache and its branch predictable. Rows go a step at a
    /// time, the next step's memory asked for while this one is appended
    /// (see [`prefetch`]).
    pub fn append_all(&mut self, rows: &[RowRef]) {
        let columns = self.builders.len();
        let mut steps = rows.chunks(PREFETCH_ROWS).peekable();
        if let Some(first) = steps.peek() {
            prefetch(first, columns);
        }
        while let Some(step) = steps.next() {
            if let Some(next) = steps.peek() {
                prefetch(next, columns);
            }
            prefetch_text(step, columns);
            for &i in &self.order {
                self.builders[i].append_column(step, i);
            }
        }
        self.rows += rows.len();
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Ask for the cache lines the next appends write to: each column's
    /// end. A buffer's appends come a chunk apart, with every other
    /// buffer's in between, so those lines have left the cache by then,
    /// and the stores to them stall the appends (their slowest step in
    /// `perf annotate`). Asked for one buffer ahead, they arrive while
    /// the buffer before is appended.
    pub fn prefetch_tails(&self) {
        self.builders.iter().for_each(ColumnBuilder::prefetch_tail);
    }

    /// The rows appended so far as one batch; the builder starts over empty.
    pub fn finish(&mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
            .expect("builders follow the schema they were made from")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TableSchema;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMillisecondType};
    use arrow_array::Array;
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn builds_nested_batches() {
        let s = json!({"type": "object", "properties": {
            "n": {"type": "integer"},
            "ts": {"type": "string"},
            "o": {"type": "object", "properties": {"a": {"type": "string"}}},
            "l": {"type": "array", "items": {"type": "integer"}},
            "x": {"type": ["string", "integer"]}
        }, "x-lakehose": {"timestamps": ["ts"]}});
        let t = TableSchema::from_value(s, "t", Path::new("t.json")).unwrap();
        let mut b = BatchBuilder::new(t.arrow.clone(), &t.columns);
        let rows = [
            json!({"n": 1, "ts": 1000, "o": {"a": "x"}, "l": [1, 2], "x": 5, "source": "s"}),
            // 2.0 is a JSON Schema integer
            json!({"n": 2.0, "o": null, "l": [], "x": "t"}),
            json!({}),
        ];
        for r in &rows {
            b.append(&Row::from_value(&t.columns, r));
        }
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 3);
        let n = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!((n.value(0), n.value(1), n.is_null(2)), (1, 2, true));
        let ts = batch.column(1).as_primitive::<TimestampMillisecondType>();
        assert_eq!(ts.value(0), 1000);
        assert!(ts.is_null(1));
        let o = batch.column(2).as_struct();
        assert!(o.is_valid(0) && o.is_null(1) && o.is_null(2));
        let l = batch.column(3).as_list::<i32>();
        assert_eq!(l.value_length(0), 2);
        assert!(l.is_valid(1) && l.value_length(1) == 0 && l.is_null(2));
        let x = batch.column(4).as_string::<i32>();
        assert_eq!((x.value(0), x.value(1)), ("5", "t"));
        let src = batch.column(5).as_string::<i32>();
        assert_eq!(src.value(0), "s");
        // the builder starts over
        assert_eq!(b.rows(), 0);
        assert_eq!(b.finish().num_rows(), 0);
    }
}
