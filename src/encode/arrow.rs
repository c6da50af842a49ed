//! Rows of JSON values -> Arrow arrays, built directly from the column
//! model (no intermediate serialisation).

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::SchemaRef;
use serde_json::Value;

use crate::schema::columns::{list_item_field, struct_fields};
use crate::schema::{Column, ColumnType};

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

    /// Append one value; a value of the wrong JSON type becomes null (the
    /// validator has already rejected such records for declared types).
    fn append(&mut self, v: Option<&Value>) {
        let v = v.filter(|v| !v.is_null());
        match self {
            Self::Boolean(b) => b.append_option(v.and_then(Value::as_bool)),
            Self::Int64(b) => b.append_option(v.and_then(as_i64)),
            Self::Float64(b) => b.append_option(v.and_then(Value::as_f64)),
            Self::Timestamp(b) => b.append_option(v.and_then(Value::as_i64)),
            Self::Utf8(b) | Self::JsonText(b) => match v {
                None => b.append_null(),
                Some(Value::String(s)) => b.append_value(s),
                Some(other) => b.append_value(other.to_string()),
            },
            Self::Struct {
                cols,
                children,
                nulls,
            } => {
                let obj = v.and_then(Value::as_object);
                for (c, child) in cols.iter().zip(children.iter_mut()) {
                    child.append(obj.and_then(|o| o.get(&c.source)));
                }
                nulls.append(obj.is_some());
            }
            Self::List {
                child,
                offsets,
                nulls,
                ..
            } => {
                let arr = v.and_then(Value::as_array);
                if let Some(items) = arr {
                    for it in items {
                        child.append(Some(it));
                    }
                }
                let last = *offsets.last().unwrap_or(&0);
                offsets.push(last + arr.map_or(0, |a| a.len() as i32));
                nulls.append(arr.is_some());
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

/// JSON "integer" admits 2.0; keep such values rather than null them.
fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// Accumulates rows of one table into a RecordBatch.
pub struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<Column>,
    builders: Vec<ColumnBuilder>,
    rows: usize,
}

impl BatchBuilder {
    pub fn new(schema: SchemaRef, columns: &[Column]) -> Self {
        BatchBuilder {
            schema,
            columns: columns.to_vec(),
            builders: columns.iter().map(|c| ColumnBuilder::new(&c.ty)).collect(),
            rows: 0,
        }
    }

    pub fn append(&mut self, record: &Value) {
        let obj = record.as_object();
        for (c, b) in self.columns.iter().zip(self.builders.iter_mut()) {
            b.append(obj.and_then(|o| o.get(&c.source)));
        }
        self.rows += 1;
    }

    pub fn rows(&self) -> usize {
        self.rows
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
            b.append(r);
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
