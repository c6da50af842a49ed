//! Catalogs: where tables and partitions are registered so Athena can query
//! new data at once, without crawlers. The lake catalog (a JSON document per
//! table inside the lake) is the embedded default; Glue implements the same
//! trait.

pub mod lake;

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
