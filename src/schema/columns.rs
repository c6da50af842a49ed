//! JSON Schema -> column model -> Arrow schema and Hive (Glue/Athena) types.
//!
//! The column model is the one place that decides how a JSON field is
//! stored; Arrow, Glue and the DDL are all printed from it, so they cannot
//! disagree.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::Value;

use super::{Extension, SOURCE_COLUMN};

/// How a column is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    Boolean,
    Int64,
    Float64,
    Utf8,
    /// Epoch milliseconds, UTC (Parquet INT64 TIMESTAMP(MILLIS, UTC)).
    Timestamp,
    /// A field whose schema allows several JSON types (or none is declared):
    /// stored as its JSON text so nothing is lost.
    JsonText,
    Struct(Vec<Column>),
    List(Box<ColumnType>),
}

/// One column (or struct member).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Lowercase name used in Parquet, Glue and Athena.
    pub name: String,
    /// Key in the JSON record.
    pub source: String,
    pub ty: ColumnType,
}

/// Derive the table's columns from its schema: top-level properties in
/// declaration order, then the source tag column.
pub fn derive_columns(schema: &Value, ext: &Extension) -> Result<Vec<Column>, String> {
    let mut cols = object_columns(schema, "", ext)?;
    if cols.iter().any(|c| c.name == SOURCE_COLUMN) {
        return Err(format!(
            "the schema declares a {SOURCE_COLUMN:?} property, which lakehose adds itself"
        ));
    }
    cols.push(Column {
        name: SOURCE_COLUMN.into(),
        source: SOURCE_COLUMN.into(),
        ty: ColumnType::Utf8,
    });
    Ok(cols)
}

fn object_columns(schema: &Value, prefix: &str, ext: &Extension) -> Result<Vec<Column>, String> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(props.len());
    for (key, sub) in props {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        out.push(Column {
            name: key.to_lowercase(),
            source: key.clone(),
            ty: column_type(sub, &path, ext)?,
        });
    }
    Ok(out)
}

fn column_type(schema: &Value, path: &str, ext: &Extension) -> Result<ColumnType, String> {
    if ext.timestamps.iter().any(|t| t == path) {
        return Ok(ColumnType::Timestamp);
    }
    // Every mask produces text, whatever the field held.
    if ext.mask.iter().any(|(p, _)| p == path) {
        return Ok(ColumnType::Utf8);
    }
    let types = json_types(schema);
    Ok(match types.as_slice() {
        ["boolean"] => ColumnType::Boolean,
        ["integer"] => ColumnType::Int64,
        ["number"] | ["integer", "number"] | ["number", "integer"] => ColumnType::Float64,
        ["string"] => ColumnType::Utf8,
        ["object"] => {
            let fields = object_columns(schema, path, ext)?;
            if fields.is_empty() {
                ColumnType::JsonText
            } else {
                ColumnType::Struct(fields)
            }
        }
        ["array"] => match schema.get("items") {
            Some(items) if items.is_object() => {
                ColumnType::List(Box::new(column_type(items, path, ext)?))
            }
            _ => ColumnType::JsonText,
        },
        _ => ColumnType::JsonText,
    })
}

/// The non-null JSON types a schema allows, from `type`, else from `enum`/`const`.
fn json_types(schema: &Value) -> Vec<&'static str> {
    const ALL: [&str; 6] = ["boolean", "integer", "number", "string", "object", "array"];
    let mut out: Vec<&'static str> = Vec::new();
    let mut add = |t: &str| {
        if let Some(known) = ALL.iter().find(|k| **k == t) {
            if !out.contains(known) {
                out.push(known);
            }
        }
    };
    match schema.get("type") {
        Some(Value::String(t)) => add(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).for_each(&mut add),
        _ => {
            let values: Vec<&Value> = match (schema.get("enum"), schema.get("const")) {
                (Some(Value::Array(vs)), _) => vs.iter().collect(),
                (_, Some(v)) => vec![v],
                _ => Vec::new(),
            };
            for v in values {
                match v {
                    Value::Bool(_) => add("boolean"),
                    Value::Number(n) if n.is_i64() || n.is_u64() => add("integer"),
                    Value::Number(_) => add("number"),
                    Value::String(_) => add("string"),
                    Value::Object(_) => add("object"),
                    Value::Array(_) => add("array"),
                    Value::Null => {}
                }
            }
        }
    }
    out
}

/// The Arrow type of a column. Every field is nullable: optional JSON
/// properties are the norm and Parquet OPTIONAL costs almost nothing.
pub fn arrow_type(ty: &ColumnType) -> DataType {
    match ty {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Utf8 | ColumnType::JsonText => DataType::Utf8,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        ColumnType::Struct(fields) => DataType::Struct(struct_fields(fields)),
        ColumnType::List(item) => DataType::List(Arc::new(list_item_field(item))),
    }
}

pub fn struct_fields(cols: &[Column]) -> Fields {
    cols.iter()
        .map(|c| Field::new(&c.name, arrow_type(&c.ty), true))
        .collect()
}

/// Lists use the conventional item name so every Parquet reader agrees.
pub fn list_item_field(item: &ColumnType) -> Field {
    Field::new("item", arrow_type(item), true)
}

pub fn arrow_schema(cols: &[Column]) -> Schema {
    Schema::new(struct_fields(cols))
}

/// The Hive type Glue and Athena use for a column.
pub fn hive_type(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Boolean => "boolean".into(),
        ColumnType::Int64 => "bigint".into(),
        ColumnType::Float64 => "double".into(),
        ColumnType::Utf8 | ColumnType::JsonText => "string".into(),
        ColumnType::Timestamp => "timestamp".into(),
        ColumnType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}:{}", f.name, hive_type(&f.ty)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        ColumnType::List(item) => format!("array<{}>", hive_type(item)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TableSchema;
    use serde_json::json;
    use std::path::Path;

    fn table(props: Value, ext: Value) -> TableSchema {
        let s = json!({"type": "object", "properties": props, "x-lakehose": ext});
        TableSchema::from_value(s, "t", Path::new("t.json")).unwrap()
    }

    #[test]
    fn field_types() {
        let cases: Vec<(Value, &str, DataType)> = vec![
            (json!({"type": "integer"}), "bigint", DataType::Int64),
            (
                json!({"type": ["integer", "null"]}),
                "bigint",
                DataType::Int64,
            ),
            (json!({"type": "number"}), "double", DataType::Float64),
            // integer or number: the wider type holds both
            (
                json!({"type": ["integer", "number"]}),
                "double",
                DataType::Float64,
            ),
            (
                json!({"type": "string", "format": "uuid"}),
                "string",
                DataType::Utf8,
            ),
            (json!({"type": "boolean"}), "boolean", DataType::Boolean),
            // type inferred from enum when `type` is absent
            (json!({"enum": [1, 2, 6]}), "bigint", DataType::Int64),
            // several types: keep the JSON text rather than guess
            (
                json!({"type": ["string", "integer"]}),
                "string",
                DataType::Utf8,
            ),
            (json!({}), "string", DataType::Utf8),
            (json!({"type": "object"}), "string", DataType::Utf8),
            (
                json!({"type": "array", "items": {"type": "string"}}),
                "array<string>",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            ),
            (
                json!({"type": "object", "properties": {"A": {"type": "integer"}}}),
                "struct<a:bigint>",
                DataType::Struct(vec![Field::new("a", DataType::Int64, true)].into()),
            ),
        ];
        for (prop, hive, arrow) in cases {
            let t = table(json!({ "f": prop.clone() }), json!({}));
            assert_eq!(hive_type(&t.columns[0].ty), hive, "{prop}");
            assert_eq!(arrow_type(&t.columns[0].ty), arrow, "{prop}");
        }
    }

    #[test]
    fn timestamps_masks_names_and_source() {
        let t = table(
            json!({
                "PickUp": {"type": ["string", "integer"]},
                "rider": {"type": "object", "properties": {"email": {"type": "string"}, "n": {"type": "integer"}}},
                "card": {"type": "integer"}
            }),
            json!({"event_time": "PickUp", "mask": {"card": "last4", "rider.n": "hash"}}),
        );
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["pickup", "rider", "card", "source"]);
        assert_eq!(t.columns[0].ty, ColumnType::Timestamp);
        assert_eq!(t.columns[0].source, "PickUp");
        // masked values are text whatever the declared type
        assert_eq!(hive_type(&t.columns[1].ty), "struct<email:string,n:string>");
        assert_eq!(t.columns[2].ty, ColumnType::Utf8);
        assert_eq!(
            arrow_type(&t.columns[0].ty),
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
    }

    #[test]
    fn lowercase_collision_is_an_error() {
        let s = json!({"type": "object", "properties": {"a": {}, "A": {}}, "x-lakehose": {}});
        let e = TableSchema::from_value(s, "t", Path::new("t.json")).unwrap_err();
        assert!(e.contains("lowercases"), "{e}");
    }
}
