//! The catalog kept in the lake itself: `_lakehose/catalog/<database>/<table>.json`
//! holds the Glue `TableInput` and every partition with its location, in
//! the shape Glue's `GetTable` / `GetPartitions` return, so moving to Glue
//! later is a copy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{merge_columns, Catalog};
use crate::error::{Error, Result};
use crate::partition::values_of;
use crate::schema::glue::{table_input, table_location};
use crate::schema::TableSchema;
use crate::sink::ObjectStore;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct TableDocument {
    pub database_name: String,
    pub table: Value,
    /// Partition path -> Glue PartitionInput.
    pub partitions: BTreeMap<String, Value>,
}

pub struct LakeCatalog {
    store: Arc<dyn ObjectStore>,
    database: String,
    base_location: String,
    /// Partitions known to be registered, per table, so the hot path does not
    /// rewrite the document for partitions it already holds.
    known: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl LakeCatalog {
    pub fn new(store: Arc<dyn ObjectStore>, database: &str, base_location: &str) -> Self {
        LakeCatalog {
            store,
            database: database.to_owned(),
            base_location: base_location.to_owned(),
            known: Mutex::new(HashMap::new()),
        }
    }

    pub fn key(database: &str, table: &str) -> String {
        format!("_lakehose/catalog/{database}/{table}.json")
    }

    /// The stored document of a table, if any.
    pub fn read(&self, table: &str) -> Result<Option<TableDocument>> {
        let key = Self::key(&self.database, table);
        match self.store.get(&key)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::catalog(&key, format!("unreadable catalog document: {e}"))),
        }
    }

    fn write(&self, table: &str, doc: &TableDocument) -> Result<()> {
        let key = Self::key(&self.database, table);
        let bytes = serde_json::to_vec_pretty(doc).map_err(|e| Error::catalog(&key, e))?;
        self.store.put(&key, &bytes)
    }
}

impl Catalog for LakeCatalog {
    fn ensure_table(&self, t: &TableSchema) -> Result<()> {
        let mut ti = table_input(t, &self.base_location);
        let doc = match self.read(&t.name)? {
            Some(mut doc) => {
                let merged = merge_columns(
                    &doc.table["StorageDescriptor"]["Columns"],
                    &ti["StorageDescriptor"]["Columns"],
                );
                ti["StorageDescriptor"]["Columns"] = merged;
                if doc.table == ti {
                    self.known
                        .lock()
                        .expect("catalog lock")
                        .insert(t.name.clone(), doc.partitions.keys().cloned().collect());
                    return Ok(());
                }
                doc.table = ti;
                doc
            }
            None => TableDocument {
                database_name: self.database.clone(),
                table: ti,
                partitions: BTreeMap::new(),
            },
        };
        self.write(&t.name, &doc)?;
        self.known
            .lock()
            .expect("catalog lock")
            .insert(t.name.clone(), doc.partitions.keys().cloned().collect());
        Ok(())
    }

    fn register_partitions(&self, t: &TableSchema, partitions: &[String]) -> Result<()> {
        let mut known = self.known.lock().expect("catalog lock");
        let set = known.entry(t.name.clone()).or_default();
        let new: Vec<&String> = partitions.iter().filter(|p| !set.contains(*p)).collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut doc = self.read(&t.name)?.ok_or_else(|| {
            Error::catalog(
                Self::key(&self.database, &t.name),
                "table is not registered",
            )
        })?;
        let sd = &doc.table["StorageDescriptor"];
        for p in &new {
            let mut psd = sd.clone();
            psd["Location"] = Value::String(format!(
                "{}{}/",
                table_location(&self.base_location, &t.name),
                p
            ));
            doc.partitions.insert(
                (*p).clone(),
                serde_json::json!({"Values": values_of(p), "StorageDescriptor": psd}),
            );
        }
        self.write(&t.name, &doc)?;
        set.extend(new.into_iter().cloned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::LocalStore;
    use serde_json::json;
    use std::path::Path;

    fn table(props: Value) -> TableSchema {
        let s = json!({"type": "object", "properties": props,
            "x-lakehose": {"table": "t", "event_time": "ts", "partition": [{"name": "v", "field": "VendorID"}]}});
        TableSchema::from_value(s, "t", Path::new("t.json")).unwrap()
    }

    #[test]
    fn idempotent_tables_and_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::open(dir.path()).unwrap());
        let cat = LakeCatalog::new(store.clone(), "db", "s3://b/");
        let t = table(json!({"ts": {}, "VendorID": {"type": "integer"}}));
        cat.ensure_table(&t).unwrap();
        cat.ensure_table(&t).unwrap();
        let p = "year=2024/month=03/day=01/hour=05/v=2".to_string();
        cat.register_partitions(&t, &[p.clone(), p.clone()])
            .unwrap();
        cat.register_partitions(&t, std::slice::from_ref(&p))
            .unwrap();
        let doc = cat.read("t").unwrap().unwrap();
        assert_eq!(doc.partitions.len(), 1);
        assert_eq!(
            doc.partitions[&p]["Values"],
            json!(["2024", "03", "01", "05", "2"])
        );
        assert_eq!(
            doc.partitions[&p]["StorageDescriptor"]["Location"],
            format!("s3://b/t/{p}/")
        );
        // a fresh catalog over the same lake sees the partition and keeps it
        let again = LakeCatalog::new(store.clone(), "db", "s3://b/");
        let t2 =
            table(json!({"ts": {}, "VendorID": {"type": "integer"}, "extra": {"type": "string"}}));
        again.ensure_table(&t2).unwrap();
        let doc = again.read("t").unwrap().unwrap();
        assert_eq!(doc.partitions.len(), 1);
        let names: Vec<&str> = doc.table["StorageDescriptor"]["Columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ts", "vendorid", "source", "extra"]);
        // a schema that loses a column never drops it from the table
        let t3 = table(json!({"ts": {}, "VendorID": {"type": "integer"}}));
        again.ensure_table(&t3).unwrap();
        let doc = again.read("t").unwrap().unwrap();
        assert_eq!(
            doc.table["StorageDescriptor"]["Columns"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
    }
}
