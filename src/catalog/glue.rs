//! The AWS Glue Data Catalog. Tables come from the same `TableInput` JSON
//! as the lake catalog and the checked-in `glue/` files (one source of
//! truth); partitions are registered with BatchCreatePartition, at most 100
//! per call, `AlreadyExistsException` counting as success.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_glue::types::{
    Column, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, TableInput,
};
use aws_sdk_glue::Client;
use serde_json::Value;

use super::{merge_columns, Catalog};
use crate::aws::{describe, Aws};
use crate::error::{Error, Result};
use crate::partition::values_of;
use crate::schema::glue::{table_input, table_location};
use crate::schema::TableSchema;

/// Glue's limit per BatchCreatePartition call.
const BATCH: usize = 100;
/// Rounds of retrying partitions a batch call reported as failed (the SDK
/// already retries whole calls on throttling and 5xx).
const PARTITION_ROUNDS: u32 = 5;

pub struct GlueCatalog {
    aws: Arc<Aws>,
    client: Client,
    database: String,
    base_location: String,
    /// Partitions known to be registered, per table: the hot path calls
    /// Glue only for partitions it has not seen.
    known: Mutex<HashMap<String, HashSet<String>>>,
}

impl GlueCatalog {
    pub fn new(aws: Arc<Aws>, database: &str, base_location: &str) -> Self {
        GlueCatalog {
            client: Client::new(&aws.sdk),
            aws,
            database: database.to_owned(),
            base_location: base_location.to_owned(),
            known: Mutex::new(HashMap::new()),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn fail(&self, table: &str, message: impl std::fmt::Display) -> Error {
        Error::catalog(format!("glue {}.{table}", self.database), message)
    }

    async fn ensure_database(&self) -> Result<()> {
        match self.client.get_database().name(&self.database).send().await {
            Ok(_) => return Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) => {}
            Err(e) => return Err(self.fail("", describe(&e))),
        }
        let input = DatabaseInput::builder()
            .name(&self.database)
            .description("created by lakehose")
            .build()
            .map_err(|e| self.fail("", e))?;
        match self
            .client
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(self.fail("", describe(&e))),
        }
    }

    async fn ensure_table_async(&self, t: &TableSchema) -> Result<()> {
        self.ensure_database().await?;
        let mut wanted = table_input(t, &self.base_location);
        let existing = match self
            .client
            .get_table()
            .database_name(&self.database)
            .name(&t.name)
            .send()
            .await
        {
            Ok(out) => out.table().map(|tb| {
                tb.storage_descriptor()
                    .map(|sd| sd.columns().to_vec())
                    .unwrap_or_default()
            }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                None
            }
            Err(e) => return Err(self.fail(&t.name, describe(&e))),
        };
        match existing {
            None => {
                let input = to_table_input(&wanted).map_err(|e| self.fail(&t.name, e))?;
                match self
                    .client
                    .create_table()
                    .database_name(&self.database)
                    .table_input(input)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    // Another instance created it meanwhile: it holds the same columns.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_already_exists_exception()) => {}
                    Err(e) => return Err(self.fail(&t.name, describe(&e))),
                }
            }
            Some(cols) => {
                let old: Value = cols
                    .iter()
                    .map(|c| serde_json::json!({"Name": c.name(), "Type": c.r#type()}))
                    .collect();
                let merged = merge_columns(&old, &wanted["StorageDescriptor"]["Columns"]);
                if merged != old {
                    wanted["StorageDescriptor"]["Columns"] = merged;
                    let input = to_table_input(&wanted).map_err(|e| self.fail(&t.name, e))?;
                    self.client
                        .update_table()
                        .database_name(&self.database)
                        .table_input(input)
                        .send()
                        .await
                        .map_err(|e| self.fail(&t.name, describe(&e)))?;
                    tracing::info!(table = %t.name, "glue table columns updated");
                }
            }
        }
        Ok(())
    }

    /// Register partitions, retrying the ones a batch reports as failed.
    async fn register_async(&self, t: &TableSchema, parts: &[String]) -> Result<()> {
        let sd = table_input(t, &self.base_location)["StorageDescriptor"].clone();
        let mut todo: Vec<String> = parts.to_vec();
        let mut last_error = String::new();
        for round in 0..PARTITION_ROUNDS {
            if todo.is_empty() {
                return Ok(());
            }
            if round > 0 {
                let ms = 200u64 << round.min(5);
                tokio::time::sleep(Duration::from_millis(ms + rand::random::<u64>() % ms)).await;
            }
            let mut failed = Vec::new();
            for batch in todo.chunks(BATCH) {
                let inputs: Vec<PartitionInput> = batch
                    .iter()
                    .map(|p| {
                        let mut psd = sd.clone();
                        psd["Location"] = Value::String(format!(
                            "{}{p}/",
                            table_location(&self.base_location, &t.name)
                        ));
                        Ok(PartitionInput::builder()
                            .set_values(Some(values_of(p)))
                            .storage_descriptor(to_storage_descriptor(&psd)?)
                            .build())
                    })
                    .collect::<std::result::Result<_, String>>()
                    .map_err(|e| self.fail(&t.name, e))?;
                match self
                    .client
                    .batch_create_partition()
                    .database_name(&self.database)
                    .table_name(&t.name)
                    .set_partition_input_list(Some(inputs))
                    .send()
                    .await
                {
                    Ok(out) => {
                        for err in out.errors() {
                            let code = err.error_detail().and_then(|d| d.error_code());
                            if code == Some("AlreadyExistsException") {
                                continue;
                            }
                            let values = err.partition_values();
                            if let Some(p) = batch.iter().find(|p| values_of(p) == values) {
                                failed.push(p.clone());
                            }
                            last_error = format!(
                                "{}: {}",
                                code.unwrap_or("error"),
                                err.error_detail()
                                    .and_then(|d| d.error_message())
                                    .unwrap_or("")
                            );
                        }
                    }
                    Err(e) => {
                        last_error = describe(&e);
                        failed.extend(batch.iter().cloned());
                    }
                }
            }
            todo = failed;
        }
        if todo.is_empty() {
            return Ok(());
        }
        Err(self.fail(
            &t.name,
            format!("{} partition(s) not registered: {last_error}", todo.len()),
        ))
    }
}

impl Catalog for GlueCatalog {
    fn ensure_table(&self, t: &TableSchema) -> Result<()> {
        self.aws.block_on(self.ensure_table_async(t))
    }

    fn register_partitions(&self, t: &TableSchema, partitions: &[String]) -> Result<()> {
        let new: Vec<String> = {
            let known = self.known.lock().expect("catalog lock");
            let set = known.get(&t.name);
            let mut v: Vec<String> = partitions
                .iter()
                .filter(|p| set.is_none_or(|s| !s.contains(*p)))
                .cloned()
                .collect();
            v.sort();
            v.dedup();
            v
        };
        if new.is_empty() {
            return Ok(());
        }
        self.aws.block_on(self.register_async(t, &new))?;
        self.known
            .lock()
            .expect("catalog lock")
            .entry(t.name.clone())
            .or_default()
            .extend(new);
        Ok(())
    }
}

fn text(v: &Value, k: &str) -> Option<String> {
    v[k].as_str().map(str::to_owned)
}

fn params(v: &Value) -> Option<HashMap<String, String>> {
    v.as_object().map(|m| {
        m.iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect()
    })
}

/// `[{"Name", "Type"}]` as the SDK's columns.
fn to_columns(v: &Value) -> std::result::Result<Vec<Column>, String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            Column::builder()
                .set_name(text(c, "Name"))
                .set_type(text(c, "Type"))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The SDK's StorageDescriptor from our TableInput JSON's.
fn to_storage_descriptor(sd: &Value) -> std::result::Result<StorageDescriptor, String> {
    let columns = to_columns(&sd["Columns"])?;
    let serde = &sd["SerdeInfo"];
    Ok(StorageDescriptor::builder()
        .set_columns(Some(columns))
        .set_location(text(sd, "Location"))
        .set_input_format(text(sd, "InputFormat"))
        .set_output_format(text(sd, "OutputFormat"))
        .set_compressed(sd["Compressed"].as_bool())
        .set_stored_as_sub_directories(sd["StoredAsSubDirectories"].as_bool())
        .serde_info(
            SerDeInfo::builder()
                .set_serialization_library(text(serde, "SerializationLibrary"))
                .set_parameters(params(&serde["Parameters"]))
                .build(),
        )
        .build())
}

/// The SDK's TableInput from the JSON that `lakehose schema glue` prints.
fn to_table_input(ti: &Value) -> std::result::Result<TableInput, String> {
    let keys = to_columns(&ti["PartitionKeys"])?;
    TableInput::builder()
        .set_name(text(ti, "Name"))
        .set_description(text(ti, "Description"))
        .set_table_type(text(ti, "TableType"))
        .set_parameters(params(&ti["Parameters"]))
        .set_partition_keys(Some(keys))
        .storage_descriptor(to_storage_descriptor(&ti["StorageDescriptor"])?)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn table_input_json_maps_to_the_sdk_types() {
        let s = json!({"type": "object",
            "properties": {"ts": {"type": "string", "format": "date-time"}, "VendorID": {"type": "integer"},
                           "rider": {"type": "object", "properties": {"email": {"type": "string"}}}},
            "x-lakehose": {"table": "t", "event_time": "ts", "timestamps": ["ts"],
                           "partition": [{"name": "vendor", "field": "VendorID"}]}});
        let t = TableSchema::from_value(s, "t", Path::new("t.json")).unwrap();
        let json = table_input(&t, "s3://b/lake/");
        let ti = to_table_input(&json).unwrap();
        assert_eq!(ti.name(), "t");
        assert_eq!(ti.table_type(), Some("EXTERNAL_TABLE"));
        let sd = ti.storage_descriptor().unwrap();
        assert_eq!(sd.location(), Some("s3://b/lake/t/"));
        assert_eq!(
            sd.serde_info().unwrap().serialization_library(),
            Some(crate::schema::glue::SERDE)
        );
        let cols: Vec<(&str, Option<&str>)> = sd
            .columns()
            .iter()
            .map(|c| (c.name(), c.r#type()))
            .collect();
        assert_eq!(
            cols,
            [
                ("ts", Some("timestamp")),
                ("vendorid", Some("bigint")),
                ("rider", Some("struct<email:string>")),
                ("source", Some("string")),
            ]
        );
        let keys: Vec<&str> = ti.partition_keys().iter().map(|c| c.name()).collect();
        assert_eq!(keys, ["year", "month", "day", "hour", "vendor"]);
        assert_eq!(
            ti.parameters()
                .unwrap()
                .get("classification")
                .map(String::as_str),
            Some("parquet")
        );
    }
}
