//! Catalogs: where tables and partitions are registered so Athena can query
//! new data at once, without crawlers. The lake catalog (a JSON document per
//! table inside the lake) is the embedded default; Glue implements the same
//! trait.

pub mod glue;
pub mod lake;

use serde_json::Value;

use crate::error::Result;
use crate::schema::TableSchema;

pub trait Catalog: Send + Sync {
    /// Create the table from its schema, or update its columns (adding new
    /// ones, never dropping any). Idempotent.
    fn ensure_table(&self, t: &TableSchema) -> Result<()>;
    /// Register partitions (paths like `year=2024/month=03/day=01/hour=05/vendor_id=2`)
    /// of a table. Idempotent: registering a known partition is a no-op.
    /// Called before any object of the partition is written.
    fn register_partitions(&self, t: &TableSchema, partitions: &[String]) -> Result<()>;
}

pub use lake::LakeCatalog;

/// New columns are appended; existing ones keep their place and take the
/// new type; columns the schema no longer has are kept, so old data stays
/// queryable.
pub(crate) fn merge_columns(old: &Value, new: &Value) -> Value {
    let mut merged: Vec<Value> = old.as_array().cloned().unwrap_or_default();
    for col in new.as_array().into_iter().flatten() {
        match merged.iter_mut().find(|c| c["Name"] == col["Name"]) {
            Some(existing) => *existing = col.clone(),
            None => merged.push(col.clone()),
        }
    }
    Value::Array(merged)
}
