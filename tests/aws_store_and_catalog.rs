//! The S3 object store and the Glue catalog on their own, against moto:
//! multipart uploads appear whole, interrupted ones are aborted, missing
//! objects are absent (not errors); a Glue table gains the columns a schema
//! gains and never loses one, and registering a known partition is a no-op.

mod helpers;

use std::path::Path;
use std::sync::Arc;

use helpers::aws::Aws;
use lakehose::catalog::glue::GlueCatalog;
use lakehose::catalog::Catalog;
use lakehose::config::S3Config;
use lakehose::schema::TableSchema;
use lakehose::sink::s3::S3Store;
use lakehose::sink::ObjectStore;
use serde_json::json;

fn sdk() -> Arc<lakehose::aws::Aws> {
    Arc::new(lakehose::aws::Aws::load(&Default::default()).expect("aws config"))
}

#[test]
fn multipart_objects_appear_whole_and_missing_ones_are_absent() {
    let aws = Aws::new("store", 1);
    let store = S3Store::new(
        sdk(),
        &S3Config {
            bucket: aws.bucket.clone(),
            force_path_style: true,
            multipart_threshold_mib: 5,
            part_size_mib: 5,
            ..Default::default()
        },
    );
    // 12 MiB: three parts (5 + 5 + 2).
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    store.put("lake/t/big.parquet", &big).unwrap();
    assert_eq!(
        store.get("lake/t/big.parquet").unwrap().as_deref(),
        Some(&big[..])
    );
    store.put("lake/t/small.parquet", b"x").unwrap();
    assert_eq!(
        store.list("lake/t/").unwrap(),
        ["lake/t/big.parquet", "lake/t/small.parquet"]
    );
    assert!(store.exists("lake/t/small.parquet").unwrap());
    assert!(!store.exists("lake/t/none.parquet").unwrap());
    assert_eq!(store.get("lake/t/none.parquet").unwrap(), None);
    store.delete("lake/t/small.parquet").unwrap();
    store.delete("lake/t/small.parquet").unwrap(); // deleting twice is fine
    assert!(!store.exists("lake/t/small.parquet").unwrap());

    // An upload a crash interrupted is aborted by recovery's discard_partial.
    let client = &aws.s3;
    let up = aws
        .rt
        .block_on(
            client
                .create_multipart_upload()
                .bucket(&aws.bucket)
                .key("lake/t/cut.parquet")
                .send(),
        )
        .unwrap();
    let uploads = |aws: &Aws| {
        aws.rt
            .block_on(client.list_multipart_uploads().bucket(&aws.bucket).send())
            .unwrap()
            .uploads()
            .len()
    };
    assert_eq!(uploads(&aws), 1, "{up:?}");
    store.discard_partial("lake/t/cut.parquet").unwrap();
    assert_eq!(uploads(&aws), 0);
    assert!(!store.exists("lake/t/cut.parquet").unwrap());
}

fn table(extra: bool) -> TableSchema {
    let mut props = json!({"ts": {"type": "string"}, "VendorID": {"type": "integer"}});
    if extra {
        props["tip"] = json!({"type": "number"});
    }
    let s = json!({"type": "object", "properties": props,
        "x-lakehose": {"table": "t", "event_time": "ts", "timestamps": ["ts"],
                       "partition": [{"name": "vendor_id", "field": "VendorID"}]}});
    TableSchema::from_value(s, "t", Path::new("t.json")).unwrap()
}

#[test]
fn glue_tables_gain_columns_and_never_lose_them() {
    let aws = Aws::new("glue", 1);
    let cat = GlueCatalog::new(sdk(), &aws.database, &format!("s3://{}/lake/", aws.bucket));
    let columns = |aws: &Aws| -> Vec<String> {
        aws.glue_table("t")
            .storage_descriptor()
            .unwrap()
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect()
    };
    cat.ensure_table(&table(false)).unwrap();
    cat.ensure_table(&table(false)).unwrap(); // idempotent
    assert_eq!(columns(&aws), ["ts", "vendorid", "source"]);
    cat.ensure_table(&table(true)).unwrap();
    assert_eq!(columns(&aws), ["ts", "vendorid", "source", "tip"]);
    // A schema that loses a column: the table keeps it (old data has it).
    cat.ensure_table(&table(false)).unwrap();
    assert_eq!(columns(&aws), ["ts", "vendorid", "source", "tip"]);

    // 150 partitions: two BatchCreatePartition calls; again through a fresh
    // catalog (no cache): AlreadyExists is success.
    let parts: Vec<String> = (0..150)
        .map(|i| {
            format!(
                "year=2024/month=03/day={:02}/hour={:02}/vendor_id=1",
                1 + i / 24,
                i % 24
            )
        })
        .collect();
    cat.register_partitions(&table(true), &parts).unwrap();
    let again = GlueCatalog::new(sdk(), &aws.database, &format!("s3://{}/lake/", aws.bucket));
    again
        .register_partitions(&table(true), &parts[..10])
        .unwrap();
    let got = aws.glue_partitions("t");
    assert_eq!(got.len(), 150);
    assert_eq!(
        got[&parts[0]],
        format!("s3://{}/lake/t/{}/", aws.bucket, parts[0])
    );
}
